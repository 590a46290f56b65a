{{/* Peers shared by the NetworkPolicies.  Every peer names its namespace (by the immutable
     kubernetes.io/metadata.name, or a namespace label only cluster administrators set) AND labels
     of the pod: a pod label alone can be put on any pod by whoever creates pods anywhere. */}}

{{/* The release's own processes, in the release's namespace: include with (dict "ctx" $ "components" (list ...)). */}}
{{- define "kubetrade.np.releasePods" -}}
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: {{ .ctx.Release.Namespace }}}}
  podSelector:
    matchLabels: {app.kubernetes.io/name: kubetrade, app.kubernetes.io/instance: {{ .ctx.Release.Name }}}
    matchExpressions:
      - {key: app.kubernetes.io/component, operator: In, values: [{{ join ", " .components }}]}
{{- end }}

{{/* Pods the operator creates (runners, collectors, evolution jobs) and the API's backtest Jobs, in the
     namespaces the operator watches (or, cluster-wide, those labelled by networkPolicy.workloadNamespaceSelector). */}}
{{- define "kubetrade.np.workloadNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [{{ join ", " .Values.operator.watchNamespaces }}]}]}
{{- else -}}
{{ toJson .Values.networkPolicy.workloadNamespaceSelector }}
{{- end -}}
{{- end }}
{{- define "kubetrade.np.workloadPods" -}}
- namespaceSelector: {{ include "kubetrade.np.workloadNamespaces" .ctx }}
  podSelector:
    matchLabels: {app.kubernetes.io/name: kubetrade, app.kubernetes.io/managed-by: kubetrade-operator}
    matchExpressions:
      - {key: app.kubernetes.io/component, operator: In, values: [{{ join ", " .components }}]}
{{- end }}

{{- define "kubetrade.np.metricsFrom" -}}
- namespaceSelector: {{- toYaml .Values.networkPolicy.metricsNamespaceSelector | nindent 4 }}
{{- end }}
