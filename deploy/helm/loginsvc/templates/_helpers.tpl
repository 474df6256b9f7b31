{{/* Names and labels, as `helm create` makes them. */}}
{{- define "loginsvc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "loginsvc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "loginsvc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "loginsvc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "loginsvc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loginsvc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "loginsvc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "loginsvc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding REDIS_URL, DEVICE_COOKIE_KEY and BOOTSTRAP_PASSWORD. */}}
{{- define "loginsvc.secretName" -}}
{{- default (include "loginsvc.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The Service's in-cluster address, as gateways in other namespaces reach it. */}}
{{- define "loginsvc.serviceHost" -}}
{{- printf "%s.%s.svc" (include "loginsvc.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
shutdownDrain in whole seconds, checked once: the preStop pause,
SHUTDOWN_DRAIN and the grace period are all derived from it.
*/}}
{{- define "loginsvc.drainSeconds" -}}
{{- $d := .Values.shutdownDrain }}
{{- if not (or (kindIs "int" $d) (kindIs "int64" $d) (kindIs "float64" $d)) }}
{{- fail (printf "shutdownDrain must be a whole number of seconds, got %v" $d) }}
{{- end }}
{{- if or (lt (float64 $d) 0.0) (ne (float64 $d) (float64 (int $d))) }}
{{- fail (printf "shutdownDrain must be a whole number of seconds >= 0, got %v" $d) }}
{{- end }}
{{- int $d }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop pause, then SHUTDOWN_DRAIN, then
the server's 15 s to finish in-flight requests (cmd/server/serve.go), then
5 s of slack before the kubelet's SIGKILL.
*/}}
{{- define "loginsvc.gracePeriodSeconds" -}}
{{- $drain := include "loginsvc.drainSeconds" . | int }}
{{- add $drain $drain 15 5 }}
{{- end }}

{{/* The variables the chart sets itself: refused in .Values.env. */}}
{{- define "loginsvc.managedEnv" -}}
ADDR METRICS_ADDR SHUTDOWN_DRAIN INSTANCE_ID REDIS_URL DEVICE_COOKIE_KEY BOOTSTRAP_PASSWORD
{{- end }}

{{/* Replicas the PodDisruptionBudget must leave room under. */}}
{{- define "loginsvc.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas | int }}{{ else }}{{ .Values.replicaCount | int }}{{ end }}
{{- end }}
