{{/*
The one pod template behind every pod of the chart: the Ray head and workers, the RayJob submitter
and the results pod. Same image, user, security context, environment and volume paths everywhere.
Its labels are the stable ones only (no chart version, no image tag), so no pod template changes
merely because the chart or the image was upgraded.

Usage: include "cifar100.podTemplate" (dict
  "root" $                 the chart context
  "component" "pipeline"   app.kubernetes.io/component of the pod
  "container" "ray-head"   name of the main container
  "command" "[...]"        JSON list; omit for Ray containers (KubeRay sets theirs)
  "gpus" 1                 GPU limit (adds gpu.nodeSelector and gpu.tolerations); 0 or omitted: none
  "capacity" "spot"        with ray.workers.gpu.spot: "spot" (GPU workers: spot nodes only) or
                           "regular" (head, submitter: never on spot nodes); omitted: any node
  "protect" true           the node autoscalers may not evict it (head and submitter)
  "resources" dict         requests and limits of the main container
  "data" "rw"              data volume: "rw", "ro", or omitted for none
  "results" "rw"           results volume: "rw", "ro", or omitted for none
  "fixOwnership" true      the opt-in root init container that chowns the volumes (storage.fixOwnership)
  "token" true             mount the service account token (the head: the autoscaler and the driver call the API)
  "rayJob" "name"          the RayJob the pod's driver runs for ($CIFAR_RAYJOB: it publishes the study's
                           standing there for `cifar status`); omitted on a shared cluster's pods
  "restartPolicy" "Never"  omitted for Ray pods
  "ports" list             container ports
  "readiness" list         exec readiness probe command
)
*/}}
{{- define "cifar100.podTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $gpus := int (default 0 .gpus) }}
{{- $resources := deepCopy (default dict .resources) }}
{{- $nodeSelector := deepCopy $v.nodeSelector }}
{{- $tolerations := $v.tolerations }}
{{- if gt $gpus 0 }}
{{- $_ := set $resources "limits" (merge (dict $v.gpu.resourceName $gpus) (default dict $resources.limits)) }}
{{- $nodeSelector = mergeOverwrite $nodeSelector (deepCopy $v.gpu.nodeSelector) }}
{{- $tolerations = concat $tolerations $v.gpu.tolerations }}
{{- end }}
{{- $placement := include "cifar100.capacityPlacement" (ternary (default "" .capacity) "" $v.ray.workers.gpu.spot) | fromJson }}
{{- $every := $placement.every }}
{{- if and (eq $gpus 0) $v.gpu.nodeLabelKeys }}
{{- /* keep pods that use no GPU off GPU nodes that carry no taint: each required term also asks the keys to be absent */}}
{{- range $v.gpu.nodeLabelKeys }}
{{- $every = append $every (dict "key" . "operator" "DoesNotExist") }}
{{- end }}
{{- end }}
{{- $tolerations = concat $tolerations $placement.tolerations }}
{{- $affinity := include "cifar100.requiredNodeAffinity" (dict "affinity" $v.affinity "every" $every "anyOf" $placement.anyOf) | fromJson }}
{{- $annotations := $v.podAnnotations }}
{{- if .protect }}
{{- $annotations = merge (include "cifar100.doNotEvictAnnotations" $root | fromYaml) $v.podAnnotations }}
{{- end }}
{{- $mounts := dict "root" $root "data" (default "" .data) "results" (default "" .results) -}}
metadata:
  labels:
    {{- include "cifar100.stableLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "cifar100.serviceAccountName" $root }}
  automountServiceAccountToken: {{ default false .token }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .fixOwnership }}
  initContainers:
    {{- include "cifar100.fixOwnershipContainer" $mounts | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "cifar100.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- with .command }}
      command: {{ . }}
      {{- end }}
      env:
        {{- include "cifar100.env" $root | nindent 8 }}
        {{- with .rayJob }}
        - name: CIFAR_RAYJOB
          value: {{ . | quote }}
        {{- end }}
      {{- with .ports }}
      ports:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .readiness }}
      readinessProbe:
        exec:
          command: {{ toJson . }}
        periodSeconds: 30
      {{- end }}
      resources:
        {{- toYaml $resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "cifar100.volumeMounts" $mounts | nindent 8 }}
  volumes:
    {{- include "cifar100.volumes" $mounts | nindent 4 }}
{{- end }}

{{/*
storage.fixOwnership: NFS ignores fsGroup, so a root-owned export stays unwritable for uid 1000.
This init container, in the Ray head only (it starts before anything writes to the volumes), runs
as root with no capability but CHOWN and hands the volumes' top directories to the pods' user. It
fails, with a message saying why, when the server squashes root.
*/}}
{{- define "cifar100.fixOwnershipContainer" -}}
{{- $v := .root.Values -}}
{{- $owner := printf "%d:%d" (int $v.podSecurityContext.runAsUser) (int $v.podSecurityContext.runAsGroup) -}}
{{- $paths := list $v.storage.data.mountPath $v.storage.results.mountPath -}}
- name: fix-ownership
  image: {{ include "cifar100.image" .root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command:
    - sh
    - -c
    - {{ printf "chown %s %s || { echo \"cannot chown %s to %s: the NFS export squashes root; export it with no_root_squash, or owned by %s\" >&2; exit 1; }" $owner (join " " $paths) (join " " $paths) $owner $owner | quote }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 100m, memory: 64Mi}
  securityContext:
    runAsUser: 0
    runAsGroup: 0
    runAsNonRoot: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
      add: [CHOWN]
  volumeMounts:
    {{- include "cifar100.volumeMounts" . | nindent 4 }}
{{- end }}

{{/* Environment of every container: the volume paths, and caches moved off the read-only root. */}}
{{- define "cifar100.env" -}}
- name: CIFAR_DATA_DIR
  value: {{ .Values.storage.data.mountPath }}
- name: CIFAR_RESULTS_DIR
  value: {{ .Values.storage.results.mountPath }}
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: TRITON_CACHE_DIR
  value: /tmp/triton
- name: PYTHONUNBUFFERED
  value: "1"
{{- if include "cifar100.autoscaling" . }}
{{- /* The worker groups the autoscaler grows from zero: the driver counts them as nodes that may
       come, so it does not refuse GPU work while no GPU worker exists yet. */}}
- name: CIFAR_AUTOSCALED_WORKERS
  value: {{ include "cifar100.autoscaledWorkers" . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The worker groups as a JSON list of {cpu, gpus, max (replicas)}. `cpu` is what Ray's `num-cpus`
comes from: the group's rayStartParams num-cpus when set, else its CPU limit (else its request),
as a Kubernetes quantity; KubeRay and Ray's autoscaler round it up to whole cores.
*/}}
{{- define "cifar100.autoscaledWorkers" -}}
{{- $w := .Values.ray.workers }}
{{- $groups := list }}
{{- range $group := list (dict "spec" $w.cpu "gpus" 0) (dict "spec" $w.gpu "gpus" (int $w.gpu.gpus)) }}
{{- $spec := $group.spec }}
{{- if gt (int $spec.maxReplicas) 0 }}
{{- $resources := default dict $spec.resources }}
{{- $cpu := index (default dict $spec.rayStartParams) "num-cpus" | default (index (default dict $resources.limits) "cpu") | default (index (default dict $resources.requests) "cpu") }}
{{- $groups = append $groups (dict "cpu" (toString $cpu) "gpus" $group.gpus "max" (int $spec.maxReplicas)) }}
{{- end }}
{{- end }}
{{- toJson $groups }}
{{- end }}

{{/* Volume mounts; takes the same dict as cifar100.volumes. */}}
{{- define "cifar100.volumeMounts" -}}
{{- $v := .root.Values -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: {{ $v.image.homeDir }}/.cache
- name: ray-home
  mountPath: {{ $v.image.homeDir }}/.ray
{{- if .data }}
- name: data
  mountPath: {{ $v.storage.data.mountPath }}
  {{- with $v.storage.data.subPath }}
  subPath: {{ . }}
  {{- end }}
  readOnly: {{ ne .data "rw" }}
{{- end }}
{{- if .results }}
- name: results
  mountPath: {{ $v.storage.results.mountPath }}
  {{- with $v.storage.results.subPath }}
  subPath: {{ . }}
  {{- end }}
  readOnly: {{ ne .results "rw" }}
{{- end }}
{{- end }}

{{/* Volumes: the two PVCs where asked for, and emptyDirs for the writable paths. */}}
{{- define "cifar100.volumes" -}}
{{- $v := .root.Values -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $v.scratch.tmpSizeLimit }}
- name: cache
  emptyDir:
    sizeLimit: {{ $v.scratch.cacheSizeLimit }}
{{- /* Ray keeps its auth token under ~/.ray */}}
- name: ray-home
  emptyDir:
    sizeLimit: 16Mi
{{- if .data }}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "cifar100.dataClaimName" .root }}
{{- end }}
{{- if .results }}
- name: results
  persistentVolumeClaim:
    claimName: {{ include "cifar100.resultsClaimName" .root }}
    {{- if ne .results "rw" }}
    readOnly: true
    {{- end }}
{{- end }}
{{- end }}

{{/*
The RayCluster spec shared by the RayJob (a cluster per RayJob) and the long-lived RayCluster.
Head and workers come from the same pod template. Worker groups start at 0 and grow with the work
when KubeRay's autoscaler runs; without it they run at maxReplicas (what Kueue then admits). A group
no work asks for stays at 0 pods with the autoscaler. The head of a RayJob's own cluster knows its
RayJob; a shared cluster's drivers belong to no one RayJob.
Usage: include "cifar100.rayClusterSpec" (dict "root" $ "component" "pipeline")
*/}}
{{- define "cifar100.rayClusterSpec" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $rayJob := ternary "" (include "cifar100.rayJobName" $root) $v.ray.sharedCluster.enabled }}
{{- $autoscaling := include "cifar100.autoscaling" $root }}
{{- $ports := list (dict "name" "gcs-server" "containerPort" 6379) (dict "name" "dashboard" "containerPort" 8265) (dict "name" "client" "containerPort" 10001) }}
{{- $groups := list }}
{{- if gt (int $v.ray.workers.cpu.maxReplicas) 0 }}
{{- $groups = append $groups (dict "name" "cpu" "spec" $v.ray.workers.cpu "gpus" 0) }}
{{- end }}
{{- if gt (int $v.ray.workers.gpu.maxReplicas) 0 }}
{{- $groups = append $groups (dict "name" "gpu" "spec" $v.ray.workers.gpu "gpus" $v.ray.workers.gpu.gpus) }}
{{- end -}}
rayVersion: {{ $v.ray.version | quote }}
enableInTreeAutoscaling: {{ eq $autoscaling "true" }}
{{- if $autoscaling }}
autoscalerOptions:
  idleTimeoutSeconds: {{ int $v.ray.autoscaling.idleTimeoutSeconds }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  resources:
    {{- toYaml $v.ray.autoscaling.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  {{- /* the autoscaler runs the image's `ray` with the same read-only root: same writable paths */}}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: cache
      mountPath: {{ $v.image.homeDir }}/.cache
    - name: ray-home
      mountPath: {{ $v.image.homeDir }}/.ray
{{- end }}
authOptions:
  mode: {{ $v.ray.authMode }}
headGroupSpec:
  rayStartParams:
    {{- include "cifar100.rayStartParams" $v.ray.head.rayStartParams | nindent 4 }}
  template:
    {{- include "cifar100.podTemplate" (dict "root" $root "component" .component "container" "ray-head" "resources" $v.ray.head.resources "data" "rw" "results" "rw" "ports" $ports "fixOwnership" $v.storage.fixOwnership "token" (or (eq $autoscaling "true") $v.serviceAccount.create) "capacity" "regular" "protect" true "rayJob" $rayJob) | nindent 4 }}
workerGroupSpecs:
  {{- range $groups }}
  {{- $max := int .spec.maxReplicas }}
  - groupName: {{ .name }}
    replicas: {{ ternary 0 $max (eq $autoscaling "true") }}
    minReplicas: {{ ternary 0 $max (eq $autoscaling "true") }}
    maxReplicas: {{ $max }}
    rayStartParams:
      {{- include "cifar100.rayStartParams" .spec.rayStartParams | nindent 6 }}
    template:
      {{- include "cifar100.podTemplate" (dict "root" $root "component" $.component "container" "ray-worker" "gpus" .gpus "resources" .spec.resources "data" "rw" "results" "rw" "capacity" (ternary "spot" "" (gt (int .gpus) 0))) | nindent 6 }}
  {{- end }}
{{- end }}

{{/* `ray start` parameters as a map of strings (KubeRay's type); {} when empty. */}}
{{- define "cifar100.rayStartParams" -}}
{{- $params := dict }}
{{- range $key, $value := . }}
{{- $_ := set $params $key (toString $value) }}
{{- end }}
{{- toYaml $params }}
{{- end }}
