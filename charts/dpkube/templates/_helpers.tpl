{{/* Names: the release name, unless it already contains the chart's name. */}}
{{- define "dpkube.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dpkube.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "operator"). */}}
{{- define "dpkube.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dpkube.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "dpkube.runnerImage" -}}
{{- default (include "dpkube.image" .) .Values.runner.image -}}
{{- end -}}

{{- define "dpkube.operatorAccount" -}}
{{- printf "%s-operator" (include "dpkube.fullname" .) -}}
{{- end -}}

{{- define "dpkube.apiAccount" -}}
{{- printf "%s-api" (include "dpkube.fullname" .) -}}
{{- end -}}

{{/* The facade's namespace: the first query namespace. */}}
{{- define "dpkube.apiQueryNamespace" -}}
{{- first .Values.queryNamespaces.names -}}
{{- end -}}

{{/* The usernames the API server gives the operator's and facade's service accounts. */}}
{{- define "dpkube.trustedUsers" -}}
{{- list (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "dpkube.apiAccount" .)) (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "dpkube.operatorAccount" .)) | toJson -}}
{{- end -}}

{{/* Pod placement: the values', or replicas spread over nodes. (dict "root" $ "component" "api" "values" .Values.api) */}}
{{- define "dpkube.placement" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.affinity }}
affinity:
  {{- toYaml .values.affinity | nindent 2 }}
{{- else }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "dpkube.selector" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end -}}

{{/* A read-only root: whatever the libraries cache goes to the /tmp emptyDir. */}}
{{- define "dpkube.writableHome" -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: MPLCONFIGDIR
  value: /tmp
{{- end -}}

{{- define "dpkube.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}
