{{/* One Slack receiver entry of the AlertmanagerConfig. */}}
{{- define "kubetrade.am.slack" -}}
- apiURL: {name: {{ .secret }}, key: slackWebhookUrl}
  channel: {{ .channel | quote }}
  sendResolved: true
  title: '[{{ "{{" }} .Status | toUpper {{ "}}" }}] {{ "{{" }} .CommonLabels.alertname {{ "}}" }}'
  text: '{{ "{{" }} range .Alerts {{ "}}" }}{{ "{{" }} .Annotations.summary {{ "}}" }}{{ "{{" }} "\n" {{ "}}" }}{{ "{{" }} end {{ "}}" }}'
{{- end }}
