{{/*
The one pod template behind every pod of the chart: the Ray head and workers, the RayJob submitter
and the Jobs. Same image, user, security context, environment and volume paths everywhere.

Usage: include "cifar100.podTemplate" (dict
  "root" $                 the chart context
  "component" "retrain"    app.kubernetes.io/component of the pod
  "container" "retrain"    name of the main container
  "command" "[...]"        JSON list from _commands.tpl; omit for Ray containers (KubeRay sets theirs)
  "gpus" 1                 GPU limit (adds gpu.nodeSelector and gpu.tolerations); 0 or omitted: none
  "resources" dict         requests and limits of the main container
  "waitFor" (list "data")  stages whose results the pod waits for: data, tune, gan
  "data" "ro"              data volume: "rw", "ro", or omitted for none
  "results" true           mount the results volume
  "shm" true               memory-backed /dev/shm (KubeRay adds its own to Ray pods)
  "restartPolicy" "Never"  omitted for Ray pods
  "ports" list             container ports
)
*/}}
{{- define "cifar100.podTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $gpus := int (default 0 .gpus) }}
{{- $resources := deepCopy (default dict .resources) }}
{{- if gt $gpus 0 }}
{{- $_ := set $resources "limits" (merge (dict $v.gpu.resourceName $gpus) (default dict $resources.limits)) }}
{{- end }}
{{- $nodeSelector := deepCopy $v.nodeSelector }}
{{- $tolerations := $v.tolerations }}
{{- if gt $gpus 0 }}
{{- $nodeSelector = mergeOverwrite $nodeSelector (deepCopy $v.gpu.nodeSelector) }}
{{- $tolerations = concat $tolerations $v.gpu.tolerations }}
{{- end }}
{{- $mounts := dict "root" $root "data" (default "" .data) "results" (default false .results) "shm" (default false .shm) -}}
metadata:
  labels:
    {{- include "cifar100.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "cifar100.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
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
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .waitFor }}
  initContainers:
    {{- range . }}
    - name: wait-for-{{ . }}
      image: {{ include "cifar100.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- /* Runs the probe (the args) until it succeeds; Job.activeDeadlineSeconds bounds the wait. */}}
      command:
        - sh
        - -c
        - {{ printf "until \"$@\"; do echo \"$0: not ready yet, next check in %ds\"; sleep %d; done" (int $v.waitFor.intervalSeconds) (int $v.waitFor.intervalSeconds) | quote }}
        - wait-for-{{ . }}
      args: {{ include (printf "cifar100.probe.%s" .) $root }}
      env:
        {{- include "cifar100.env" $root | nindent 8 }}
      resources:
        {{- toYaml $v.waitFor.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "cifar100.volumeMounts" (merge (dict "data" (ternary "ro" "" (ne $mounts.data ""))) $mounts) | nindent 8 }}
    {{- end }}
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
      {{- with .ports }}
      ports:
        {{- toYaml . | nindent 8 }}
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
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
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
  readOnly: {{ ne .data "rw" }}
{{- end }}
{{- if .results }}
- name: results
  mountPath: {{ $v.storage.results.mountPath }}
{{- end }}
{{- if .shm }}
- name: dshm
  mountPath: /dev/shm
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
{{- /* a local Ray (cifar pipeline) writes its auth token to ~/.ray */}}
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
{{- end }}
{{- if .shm }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $v.scratch.shmSizeLimit }}
{{- end }}
{{- end }}

{{/*
The RayCluster spec shared by the RayJob (a cluster per search) and the long-lived RayCluster.
Head and workers come from the same pod template. Usage: include "cifar100.rayClusterSpec" (dict "root" $ "component" "tune")
*/}}
{{- define "cifar100.rayClusterSpec" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $p := include "cifar100.profile" $root | fromYaml }}
{{- $ports := list (dict "name" "gcs-server" "containerPort" 6379) (dict "name" "dashboard" "containerPort" 8265) (dict "name" "client" "containerPort" 10001) -}}
rayVersion: {{ $v.ray.version | quote }}
enableInTreeAutoscaling: false
authOptions:
  mode: {{ $v.ray.authMode }}
headGroupSpec:
  rayStartParams:
    {{- include "cifar100.rayStartParams" $v.ray.head.rayStartParams | nindent 4 }}
  template:
    {{- include "cifar100.podTemplate" (dict "root" $root "component" .component "container" "ray-head" "resources" $p.resources.rayHead "waitFor" (list "data") "data" "ro" "results" true "ports" $ports) | nindent 4 }}
workerGroupSpecs:
  - groupName: {{ $v.ray.worker.groupName }}
    replicas: {{ int $p.rayWorkers }}
    minReplicas: {{ int $p.rayWorkers }}
    maxReplicas: {{ int $p.rayWorkers }}
    rayStartParams:
      {{- include "cifar100.rayStartParams" $v.ray.worker.rayStartParams | nindent 6 }}
    template:
      {{- include "cifar100.podTemplate" (dict "root" $root "component" .component "container" "ray-worker" "gpus" $p.gpusPerPod "resources" $p.resources.rayWorker "data" "ro" "results" true) | nindent 6 }}
{{- end }}

{{/* `ray start` parameters as a map of strings (KubeRay's type); {} when empty. */}}
{{- define "cifar100.rayStartParams" -}}
{{- $params := dict }}
{{- range $key, $value := . }}
{{- $_ := set $params $key (toString $value) }}
{{- end }}
{{- toYaml $params }}
{{- end }}

{{/*
Job settings shared by every Job. Exit status 2 is the CLI's "error: ..." (a user error that a retry
cannot fix), so it fails the Job at once; evictions and preemptions do not count as failures.
Usage: include "cifar100.jobSpec" (dict "root" $ "container" "retrain")
*/}}
{{- define "cifar100.jobSpec" -}}
{{- $j := .root.Values.jobs -}}
backoffLimit: {{ int $j.backoffLimit }}
activeDeadlineSeconds: {{ int $j.activeDeadlineSeconds }}
{{- if not (kindIs "invalid" $j.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ int $j.ttlSecondsAfterFinished }}
{{- end }}
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: {{ .container }}
        operator: In
        values: [2]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
{{- end }}
