{{/* Peers shared by the NetworkPolicies. */}}
{{- define "kubetrade.np.anyKubetradePod" -}}
- namespaceSelector: {}
  podSelector: {matchLabels: {app.kubernetes.io/name: kubetrade}}
{{- end }}
{{- define "kubetrade.np.metricsFrom" -}}
- namespaceSelector: {{- toYaml .Values.networkPolicy.metricsNamespaceSelector | nindent 4 }}
{{- end }}
