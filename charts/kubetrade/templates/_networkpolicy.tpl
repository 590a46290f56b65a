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

{{/* The namespaces where the operator creates pods (runners, collectors, evolution jobs) and the API starts
     backtest Jobs: the watched ones, or - watching the whole cluster - the release's own namespace and those
     labelled by networkPolicy.workloadNamespaceSelector.  A list of namespaceSelectors. */}}
{{- define "kubetrade.np.workloadNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
- {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [{{ join ", " .Values.operator.watchNamespaces }}]}]}
{{- else -}}
- {matchLabels: {kubernetes.io/metadata.name: {{ .Release.Namespace }}}}
- {{ toJson .Values.networkPolicy.workloadNamespaceSelector }}
{{- end -}}
{{- end }}

{{/* Those pods, by the labels only the operator (or the API, for backtests) puts on them: include with
     (dict "ctx" $ "components" (list ...)). */}}
{{- define "kubetrade.np.workloadPods" -}}
{{- $components := .components -}}
{{- range $ns := include "kubetrade.np.workloadNamespaces" .ctx | fromYamlArray }}
- namespaceSelector: {{ toJson $ns }}
  podSelector:
    matchLabels: {app.kubernetes.io/name: kubetrade, app.kubernetes.io/managed-by: kubetrade-operator}
    matchExpressions:
      - {key: app.kubernetes.io/component, operator: In, values: [{{ join ", " $components }}]}
{{- end }}
{{- end }}

{{- define "kubetrade.np.backtestPods" -}}
{{- range $ns := include "kubetrade.np.workloadNamespaces" . | fromYamlArray }}
- namespaceSelector: {{ toJson $ns }}
  podSelector: {matchLabels: {app.kubernetes.io/name: kubetrade, app.kubernetes.io/component: backtest}}
{{- end }}
{{- end }}

{{- define "kubetrade.np.metricsFrom" -}}
- namespaceSelector: {{- toYaml .Values.networkPolicy.metricsNamespaceSelector | nindent 4 }}
{{- end }}
