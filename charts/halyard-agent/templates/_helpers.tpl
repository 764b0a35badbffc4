{{/* Common labels: every object is marked as Halyard's; the controller manager lists the agent Deployments by part-of (Helm overwrites managed-by). */}}
{{- define "halyard-agent.labels" -}}
app.kubernetes.io/managed-by: halyard
app.kubernetes.io/part-of: halyard-agent
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "halyard-agent.image" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* arc-proxy runs when a gateway or an enterprise proxy is set; the other agents reach it through its Service. */}}
{{- define "halyard-agent.arcProxy" -}}
{{- if or .Values.network.gateway .Values.network.proxy }}true{{ end -}}
{{- end -}}

{{- define "halyard-agent.arcProxyUrl" -}}
{{- printf "http://arc-proxy.%s.svc:%v" .Release.Namespace .Values.arcProxy.port -}}
{{- end -}}

{{/* Kept off the proxy: the API server (its Service address, expanded by the kubelet), the cluster's own names, and
what --proxy-skip-range lists. */}}
{{- define "halyard-agent.noProxy" -}}
{{- $names := list "$(KUBERNETES_SERVICE_HOST)" "kubernetes.default.svc" ".svc" ".cluster.local" "localhost" "127.0.0.1" -}}
{{- with .Values.network.proxySkipRange }}{{ $names = append $names . }}{{ end -}}
{{- join "," $names -}}
{{- end -}}
