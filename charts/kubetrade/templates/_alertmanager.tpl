{{/*
Alertmanager's configuration for kubetrade (plain Alertmanager 0.25 format), built from
.Values.alerting.  No credential is in it: Slack's and e-mail's are files of the mounted
Secret (api_url_file, auth_password_file, the receiver token's credentials_file); Telegram's
bot token, Discord's and the generic webhook's URLs (no *_file field before 0.26) are
"kubetrade-secret:<key>", which `kubetrade alertmanager-config render` replaces in the pod.

Routing: every alert to kubetrade-record (the API's history, continue); alerts that name
their channels (API rules: label channels="email,sms") to those channels; all others by
severity to alerting.routing.<severity>.channels.  Each channel's receiver carries a copy
webhook to the API beside its own integration (delivery tracking); SMS is the API's notifier.
*/}}
{{- define "kubetrade.am.receiverUrl" -}}
{{- $a := .Values.alerting -}}
{{- if $a.receiverUrl -}}{{ trimSuffix "/" $a.receiverUrl }}{{- else -}}
http://{{ include "kubetrade.fullname" . }}-api.{{ .Release.Namespace }}.svc:{{ .Values.api.port }}
{{- end -}}
{{- end }}

{{- define "kubetrade.am.config" -}}
{{- $a := .Values.alerting -}}
{{- $c := $a.channels -}}
{{- $r := $a.routing -}}
{{- $secrets := trimSuffix "/" $a.secretsPath -}}
{{- $api := include "kubetrade.am.receiverUrl" . -}}
{{- $auth := dict "authorization" (dict "type" "Bearer" "credentials_file" (printf "%s/receiverToken" $secrets)) -}}
{{- $enabled := list -}}
{{- range $name := list "email" "sms" "telegram" "discord" "slack" "webhook" -}}
{{- if (index $c $name).enabled }}{{ $enabled = append $enabled $name }}{{ end -}}
{{- end -}}
{{- $receivers := list (dict "name" "kubetrade-null") -}}
{{- $receivers = append $receivers (dict "name" "kubetrade-record" "webhook_configs" (list (dict "url" (printf "%s/api/v1/alerts/receiver/record" $api) "send_resolved" true "http_config" $auth))) -}}
{{- range $name := $enabled -}}
{{- $ch := index $c $name -}}
{{- $recv := dict "name" (printf "kubetrade-%s" $name) -}}
{{- $hooks := list -}}
{{- if eq $name "sms" -}}
{{- $hooks = append $hooks (dict "url" (printf "%s/api/v1/alerts/receiver/sms" $api) "send_resolved" $ch.sendResolved "max_alerts" (int $ch.maxAlerts) "http_config" $auth) -}}
{{- else -}}
{{- $hooks = append $hooks (dict "url" (printf "%s/api/v1/alerts/receiver/copy/%s" $api $name) "send_resolved" $ch.sendResolved "http_config" $auth) -}}
{{- end -}}
{{- if eq $name "email" -}}
{{- $email := dict "to" $ch.to "from" $ch.from "smarthost" $ch.smarthost "require_tls" $ch.requireTls "send_resolved" $ch.sendResolved "headers" (dict "Subject" "[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})") "text" "{{ range .Alerts }}[{{ .Status | toUpper }}] {{ .Labels.alertname }} ({{ .Labels.severity }}): {{ .Annotations.summary }}\n{{ .Annotations.description }}\nstarted {{ .StartsAt }}\n\n{{ end }}" -}}
{{- if $ch.authUsername }}{{ $_ := set $email "auth_username" $ch.authUsername }}{{ $_ := set $email "auth_password_file" (printf "%s/smtpPassword" $secrets) }}{{ end -}}
{{- if $ch.caKey }}{{ $_ := set $email "tls_config" (dict "ca_file" (printf "%s/%s" $secrets $ch.caKey)) }}{{ end -}}
{{- $_ := set $recv "email_configs" (list $email) -}}
{{- else if eq $name "slack" -}}
{{- $_ := set $recv "slack_configs" (list (dict "api_url_file" (printf "%s/slackWebhookUrl" $secrets) "channel" $ch.channel "send_resolved" $ch.sendResolved "title" "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}" "text" "{{ range .Alerts }}{{ .Labels.severity }}: {{ .Annotations.summary }}\n{{ end }}")) -}}
{{- else if eq $name "discord" -}}
{{- $_ := set $recv "discord_configs" (list (dict "webhook_url" "kubetrade-secret:discordWebhookUrl" "send_resolved" $ch.sendResolved "title" "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}" "message" "{{ range .Alerts }}{{ .Labels.severity }}: {{ .Annotations.summary }}\n{{ end }}")) -}}
{{- else if eq $name "telegram" -}}
{{- $_ := set $recv "telegram_configs" (list (dict "bot_token" "kubetrade-secret:telegramBotToken" "chat_id" (int64 $ch.chatId) "api_url" $ch.apiUrl "parse_mode" "HTML" "send_resolved" $ch.sendResolved "message" "{{ range .Alerts }}<b>[{{ .Status | toUpper }}] {{ .Labels.alertname }}</b> ({{ .Labels.severity }})\n{{ .Annotations.summary }}\n{{ end }}")) -}}
{{- else if eq $name "webhook" -}}
{{- $hooks = prepend $hooks (dict "url" "kubetrade-secret:webhookUrl" "send_resolved" $ch.sendResolved) -}}
{{- end -}}
{{- $_ := set $recv "webhook_configs" $hooks -}}
{{- $receivers = append $receivers $recv -}}
{{- end -}}
{{- $routes := list (dict "receiver" "kubetrade-record" "continue" true "group_wait" "0s" "group_interval" "1m" "repeat_interval" "24h") -}}
{{- $byChannel := list -}}
{{- range $name := $enabled -}}
{{- $byChannel = append $byChannel (dict "receiver" (printf "kubetrade-%s" $name) "matchers" (list (printf "channels=~\"(.+,)?%s(,.+)?\"" $name)) "continue" true) -}}
{{- end -}}
{{- $user := dict "receiver" "kubetrade-null" "matchers" (list "channels=~\".+\"") "group_by" (list "rule_id") "group_wait" $r.userAlerts.groupWait "group_interval" $r.userAlerts.groupInterval "repeat_interval" $r.userAlerts.repeatInterval -}}
{{- if $byChannel }}{{ $_ := set $user "routes" $byChannel }}{{ end -}}
{{- $routes = append $routes $user -}}
{{- range $severity := list "critical" "warning" "info" -}}
{{- $s := index $r $severity -}}
{{- $children := list -}}
{{- range $name := $s.channels -}}
{{- if has $name $enabled }}{{ $children = append $children (dict "receiver" (printf "kubetrade-%s" $name) "continue" true) }}{{ end -}}
{{- end -}}
{{- $route := dict "receiver" "kubetrade-null" "matchers" (list (printf "severity=\"%s\"" $severity)) "group_wait" $s.groupWait "group_interval" $s.groupInterval "repeat_interval" $s.repeatInterval -}}
{{- if $children }}{{ $_ := set $route "routes" $children }}{{ end -}}
{{- $routes = append $routes $route -}}
{{- end -}}
{{- $config := dict "global" (dict "resolve_timeout" "5m") -}}
{{- $_ := set $config "route" (dict "receiver" "kubetrade-null" "group_by" $r.groupBy "group_wait" $r.groupWait "group_interval" $r.groupInterval "repeat_interval" $r.repeatInterval "routes" $routes) -}}
{{- $_ := set $config "inhibit_rules" (list
  (dict "source_matchers" (list "alertname=\"KubetradeDrawdownExceeded\"") "target_matchers" (list "alertname=\"KubetradeDrawdownNearLimit\"") "equal" (list "namespace" "policy"))
  (dict "source_matchers" (list "alertname=~\"KubetradeCircuitBreakerTripped|KubetradeBreakerTripped\"") "target_matchers" (list "alertname=~\"KubetradeDrawdownNearLimit|KubetradePositionLimitBreached\"") "equal" (list "namespace"))
  (dict "source_matchers" (list "alertname=\"KubetradeBreakerTripped\"") "target_matchers" (list "alertname=\"KubetradeCircuitBreakerTripped\"") "equal" (list "environment" "namespace" "policy"))
  (dict "source_matchers" (list "alertname=\"KubetradeServiceDown\"") "target_matchers" (list "severity=~\"warning|info\"") "equal" (list "instance"))
  (dict "source_matchers" (list "alertname=\"KubetradePromotedToLive\"") "target_matchers" (list "alertname=\"KubetradeStrategyActivated\"") "equal" (list "namespace" "strategy"))
  (dict "source_matchers" (list "alertname=\"KubetradeGoalReached\"") "target_matchers" (list "alertname=\"KubetradeGoalMilestone\"") "equal" (list "namespace" "goal"))
) -}}
{{- $_ := set $config "receivers" $receivers -}}
{{- toYaml $config -}}
{{- end }}
