{{- define "kubetrade.natsConfig" -}}
{{- $fullname := include "kubetrade.fullname" . -}}
{{- $replicas := int .Values.nats.replicas -}}
server_name: $POD_NAME
listen: 0.0.0.0:4222
http: 0.0.0.0:8222
max_payload: 8MB
jetstream {
  store_dir: /data/jetstream
  max_file_store: {{ .Values.nats.storage | replace "Gi" "G" | replace "Mi" "M" }}
}
{{- if .Values.nats.auth.enabled }}
# One user per kubetrade role, each allowed only its own subjects (kubetrade.messaging.auth,
# generated into files/nats/authorization.conf); passwords from the roles' Secrets, by variable.
{{ .Files.Get "files/nats/authorization.conf" }}
{{- end }}
{{- if gt $replicas 1 }}
cluster {
  name: {{ $fullname }}-nats
  listen: 0.0.0.0:6222
  routes: [
    {{- range $i := until $replicas }}
    nats://{{ $fullname }}-nats-{{ $i }}.{{ $fullname }}-nats-headless.{{ $.Release.Namespace }}.svc:6222
    {{- end }}
  ]
}
{{- end }}
{{- end }}
