{{/*
The command line of this release's RayJob, as a JSON list of arguments (use with fromJsonArray).
It only uses commands and flags of the `cifar` CLI; tests/test_chart_commands.py parses every
rendered line with the real Click CLI, and Python validates the pipeline's --set keys. Nothing
here knows a default of a stage: the chart adds the flags that link stages and `--device`, and
turns `args` and `pipeline.set` into flags generically. CIFAR_DATA_DIR and CIFAR_RESULTS_DIR come
from the pod's environment, so no command repeats the volume paths.
*/}}

{{/* The entrypoint of the RayJob of `.Values.stage`. */}}
{{- define "cifar100.command" -}}
{{- $v := .Values }}
{{- $s := $v.stages }}
{{- /* every command that submits Ray work: its device, and how long that work may wait for a node */}}
{{- $device := list "--device" $v.device "--pending-timeout" (toString (int64 $v.pendingTimeoutSeconds)) }}
{{- $args := list }}
{{- if eq $v.stage "pipeline" }}
{{- $args = concat (list "cifar" "pipeline" "--profile" $v.pipeline.profile) $device }}
{{- range include "cifar100.dottedSettings" (list "" $v.pipeline.set) | fromJsonArray }}
{{- $args = concat $args (list "--set" .) }}
{{- end }}
{{- else if eq $v.stage "check" }}
{{- $args = concat (list "cifar" "check") $device }}
{{- else if eq $v.stage "data" }}
{{- $args = list "cifar" "data" $s.data.source "--out" $v.storage.data.mountPath }}
{{- else if eq $v.stage "tune" }}
{{- $args = concat (list "cifar" "tune" "--experiment" $s.experiment) $device }}
{{- else if eq $v.stage "retrain" }}
{{- $args = concat (list "cifar" "retrain" "--from-tune" $s.experiment) $device }}
{{- else if eq $v.stage "recipe-a" }}
{{- $args = concat (list "cifar" "retrain" "--recipe" "report-a") $device }}
{{- else if eq $v.stage "ablation" }}
{{- $args = concat (list "cifar" "retrain" "--recipe" "report-a" "--augment" "none") $device }}
{{- else if eq $v.stage "recipe-b" }}
{{- $args = concat (list "cifar" "retrain" "--recipe" "report-b") $device }}
{{- else if eq $v.stage "gan" }}
{{- $args = concat (list "cifar" "gan" "train" "--run-name" $s.ganRun) $device }}
{{- else if eq $v.stage "fid" }}
{{- $run := printf "%s/gan/%s" $v.storage.results.mountPath $s.ganRun }}
{{- $args = concat (list "cifar" "fid" "--select-best" $run) $device }}
{{- else if eq $v.stage "fid-b" }}
{{- $run := printf "%s/gan/%s" $v.storage.results.mountPath $s.ganRun }}
{{- $args = concat (list "cifar" "fid" "--snapshot" $run) $device }}
{{- else if eq $v.stage "report" }}
{{- $args = list "cifar" "report" }}
{{- end }}
{{- if ne $v.stage "pipeline" }}
{{- $args = concat $args (include "cifar100.flags" (list . (index $s $v.stage).args) | fromJsonArray) }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/*
`args` map -> flags: `--key value`, sorted by key; true -> `--key`; false or null -> nothing; a
list -> the flag once per item. Strings go through `tpl`. Usage: include "cifar100.flags" (list $ map)
*/}}
{{- define "cifar100.flags" -}}
{{- $root := index . 0 }}
{{- $map := index . 1 | default dict }}
{{- $out := list }}
{{- range $key := keys $map | sortAlpha }}
{{- $value := index $map $key }}
{{- if kindIs "bool" $value }}
{{- if $value }}
{{- $out = append $out (printf "--%s" $key) }}
{{- end }}
{{- else if kindIs "slice" $value }}
{{- range $value }}
{{- $out = concat $out (list (printf "--%s" $key) (include "cifar100.scalar" (list $root .))) }}
{{- end }}
{{- else if not (kindIs "invalid" $value) }}
{{- $out = concat $out (list (printf "--%s" $key) (include "cifar100.scalar" (list $root $value))) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
A nested map -> ["a.b=1", "a.c=x", ...], sorted, for `cifar pipeline --set`. null leaves a key
out; a list is written as JSON. Usage: include "cifar100.dottedSettings" (list "prefix" map)
*/}}
{{- define "cifar100.dottedSettings" -}}
{{- $prefix := index . 0 }}
{{- $map := index . 1 | default dict }}
{{- $out := list }}
{{- range $key := keys $map | sortAlpha }}
{{- $value := index $map $key }}
{{- $name := ternary $key (printf "%s.%s" $prefix $key) (eq $prefix "") }}
{{- if kindIs "map" $value }}
{{- $out = concat $out (include "cifar100.dottedSettings" (list $name $value) | fromJsonArray) }}
{{- else if kindIs "slice" $value }}
{{- $out = append $out (printf "%s=%s" $name (toJson $value)) }}
{{- else if not (kindIs "invalid" $value) }}
{{- $out = append $out (printf "%s=%s" $name (include "cifar100.scalar" (list nil $value))) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
One value as a command-line word: whole numbers without an exponent (46000, not 4.6e+04),
booleans as true/false, strings through `tpl` when a context is given. Usage: include "cifar100.scalar" (list $ value)
*/}}
{{- define "cifar100.scalar" -}}
{{- $root := index . 0 }}
{{- $value := index . 1 }}
{{- if kindIs "float64" $value }}
{{- if eq $value (floor $value) }}{{ int64 $value }}{{ else }}{{ $value }}{{ end }}
{{- else if kindIs "string" $value }}
{{- if $root }}{{ tpl $value $root }}{{ else }}{{ $value }}{{ end }}
{{- else }}
{{- toString $value }}
{{- end }}
{{- end }}

{{/*
The entrypoint as one shell command line. KubeRay pastes it into the submitter's `bash -c` script
(`ray job submit ... -- <entrypoint> ;`); bash splits it into words, which Ray 2.60's `ray job
submit` re-quotes for the job's `/bin/sh -c` (shlex.join). So it is quoted once, for bash: any word
that is not plainly inert is single-quoted. tests/test_entrypoint_chain.py runs that whole chain.
*/}}
{{- define "cifar100.shellCommand" -}}
{{- $words := list }}
{{- range include "cifar100.command" . | fromJsonArray }}
{{- if regexMatch "^[A-Za-z0-9_./=:+,@%-]+$" . }}
{{- $words = append $words . }}
{{- else }}
{{- $words = append $words (printf "'%s'" (replace "'" "'\"'\"'" .)) }}
{{- end }}
{{- end }}
{{- join " " $words }}
{{- end }}
