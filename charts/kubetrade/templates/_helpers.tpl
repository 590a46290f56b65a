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
{{- with include "kubetrade.alertmanagerUrls" .ctx }}
- name: KUBETRADE_ALERTMANAGER_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Where alerts are posted: alerting.alertmanagerUrl, else each replica of the chart's Alertmanager. */}}
{{- define "kubetrade.alertmanagerUrls" -}}
{{- $a := .Values.alerting -}}
{{- if $a.alertmanagerUrl -}}
{{ $a.alertmanagerUrl }}
{{- else if $a.alertmanager.enabled -}}
{{- $name := printf "%s-alertmanager" (include "kubetrade.fullname" .) -}}
{{- $urls := list -}}
{{- range $i := until (int $a.alertmanager.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s-peers.%s.svc:9093" $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{ join "," $urls }}
{{- end -}}
{{- end }}

{{/* The API's alert delivery settings: the receiver token, channel limits, the SMS notifier's Twilio account. */}}
{{- define "kubetrade.alertingEnv" -}}
{{- $a := .Values.alerting -}}
{{- if or $a.alertmanager.enabled $a.alertmanagerUrl }}
- name: KUBETRADE_ALERT_RECEIVER_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $a.secretName }}, key: receiverToken, optional: true}}
{{- end }}
{{- with $a.channelLimits }}
- name: KUBETRADE_ALERT_CHANNEL_LIMITS
  value: {{ $first := true }}{{ range $k, $v := . }}{{ if not $first }},{{ end }}{{ $k }}={{ $v }}{{ $first = false }}{{ end }}
{{- end }}
{{- if $a.channels.sms.enabled }}
- name: KUBETRADE_TWILIO_ACCOUNT_SID
  valueFrom: {secretKeyRef: {name: {{ $a.secretName }}, key: twilioAccountSid}}
- name: KUBETRADE_TWILIO_AUTH_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $a.secretName }}, key: twilioAuthToken}}
- name: KUBETRADE_SMS_TO
  valueFrom: {secretKeyRef: {name: {{ $a.secretName }}, key: smsTo}}
- name: KUBETRADE_SMS_FROM
  value: {{ $a.channels.sms.from | quote }}
- name: KUBETRADE_TWILIO_API_URL
  value: {{ $a.channels.sms.apiUrl | quote }}
{{- end }}
{{- end }}
