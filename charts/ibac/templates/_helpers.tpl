{{/* The release's name, shortened to fit Kubernetes names. */}}
{{- define "ibac.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ibac.serviceAccountName" -}}
{{- default (include "ibac.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "ibac.labels" -}}
app.kubernetes.io/name: ibac
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ibac.selectorLabels" -}}
app.kubernetes.io/name: ibac
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}
