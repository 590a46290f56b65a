{{/* Name prefix of every object: the release name unless overridden. */}}
{{- define "kubetrade.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{- define "kubetrade.labels" -}}
app.kubernetes.io/name: kubetrade
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "api"). */}}
{{- define "kubetrade.selector" -}}
app.kubernetes.io/name: kubetrade
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kubetrade.componentLabels" -}}
{{ include "kubetrade.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kubetrade.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* NATS URL every process connects to. */}}
{{- define "kubetrade.natsUrl" -}}
{{- if .Values.nats.bundled -}}
nats://{{ include "kubetrade.fullname" . }}-nats.{{ .Release.Namespace }}.svc:4222
{{- else -}}
{{ .Values.nats.external.url }}
{{- end -}}
{{- end }}

{{/* Secret (and key) holding the PostgreSQL DSN. */}}
{{- define "kubetrade.dbSecret" -}}
{{- if .Values.database.bundled -}}
{{ include "kubetrade.fullname" . }}-db
{{- else -}}
{{ .Values.database.external.existingSecret }}
{{- end -}}
{{- end }}
{{- define "kubetrade.dbSecretKey" -}}
{{- if .Values.database.bundled -}}url{{- else -}}{{ .Values.database.external.secretKey }}{{- end -}}
{{- end }}

{{/* Pod-level security context meeting the "restricted" Pod Security Standard. */}}
{{- define "kubetrade.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "kubetrade.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{/* Scheduling and pull secrets shared by every pod. */}}
{{- define "kubetrade.podCommon" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Environment every kubetrade process gets: connections, logs, metrics, traces. */}}
{{- define "kubetrade.commonEnv" -}}
{{- if and (not .ctx.Values.nats.bundled) .ctx.Values.nats.external.existingSecret }}
- name: KUBETRADE_NATS_URL
  valueFrom: {secretKeyRef: {name: {{ .ctx.Values.nats.external.existingSecret }}, key: url}}
{{- else }}
- name: KUBETRADE_NATS_URL
  value: {{ include "kubetrade.natsUrl" .ctx | quote }}
{{- end }}
- name: KUBETRADE_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "kubetrade.dbSecret" .ctx }}, key: {{ include "kubetrade.dbSecretKey" .ctx }}}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: NUMBA_CACHE_DIR
  value: /tmp/numba-cache
- name: OTEL_SERVICE_NAME
  value: {{ printf "kubetrade-%s" .component | quote }}
{{- if .ctx.Values.tracing.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .ctx.Values.tracing.otlpEndpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .ctx.Values.tracing.samplerRatio | quote }}
{{- end }}
{{- with .ctx.Values.alerting.alertmanagerUrl }}
- name: KUBETRADE_ALERTMANAGER_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
