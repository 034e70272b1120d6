{{/* Names, labels and the security settings every pod of the chart shares. */}}

{{- define "ppml.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ppml.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The key service's object names. 52 characters leave room for the
StatefulSet's pod suffix and the volume claim's prefix. */}}
{{- define "ppml.kms.name" -}}
{{- printf "%s-kms" (include "ppml.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "ppml.kms.internalName" -}}
{{- printf "%s-internal" (include "ppml.kms.name" .) -}}
{{- end -}}

{{- define "ppml.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "ppml.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ppml
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a pod template: no chart or app version, so that upgrading
the chart alone does not restart the key service (which restarts sealed). */}}
{{- define "ppml.podLabels" -}}
{{ include "ppml.selectorLabels" . }}
app.kubernetes.io/part-of: ppml
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "kms"). */}}
{{- define "ppml.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ppml.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository@digest when a digest is given (it pins the bytes), else
repository:tag (tag defaults to the chart's appVersion). Call with
(dict "image" .Values.kms.image "root" $). */}}
{{- define "ppml.image" -}}
{{- if .image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .image.digest) -}}
{{- fail (printf "image digest %q of %s: want sha256: and 64 lowercase hex digits" .image.digest .image.repository) -}}
{{- end -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The URL workers use to reach the key service. */}}
{{- define "ppml.kms.url" -}}
{{- if .Values.runtime.kms.url -}}
{{- .Values.runtime.kms.url -}}
{{- else -}}
{{- printf "https://%s.%s.svc:%d" (include "ppml.kms.name" .) .Release.Namespace (int .Values.kms.service.port) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security: a fixed non-root user, the runtime's default
seccomp profile, no service account token (nothing in ppml talks to the
Kubernetes API). Not configurable: a value cannot weaken it. */}}
{{- define "ppml.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ppml.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Every container gets limits: a pod without them can take a node's
memory, and under SGX the enclave size is fixed anyway. */}}
{{- define "ppml.resources" -}}
{{- if not .resources.limits -}}
{{- fail (printf "%s: resources.limits is required (cpu and memory)" .what) -}}
{{- end -}}
{{- if not (and .resources.limits.cpu .resources.limits.memory) -}}
{{- fail (printf "%s: resources.limits needs both cpu and memory" .what) -}}
{{- end -}}
{{- toYaml .resources -}}
{{- end -}}
