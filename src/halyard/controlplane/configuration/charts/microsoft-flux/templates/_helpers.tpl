{{- define "microsoft-flux.labels" -}}
app.kubernetes.io/part-of: flux
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Namespace }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "microsoft-flux.image" -}}
{{- $ := index . 0 }}{{- $c := index . 1 }}
{{- printf "%s/%s:%s" $.Values.registry $c.repository $c.tag }}
{{- end }}
