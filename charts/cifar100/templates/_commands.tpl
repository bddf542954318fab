{{/*
Command lines of the stages, each a JSON list of arguments (use with fromJsonArray).
They only use commands and flags from docs/CONTRACTS.md; tests/test_chart_commands.py parses every
one of them with the `cifar` Click CLI. CIFAR_DATA_DIR and CIFAR_RESULTS_DIR come from the pod's
environment, so no command repeats the volume paths.
*/}}

{{/* Dataset preparation: download (idempotent: verified files are kept) or a synthetic set. */}}
{{- define "cifar100.cmd.data" -}}
{{- $p := include "cifar100.profile" . | fromYaml }}
{{- if eq $p.data.source "fetch" }}
{{- toJson (list "cifar" "data" "fetch" "--out" .Values.storage.data.mountPath) }}
{{- else }}
{{- $s := $p.data.synth }}
{{- toJson (list "cifar" "data" "synth" "--out" .Values.storage.data.mountPath "--train" (toString (int $s.train)) "--test" (toString (int $s.test)) "--seed" (toString (int $s.seed))) }}
{{- end }}
{{- end }}

{{/* Ray Tune search; the RayJob entrypoint. */}}
{{- define "cifar100.cmd.tune" -}}
{{- $p := include "cifar100.profile" . | fromYaml }}
{{- $t := $p.tune }}
{{- $args := list "cifar" "tune" "--experiment" .Values.experiment "--space" $t.space }}
{{- $args = concat $args (list "--num-samples" (toString (int $t.numSamples)) "--max-concurrent" (toString (int $t.maxConcurrent)) "--max-epochs" (toString (int $t.maxEpochs))) }}
{{- if not (kindIs "invalid" $t.gracePeriod) }}
{{- $args = concat $args (list "--grace-period" (toString (int $t.gracePeriod))) }}
{{- end }}
{{- $args = concat $args (list "--cpus-per-trial" (toString $t.cpusPerTrial) "--gpus-per-trial" (toString $t.gpusPerTrial)) }}
{{- /* top_k.json lists as many configurations as retrain will take */}}
{{- $args = concat $args (list "--top-k" (toString (int $p.retrain.topK))) }}
{{- if $t.smoke }}
{{- $args = append $args "--smoke" }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/* Retraining of the best configurations on the full training set. */}}
{{- define "cifar100.cmd.retrain" -}}
{{- $r := (include "cifar100.profile" . | fromYaml).retrain }}
{{- toJson (list "cifar" "retrain" "--from-tune" .Values.experiment "--top-k" (toString (int $r.topK)) "--epochs" (toString (int $r.epochs))) }}
{{- end }}

{{/* DCGAN training. */}}
{{- define "cifar100.cmd.gan" -}}
{{- $g := (include "cifar100.profile" . | fromYaml).gan }}
{{- $args := list "cifar" "gan" "train" "--run-name" .Values.ganRun "--steps" (toString (int $g.steps)) "--batch-size" (toString (int $g.batchSize)) }}
{{- if not (kindIs "invalid" $g.sampleEvery) }}
{{- $args = concat $args (list "--sample-every" (toString (int $g.sampleEvery))) }}
{{- end }}
{{- if not (kindIs "invalid" $g.checkpointEvery) }}
{{- $args = concat $args (list "--checkpoint-every" (toString (int $g.checkpointEvery))) }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/*
FID of the DCGAN against the real split: every kept snapshot ranked (report B picks the best), or
only the last checkpoint. Results go to RESULTS/fid/<ganRun>/.
*/}}
{{- define "cifar100.cmd.fid" -}}
{{- $f := (include "cifar100.profile" . | fromYaml).fid }}
{{- $run := printf "%s/gan/%s" .Values.storage.results.mountPath .Values.ganRun }}
{{- $source := list "--checkpoint" (printf "%s/checkpoints/last.pt" $run) }}
{{- if .Values.stages.fid.selectBest }}
{{- $source = list "--select-best" $run }}
{{- end }}
{{- toJson (concat (list "cifar" "fid") $source (list "--split" $f.split "--n" (toString (int $f.images)) "--name" .Values.ganRun)) }}
{{- end }}

{{/* Every stage in one process. */}}
{{- define "cifar100.cmd.pipeline" -}}
{{- toJson (list "cifar" "pipeline" "--profile" .Values.profile) }}
{{- end }}

{{/* Probes of the waiting initContainers (commands that succeed once the input is there). */}}
{{- define "cifar100.probe.data" -}}
{{- toJson (list "cifar" "data" "verify" .Values.storage.data.mountPath) }}
{{- end }}

{{- define "cifar100.probe.tune" -}}
{{- toJson (list "test" "-s" (printf "%s/tune/%s/%s" .Values.storage.results.mountPath .Values.experiment .Values.stages.retrain.waitFor)) }}
{{- end }}

{{- define "cifar100.probe.gan" -}}
{{- toJson (list "test" "-s" (printf "%s/gan/%s/%s" .Values.storage.results.mountPath .Values.ganRun .Values.stages.fid.waitFor)) }}
{{- end }}
