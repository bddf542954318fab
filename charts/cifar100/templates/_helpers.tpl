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
{{- include "cifar100.fullnameOf" (list . .Release.Name) }}
{{- end }}
{{- end }}

{{/* The full name a release of this chart has (without fullnameOverride). Usage: include "cifar100.fullnameOf" (list $ "cifar100") */}}
{{- define "cifar100.fullnameOf" -}}
{{- $root := index . 0 }}
{{- $release := index . 1 }}
{{- $name := default $root.Chart.Name $root.Values.nameOverride }}
{{- if contains $name $release }}
{{- $release | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $release $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The full name of the release whose volumes, service account and results pod this one uses: its own,
or storage.fromRelease's (a single stage beside the pipeline).
*/}}
{{- define "cifar100.sharedFullname" -}}
{{- if .Values.storage.fromRelease }}
{{- include "cifar100.fullnameOf" (list . .Values.storage.fromRelease) }}
{{- else }}
{{- include "cifar100.fullname" . }}
{{- end }}
{{- end }}

{{/* Whether this release makes the volumes, service account, RBAC and results pod ("true" or ""): not when it runs beside another. */}}
{{- define "cifar100.ownsSharedObjects" -}}
{{- if not .Values.storage.fromRelease }}true{{ end }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "cifar100.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"<fullname>-<suffix>" in at most `max` characters: the full name is shortened, never the suffix,
so two resources can never end up with the same name. `prefix` (optional) replaces the full name.
Usage: include "cifar100.suffixedName" (list $ "tune" 47) or (list $ "data" 63 "other-fullname")
*/}}
{{- define "cifar100.suffixedName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $max := index . 2 }}
{{- $full := "" }}
{{- if gt (len .) 3 }}
{{- $full = index . 3 }}
{{- else }}
{{- $full = include "cifar100.fullname" $root }}
{{- end }}
{{- $prefix := $full | trunc (int (sub $max (add1 (len $suffix)))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix $suffix }}
{{- end }}

{{/* Per-resource names. KubeRay caps RayJob names at 47 and RayCluster names at 53 characters. */}}
{{- define "cifar100.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cifar100.sharedFullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Role (and its binding) that lets the Ray head read its namespace's pods and events and annotate its RayJob. */}}
{{- define "cifar100.podReaderName" -}}
{{- include "cifar100.suffixedName" (list . "pod-reader" 63) }}
{{- end }}

{{- define "cifar100.dataClaimName" -}}
{{- .Values.storage.data.existingClaim | default (include "cifar100.suffixedName" (list . "data" 63 (include "cifar100.sharedFullname" .))) }}
{{- end }}

{{- define "cifar100.resultsClaimName" -}}
{{- .Values.storage.results.existingClaim | default (include "cifar100.suffixedName" (list . "results" 63 (include "cifar100.sharedFullname" .))) }}
{{- end }}

{{/* The RayJob of this release's stage: <fullname>-pipeline, <fullname>-tune, ... */}}
{{- define "cifar100.rayJobName" -}}
{{- include "cifar100.suffixedName" (list . .Values.stage 47) }}
{{- end }}

{{- define "cifar100.rayClusterName" -}}
{{- include "cifar100.suffixedName" (list . "ray" 53) }}
{{- end }}

{{- define "cifar100.resultsPodName" -}}
{{- include "cifar100.suffixedName" (list . "results" 63 (include "cifar100.sharedFullname" .)) }}
{{- end }}

{{/* Selector labels: name and instance. */}}
{{- define "cifar100.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cifar100.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels that never change between chart versions or image tags: they go on pod templates, some of
which are immutable once created (a Job's, for one).
*/}}
{{- define "cifar100.stableLabels" -}}
{{ include "cifar100.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cifar100
{{- end }}

{{/* Common labels of the objects themselves: the stable ones plus chart and version. */}}
{{- define "cifar100.labels" -}}
helm.sh/chart: {{ include "cifar100.chart" . }}
{{ include "cifar100.stableLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
{{- end }}

{{/*
Labels of one component's object; `queue` adds the Kueue queue (only on what Kueue admits).
Usage: include "cifar100.componentLabels" (dict "root" $ "component" "tune" "queue" true)
*/}}
{{- define "cifar100.componentLabels" -}}
{{ include "cifar100.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- if and .queue .root.Values.kueue.queueName }}
kueue.x-k8s.io/queue-name: {{ .root.Values.kueue.queueName }}
{{- end }}
{{- end }}

{{/* The image reference: by digest when one is given, else by tag. */}}
{{- define "cifar100.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Whether KubeRay's autoscaler runs ("true" or ""). */}}
{{- define "cifar100.autoscaling" -}}
{{- if .Values.ray.autoscaling.enabled }}true{{ end }}
{{- end }}

{{/*
Checks the schema cannot express. Fails rendering with one readable line that names the value to
set. Included at the top of every template.
*/}}
{{- define "cifar100.validate" -}}
{{- $v := .Values }}
{{- if not $v.image.repository }}
{{- fail "image.repository is empty: set it to the image built by `make image` (e.g. registry.example.com/cifar100-k8s)" }}
{{- end }}
{{- if not (regexMatch "^[a-z]" (include "cifar100.fullname" .)) }}
{{- fail (printf "the resource prefix %q must start with a lowercase letter (KubeRay names are DNS-1035 labels): pick another release name or set fullnameOverride" (include "cifar100.fullname" .)) }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .Release.Namespace) }}
{{- fail (printf "namespace %q is not a Kubernetes namespace name (lowercase letters, digits and '-', starting and ending with a letter or digit)" .Release.Namespace) }}
{{- end }}
{{- if eq $v.storage.fromRelease .Release.Name }}
{{- fail (printf "storage.fromRelease is this release (%s): name the other release whose volumes this one uses, or leave it empty" .Release.Name) }}
{{- end }}
{{- /* The entrypoint: KubeRay pastes it into `bash -c`; from Ray 2.60 `ray job submit` re-quotes its words for /bin/sh. */}}
{{- range include "cifar100.command" . | fromJsonArray }}
{{- if contains "\x00" . }}
{{- fail (printf "the command word %q holds a NUL character, which no shell can pass on: remove it from the value" .) }}
{{- end }}
{{- if and (not (regexMatch "^[A-Za-z0-9_./=:+,@%-]+$" .)) (semverCompare "<2.60.0-0" $v.ray.version) }}
{{- fail (printf "the command word %q needs quoting, but ray.version is %s: Ray 2.60 re-quotes the entrypoint for /bin/sh (ray-project/ray#63797), older Rays may re-join it with Windows rules (subprocess.list2cmdline) so it would not reach cifar unchanged; use only letters, digits and _./=:+,@%%- in values, or an image with Ray 2.60 or newer" . $v.ray.version) }}
{{- end }}
{{- end }}
{{- /* Storage: what binds on a stock cluster, and what several nodes can mount. */}}
{{- range $vol := list "data" "results" }}
{{- $s := index $v.storage $vol }}
{{- if not (or $s.existingClaim $v.storage.fromRelease) }}
{{- if not $s.size }}
{{- fail (printf "storage.%s: set either existingClaim or size" $vol) }}
{{- end }}
{{- if and (has "ReadWriteMany" $s.accessModes) (not $s.storageClass) }}
{{- fail (printf "storage.%s.storageClass is empty, so the PVC would ask the cluster's default class for ReadWriteMany, which the defaults of EKS, GKE and AKS (block storage) never bind: set storage.%s.storageClass to a ReadWriteMany class (e.g. efs-sc, standard-rwx, azurefile-csi-nfs, nfs-client) or storage.%s.existingClaim" $vol $vol $vol) }}
{{- end }}
{{- range $mode := $s.accessModes }}
{{- if eq $mode "ReadWriteOncePod" }}
{{- fail (printf "storage.%s.accessModes: ReadWriteOncePod lets one pod mount the volume, but the Ray head and every worker mount it: use ReadWriteMany" $vol) }}
{{- end }}
{{- end }}
{{- if and (not (has "ReadWriteMany" $s.accessModes)) (not (hasKey $v.nodeSelector "kubernetes.io/hostname")) }}
{{- fail (printf "storage.%s.accessModes is %s, but the Ray head, the Ray workers%s mount the volume and may run on different nodes (a second node fails with Multi-Attach): use ReadWriteMany with a storage class that provides it, or pin every pod to one node with nodeSelector.kubernetes.io/hostname" $vol (toJson $s.accessModes) (ternary " and the results pod" "" (and (eq $vol "results") $v.resultsPod.enabled))) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $v.storage.data.mountPath $v.storage.results.mountPath }}
{{- fail (printf "storage.data.mountPath and storage.results.mountPath are both %s" $v.storage.data.mountPath) }}
{{- end }}
{{- if and (eq (int $v.ray.workers.cpu.maxReplicas) 0) (eq (int $v.ray.workers.gpu.maxReplicas) 0) }}
{{- fail "ray.workers.cpu.maxReplicas and ray.workers.gpu.maxReplicas are both 0: the head runs no Ray work (num-cpus 0), so nothing could ever run" }}
{{- end }}
{{- /* Which device runs the work, and on which workers, is Python's to check (jobs.chart.check_devices). */}}
{{- $gpu := $v.ray.workers.gpu }}
{{- if and (gt (int $gpu.maxReplicas) 0) (eq (int $gpu.gpus) 0) }}
{{- fail "ray.workers.gpu.gpus is 0 but ray.workers.gpu.maxReplicas is not: give the GPU workers GPUs, or set maxReplicas to 0 and size ray.workers.cpu instead" }}
{{- end }}
{{- if and $gpu.spot (eq (int $gpu.maxReplicas) 0) }}
{{- fail "ray.workers.gpu.spot is true but there are no GPU workers (ray.workers.gpu.maxReplicas is 0): set spot=false, or give the GPU workers a maxReplicas" }}
{{- end }}
{{- /* Ray and Kueue: what KubeRay and Kueue would reject later, refused now. */}}
{{- /* (A RayJob on a shared cluster gets no backoffLimit: KubeRay refuses retries on a cluster it does not own.) */}}
{{- if and (not $v.ray.sharedCluster.enabled) $v.kueue.queueName (not $v.ray.job.shutdownAfterJobFinishes) }}
{{- fail (printf "ray.job.shutdownAfterJobFinishes is false but kueue.queueName is %q: Kueue rejects a RayJob that keeps its Ray cluster after it ends (the cluster would hold the queue's quota); set ray.job.shutdownAfterJobFinishes=true" $v.kueue.queueName) }}
{{- end }}
{{- if and $v.kueue.queueName $v.ray.autoscaling.enabled (not $v.kueue.elasticJobs) }}
{{- fail (printf "kueue.queueName is %q and ray.autoscaling.enabled is true, but Kueue admits an autoscaling Ray cluster only as an elastic job: set kueue.elasticJobs=true (Kueue 0.18+, or 0.16+ with the ElasticJobsViaWorkloadSlices feature gate), or ray.autoscaling.enabled=false to admit every worker group at its maxReplicas" $v.kueue.queueName) }}
{{- end }}
{{- end }}

{{/* One of the two PVCs. Usage: include "cifar100.pvc" (list $ "data") */}}
{{- define "cifar100.pvc" -}}
{{- $root := index . 0 }}
{{- $vol := index . 1 }}
{{- with index $root.Values.storage $vol }}
{{- if not (or .existingClaim $root.Values.storage.fromRelease) }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include (printf "cifar100.%sClaimName" $vol) $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "cifar100.componentLabels" (dict "root" $root "component" "storage") | nindent 4 }}
  {{- if .keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
spec:
  accessModes:
    {{- toYaml .accessModes | nindent 4 }}
  {{- if eq .storageClass "-" }}
  storageClassName: ""
  {{- else if .storageClass }}
  storageClassName: {{ .storageClass }}
  {{- end }}
  resources:
    requests:
      storage: {{ .size }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Annotations that keep the cluster's node autoscaler from evicting a pod to remove or replace its
node: Cluster Autoscaler's and Karpenter's. On the Ray head (the driver and the GCS) and the
submitter (the driver's log), whose loss stops the whole study.
*/}}
{{- define "cifar100.doNotEvictAnnotations" -}}
cluster-autoscaler.kubernetes.io/safe-to-evict: "false"
karpenter.sh/do-not-disrupt: "true"
{{- end }}

{{/*
How each cloud marks its spot (preemptible) nodes, as a JSON list of {key, value, taint}: the label
every such node carries, and whether the cloud also taints it with the same key and value
(NoSchedule). GKE: Spot VMs and the older preemptible VMs (taint only if the pool was given one);
EKS: managed node groups and Karpenter; AKS: spot pools, always tainted.
*/}}
{{- define "cifar100.spotNodeLabels" -}}
{{- toJson (list
  (dict "key" "cloud.google.com/gke-spot" "value" "true" "taint" true)
  (dict "key" "cloud.google.com/gke-preemptible" "value" "true" "taint" true)
  (dict "key" "eks.amazonaws.com/capacityType" "value" "SPOT" "taint" false)
  (dict "key" "karpenter.sh/capacity-type" "value" "spot" "taint" false)
  (dict "key" "kubernetes.azure.com/scalesetpriority" "value" "spot" "taint" true)) }}
{{- end }}

{{/*
Node placement by capacity type, for ray.workers.gpu.spot: "spot" (the GPU workers) requires one of
the spot labels and tolerates the spot taints; "regular" (the head and the submitter) requires every
spot label to be absent or different. Returns {every: [expressions every required term must also
meet], anyOf: [alternatives, one of which each term must meet], tolerations: [...]} as JSON.
Usage: include "cifar100.capacityPlacement" "spot"
*/}}
{{- define "cifar100.capacityPlacement" -}}
{{- $every := list }}
{{- $anyOf := list }}
{{- $tolerations := list }}
{{- range include "cifar100.spotNodeLabels" . | fromJsonArray }}
{{- if eq $ "spot" }}
{{- $anyOf = append $anyOf (dict "key" .key "operator" "In" "values" (list .value)) }}
{{- if .taint }}
{{- $tolerations = append $tolerations (dict "key" .key "operator" "Equal" "value" .value "effect" "NoSchedule") }}
{{- end }}
{{- else if eq $ "regular" }}
{{- $every = append $every (dict "key" .key "operator" "NotIn" "values" (list .value)) }}
{{- end }}
{{- end }}
{{- toJson (dict "every" $every "anyOf" $anyOf "tolerations" $tolerations) }}
{{- end }}

{{/*
An affinity whose required node terms (ORed by Kubernetes) also meet `every` expression and one of
the `anyOf` alternatives: each of the user's terms (or one empty term) is extended, once per
alternative. Returns the affinity as JSON; unchanged when both lists are empty.
Usage: include "cifar100.requiredNodeAffinity" (dict "affinity" $affinity "every" list "anyOf" list)
*/}}
{{- define "cifar100.requiredNodeAffinity" -}}
{{- $affinity := deepCopy (default dict .affinity) }}
{{- if or .every .anyOf }}
{{- $node := default dict $affinity.nodeAffinity }}
{{- $required := default dict (index $node "requiredDuringSchedulingIgnoredDuringExecution") }}
{{- $terms := default (list dict) $required.nodeSelectorTerms }}
{{- $alternatives := default (list nil) .anyOf }}
{{- $extended := list }}
{{- range $term := $terms }}
{{- range $alternative := $alternatives }}
{{- $expressions := concat (default list $term.matchExpressions) $.every (compact (list $alternative)) }}
{{- $extended = append $extended (merge (dict "matchExpressions" $expressions) $term) }}
{{- end }}
{{- end }}
{{- $_ := set $required "nodeSelectorTerms" $extended }}
{{- $_ := set $node "requiredDuringSchedulingIgnoredDuringExecution" $required }}
{{- $_ := set $affinity "nodeAffinity" $node }}
{{- end }}
{{- toJson $affinity }}
{{- end }}
