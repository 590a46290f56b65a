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

{{/* The training image (kubetrade with JAX) of Goals that ask for RL policies; empty when there is none. */}}
{{- define "kubetrade.trainImage" -}}
{{- with .Values.image.train -}}
{{- if .repository -}}
{{ .repository }}:{{ .tag | default $.Chart.AppVersion }}
{{- end -}}
{{- end -}}
{{- end }}

{{/* NATS URL every process connects to (never with credentials: those come from each role's Secret). */}}
{{- define "kubetrade.natsUrl" -}}
{{- if .Values.nats.bundled -}}
nats://{{ include "kubetrade.fullname" . }}-nats.{{ .Release.Namespace }}.svc:4222
{{- else -}}
{{- if contains "@" .Values.nats.external.url -}}
{{- fail "nats.external.url must not carry credentials: each role's password comes from its Secret <fullname>-nats-<role>" -}}
{{- end -}}
{{ .Values.nats.external.url }}
{{- end -}}
{{- end }}

{{/* Every NATS role (kubetrade.messaging.auth.ROLES; the chart tests compare the two). */}}
{{- define "kubetrade.natsRoles" -}}
operator api risk-manager runner goal-manager collector executor-paper executor-live
{{- end }}

{{/* The NATS identity of one role: user name, password from the role's own Secret. */}}
{{- define "kubetrade.natsIdentity" -}}
{{- if .ctx.Values.nats.auth.enabled }}
- name: KUBETRADE_NATS_USER
  value: {{ .role | quote }}
- name: KUBETRADE_NATS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "kubetrade.fullname" .ctx }}-nats-{{ .role }}, key: password}}
{{- end }}
{{- end }}

{{/* The API key pepper's Secret. */}}
{{- define "kubetrade.pepperSecret" -}}
{{ .Values.api.pepperSecret | default (printf "%s-api-pepper" (include "kubetrade.fullname" .)) }}
{{- end }}

{{/* Affinity and topology spread of one component: include with (dict "values" .Values.api). */}}
{{- define "kubetrade.podPlacement" -}}
{{- with .values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Secret (and key) holding the PostgreSQL DSN. */}}
{{- define "kubetrade.dbSecret" -}}
{{- if .Values.database.bundled -}}
{{ .Values.database.existingSecret | default (printf "%s-db" (include "kubetrade.fullname" .)) }}
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
- name: KUBETRADE_NATS_URL
  value: {{ include "kubetrade.natsUrl" .ctx | quote }}
{{- include "kubetrade.natsIdentity" (dict "ctx" .ctx "role" .component) }}
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
