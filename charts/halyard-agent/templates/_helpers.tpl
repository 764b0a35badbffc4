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
