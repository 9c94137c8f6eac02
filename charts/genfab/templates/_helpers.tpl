{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "genfab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "genfab.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "genfab.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "genfab.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "genfab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "genfab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "genfab.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "genfab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: genfab
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "genfab.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "genfab.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Namespaces the chart prepares for stage Pods (ServiceAccount, NetworkPolicy, created Secret): the
watched ones (namespaced mode), else the release's plus stages.tenantNamespaces (cluster-wide mode). */}}
{{- define "genfab.stageNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- if .Values.stages.tenantNamespaces -}}
{{- fail "stages.tenantNamespaces is for cluster-wide mode: with operator.watchNamespaces the chart prepares every watched namespace" -}}
{{- end -}}
{{- toJson .Values.operator.watchNamespaces -}}
{{- else -}}
{{- toJson (prepend .Values.stages.tenantNamespaces .Release.Namespace | uniq) -}}
{{- end -}}
{{- end -}}

{{/* Name of the stage Pods' NetworkPolicy in each prepared namespace. */}}
{{- define "genfab.stageNetworkPolicy" -}}
{{- printf "%s-stages" (include "genfab.fullname" .) -}}
{{- end -}}

{{- define "genfab.operatorImage" -}}
{{- $img := .Values.operator.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Image of one stage family: the override, else {registry}/genfab-{family}@{digest} when a digest
is set, else {registry}/genfab-{family}:{tag}. */}}
{{- define "genfab.stageImage" -}}
{{- $images := .root.Values.stages.images -}}
{{- $override := get $images.overrides .family -}}
{{- $digest := get $images.digests .family -}}
{{- if $override -}}
{{- $override -}}
{{- else if $digest -}}
{{- printf "%s/genfab-%s@%s" (trimSuffix "/" $images.registry) .family $digest -}}
{{- else -}}
{{- printf "%s/genfab-%s:%s" (trimSuffix "/" $images.registry) .family (default .root.Chart.AppVersion $images.tag) -}}
{{- end -}}
{{- end -}}

{{/* The restricted securityContext every genfab container runs with. */}}
{{- define "genfab.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Default storage for resources without spec.storage, in the API's JSON form (GENFAB_DEFAULT_STORAGE). */}}
{{- define "genfab.defaultStorage" -}}
{{- $s := .Values.storage -}}
{{- $out := dict "region" $s.region "addressingStyle" $s.addressingStyle -}}
{{- if $s.endpoint -}}{{- $_ := set $out "endpoint" $s.endpoint -}}{{- end -}}
{{- if $s.secret.name -}}{{- $_ := set $out "secretRef" (dict "name" $s.secret.name) -}}{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The operator's environment: the settings genfab.operator.settings reads. */}}
{{- /* The Secrets the operator may read: rbac.secretNames plus the chart's storage Secret (JSON list). */ -}}
{{- define "genfab.secretNames" -}}
{{- $names := .Values.rbac.secretNames | default list -}}
{{- if .Values.storage.secret.name -}}{{- $names = append $names .Values.storage.secret.name -}}{{- end -}}
{{- toJson ($names | uniq) -}}
{{- end -}}

{{- define "genfab.operatorEnv" -}}
{{- $root := . -}}
{{- range $family := keys .Values.stages.images.overrides | sortAlpha }}
- name: GENFAB_IMAGE_{{ upper $family }}
  value: {{ include "genfab.stageImage" (dict "root" $root "family" $family) | quote }}
{{- end }}
- name: GENFAB_IMAGE_PULL_POLICY
  value: {{ .Values.stages.pullPolicy | quote }}
- name: GENFAB_GPU_RESOURCE
  value: {{ .Values.stages.gpu.resourceName | quote }}
- name: GENFAB_GPU_NODE_SELECTOR
  value: {{ toJson .Values.stages.gpu.nodeSelector | quote }}
- name: GENFAB_GPU_TOLERATIONS
  value: {{ toJson .Values.stages.gpu.tolerations | quote }}
- name: GENFAB_HOST_PATH_PREFIXES
  value: {{ toJson .Values.stages.hostPathPrefixes | quote }}
- name: GENFAB_ALLOWED_TOLERATIONS
  value: {{ toJson .Values.stages.placement.allowedTolerations | quote }}
- name: GENFAB_ALLOWED_NODE_SELECTOR_KEYS
  value: {{ toJson .Values.stages.placement.allowedNodeSelectorKeys | quote }}
- name: GENFAB_ALLOWED_PRIORITY_CLASSES
  value: {{ toJson .Values.stages.placement.allowedPriorityClasses | quote }}
- name: GENFAB_SECRET_NAMES
  value: {{ include "genfab.secretNames" . | quote }}
- name: GENFAB_STORAGE_PREFIXES
  value: {{ toJson .Values.storage.prefixes | quote }}
- name: GENFAB_AMBIENT_CREDENTIALS
  value: {{ .Values.storage.ambientCredentials | quote }}
- name: GENFAB_STORAGE_ENDPOINTS
  value: {{ toJson .Values.storage.endpoints | quote }}
- name: GENFAB_FILE_PREFIXES
  value: {{ toJson .Values.storage.filePrefixes | quote }}
{{- with .Values.operator.readBounds }}
- name: GENFAB_READ_BOUNDS
  value: {{ toJson . | quote }}
{{- end }}
- name: GENFAB_STAGE_SERVICE_ACCOUNT
  value: {{ .Values.stages.serviceAccount.name | quote }}
- name: GENFAB_STAGE_NETWORK_POLICY
  value: {{ ternary (include "genfab.stageNetworkPolicy" .) "" .Values.networkPolicy.enabled | quote }}
- name: GENFAB_GROUP_NETWORK_POLICY
  value: {{ .Values.networkPolicy.processGroups | quote }}
- name: GENFAB_STAGE_METRICS_FROM
  value: {{ ternary .Values.networkPolicy.metricsFrom (list) .Values.networkPolicy.enabled | toJson | quote }}
- name: GENFAB_CUSTOM_STAGE_CREDENTIALS
  value: {{ .Values.stages.customStageCredentials | quote }}
- name: GENFAB_STREAMING
  value: {{ .Values.stages.streaming | quote }}
- name: GENFAB_IDLE_RELEASE_SECONDS
  value: {{ .Values.stages.idleReleaseSeconds | quote }}
- name: GENFAB_STAGE_EPHEMERAL_STORAGE
  value: {{ .Values.stages.ephemeralStorage | quote }}
- name: GENFAB_STAGE_UID
  value: {{ .Values.stages.runAsUser | quote }}
- name: GENFAB_DEFAULT_STORAGE
  value: {{ include "genfab.defaultStorage" . | quote }}
- name: GENFAB_DEFAULT_QUEUE
  value: {{ .Values.kueue.defaultQueue | quote }}
- name: GENFAB_KUEUE_ELASTIC_JOBS
  value: {{ .Values.kueue.elasticJobs | quote }}
- name: GENFAB_PROGRESS_SECONDS
  value: {{ .Values.operator.progressSeconds | quote }}
- name: GENFAB_RESYNC_SECONDS
  value: {{ .Values.operator.resyncSeconds | quote }}
- name: GENFAB_RELIST_SECONDS
  value: {{ .Values.operator.relistSeconds | quote }}
{{- end -}}
