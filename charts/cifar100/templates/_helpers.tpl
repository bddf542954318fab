{{/*
Names, labels and checks. Every resource name is defined here, built from the full name.
*/}}

{{/* Chart name, 63 characters at most. */}}
{{- define "cifar100.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every resource name, 63 characters at most.
The release name alone when it already contains the chart name.
*/}}
{{- define "cifar100.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "cifar100.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"<fullname>-<suffix>" in at most `max` characters: the full name is shortened, never the suffix,
so two resources can never end up with the same name.
Usage: include "cifar100.suffixedName" (list $ "tune" 47)
*/}}
{{- define "cifar100.suffixedName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $max := index . 2 }}
{{- $prefix := include "cifar100.fullname" $root | trunc (int (sub $max (add1 (len $suffix)))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix $suffix }}
{{- end }}

{{/* Per-resource names. KubeRay caps RayJob names at 47 and RayCluster names at 53 characters. */}}
{{- define "cifar100.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cifar100.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cifar100.dataClaimName" -}}
{{- .Values.storage.data.existingClaim | default (include "cifar100.suffixedName" (list . "data" 63)) }}
{{- end }}

{{- define "cifar100.resultsClaimName" -}}
{{- .Values.storage.results.existingClaim | default (include "cifar100.suffixedName" (list . "results" 63)) }}
{{- end }}

{{- define "cifar100.dataJobName" -}}
{{- include "cifar100.suffixedName" (list . "data-prep" 63) }}
{{- end }}

{{- define "cifar100.tuneJobName" -}}
{{- include "cifar100.suffixedName" (list . "tune" 47) }}
{{- end }}

{{- define "cifar100.rayClusterName" -}}
{{- include "cifar100.suffixedName" (list . "ray" 53) }}
{{- end }}

{{- define "cifar100.retrainJobName" -}}
{{- include "cifar100.suffixedName" (list . "retrain" 63) }}
{{- end }}

{{- define "cifar100.ganJobName" -}}
{{- include "cifar100.suffixedName" (list . "gan" 63) }}
{{- end }}

{{- define "cifar100.fidJobName" -}}
{{- include "cifar100.suffixedName" (list . "fid" 63) }}
{{- end }}

{{- define "cifar100.pipelineJobName" -}}
{{- include "cifar100.suffixedName" (list . "pipeline" 63) }}
{{- end }}

{{/* Selector labels: name and instance. */}}
{{- define "cifar100.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cifar100.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels. */}}
{{- define "cifar100.labels" -}}
helm.sh/chart: {{ include "cifar100.chart" . }}
{{ include "cifar100.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cifar100
{{- end }}

{{/*
Labels of one stage's objects: the common labels plus the component, and the Kueue queue on
workload objects. Usage: include "cifar100.componentLabels" (dict "root" $ "component" "tune" "queue" true)
*/}}
{{- define "cifar100.componentLabels" -}}
{{ include "cifar100.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- if and .queue .root.Values.kueue.queueName }}
kueue.x-k8s.io/queue-name: {{ .root.Values.kueue.queueName }}
{{- end }}
{{- end }}

{{/* The image reference. */}}
{{- define "cifar100.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The selected profile (a dict). Usage: $p := include "cifar100.profile" . | fromYaml */}}
{{- define "cifar100.profile" -}}
{{- toYaml (index .Values.profiles .Values.profile) }}
{{- end }}

{{/*
Checks the schema cannot express. Fails rendering with one readable line.
Included at the top of every template.
*/}}
{{- define "cifar100.validate" -}}
{{- if not (hasKey .Values.profiles .Values.profile) }}
{{- fail (printf "profile %q is not defined under profiles (defined: %s)" .Values.profile (keys .Values.profiles | sortAlpha | join ", ")) }}
{{- end }}
{{- $p := index .Values.profiles .Values.profile }}
{{- if not .Values.image.repository }}
{{- fail "image.repository is empty: set it to the image built by `make image` (e.g. registry.example.com/cifar100-k8s)" }}
{{- end }}
{{- if and (or .Values.stages.tune.enabled .Values.ray.sharedCluster.enabled) (not (regexMatch "^[a-z]" (include "cifar100.fullname" .))) }}
{{- fail (printf "the resource prefix %q must start with a lowercase letter (KubeRay names are DNS-1035 labels): pick another release name or set fullnameOverride" (include "cifar100.fullname" .)) }}
{{- end }}
{{- if and (gt (float64 $p.tune.gpusPerTrial) 0.0) (eq (int $p.gpusPerPod) 0) }}
{{- fail (printf "profiles.%s.tune.gpusPerTrial is %v but profiles.%s.gpusPerPod is 0: no trial could ever be scheduled" .Values.profile $p.tune.gpusPerTrial .Values.profile) }}
{{- end }}
{{- if and (gt (float64 $p.tune.gpusPerTrial) (float64 $p.gpusPerPod)) (gt (int $p.gpusPerPod) 0) }}
{{- fail (printf "profiles.%s.tune.gpusPerTrial (%v) is more than one worker's GPUs (gpusPerPod %v)" .Values.profile $p.tune.gpusPerTrial $p.gpusPerPod) }}
{{- end }}
{{- range $vol := list "data" "results" }}
{{- $s := index $.Values.storage $vol }}
{{- if and (not $s.existingClaim) (not $s.size) }}
{{- fail (printf "storage.%s: set either existingClaim or size" $vol) }}
{{- end }}
{{- end }}
{{- if eq .Values.storage.data.mountPath .Values.storage.results.mountPath }}
{{- fail (printf "storage.data.mountPath and storage.results.mountPath are both %s" .Values.storage.data.mountPath) }}
{{- end }}
{{- if and .Values.ray.sharedCluster.enabled (gt (int .Values.ray.job.backoffLimit) 0) }}
{{- fail "ray.job.backoffLimit must be 0 with ray.sharedCluster.enabled (KubeRay cannot retry a search on a cluster it does not own)" }}
{{- end }}
{{- end }}
