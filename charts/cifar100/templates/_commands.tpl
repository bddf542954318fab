{{/*
The command line of this release's RayJob, as a JSON list of arguments (use with fromJsonArray).
Nothing here knows a stage: every stage is `cifar pipeline --stage NAME` (the whole study: no
--stage), its settings `pipeline.set` turned into `--set` flags generically; Python's stage registry
owns what each stage runs, needs and reserves, and checks every setting. `check` is the GPU probe, not a
stage of the study. CIFAR_DATA_DIR and CIFAR_RESULTS_DIR come from the pod's environment.
tests/test_chart_commands.py parses every rendered line with the real Click CLI.
*/}}

{{/* The entrypoint of the RayJob of `.Values.stage`. */}}
{{- define "cifar100.command" -}}
{{- $v := .Values }}
{{- /* every command that runs work: its device, and how long that work may wait for a node */}}
{{- $args := list "--device" $v.device "--pending-timeout" (toString (int64 $v.pendingTimeoutSeconds)) }}
{{- if eq $v.stage "check" }}
{{- $args = concat (list "cifar" "check") $args (include "cifar100.flags" (list . $v.check.args) | fromJsonArray) }}
{{- else }}
{{- $args = concat (list "cifar" "pipeline" "--profile" $v.pipeline.profile) $args }}
{{- if ne $v.stage "pipeline" }}
{{- $args = concat $args (list "--stage" $v.stage) }}
{{- end }}
{{- if $v.pipeline.allowSynthetic }}
{{- $args = append $args "--allow-synthetic" }}
{{- end }}
{{- range include "cifar100.dottedSettings" (list "" $v.pipeline.set) | fromJsonArray }}
{{- $args = concat $args (list "--set" .) }}
{{- end }}
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
