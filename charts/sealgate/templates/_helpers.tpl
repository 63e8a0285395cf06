{{/* The chart's name, or nameOverride. */}}
{{- define "sealgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of every object: fullnameOverride, the release name when it holds the chart's
name, else RELEASE-CHART (63 characters at most). */}}
{{- define "sealgate.fullname" -}}
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

{{- define "sealgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects the Pods (the Service, the PDB, anti-affinity). */}}
{{- define "sealgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sealgate.labels" -}}
{{ include "sealgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "sealgate.chart" . }}
{{- end -}}

{{- define "sealgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sealgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The TLS Secret, and the Lease of the same name in self-managed mode. */}}
{{- define "sealgate.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "sealgate.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "sealgate.auditTokenSecretName" -}}
{{- default (printf "%s-audit-token" (include "sealgate.fullname" .)) .Values.audit.token.existingSecret -}}
{{- end -}}

{{- define "sealgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The container's securityContext and the Pod's, shared with the uninstall hook's Job. */}}
{{- define "sealgate.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}
{{- define "sealgate.securityContext" -}}
{{- toYaml .Values.securityContext -}}
{{- end -}}

{{/* `serve`'s arguments: everything the values say, then extraArgs. */}}
{{- define "sealgate.args" -}}
{{- /* Every value quoted: args are strings, whatever YAML would make of 10 or on. */ -}}
- serve
- --kubernetes
- --service
- {{ .Release.Namespace }}/{{ include "sealgate.fullname" . }}
- --service-port
- {{ .Values.service.port | quote }}
- --webhook-name
- {{ .Values.webhookName | quote }}
- --listen
- {{ printf "0.0.0.0:%v" .Values.containerPort }}
- --data-dir
- /data
{{- if .Values.certManager.enabled }}
- --tls-cert
- /tls/tls.crt
- --tls-key
- /tls/tls.key
- --ca-bundle
- /tls/ca.crt
{{- else }}
- --tls-secret
- {{ .Release.Namespace }}/{{ include "sealgate.tlsSecretName" . }}
- --ca-validity
- {{ .Values.tls.caValidity | quote }}
- --cert-validity
- {{ .Values.tls.certValidity | quote }}
- --rotation-overlap
- {{ .Values.tls.rotationOverlap | quote }}
{{- end }}
{{- with .Values.policySelector }}
- --policy-selector
- {{ . | quote }}
{{- end }}
{{- if not .Values.policyReports }}
- --no-policy-reports
{{- end }}
- --background-scan-interval
- {{ .Values.backgroundScanInterval | quote }}
- --budget
- {{ .Values.budget | quote }}
- --cache-ttl
- {{ .Values.cacheTtl | quote }}
- --digest-cache-ttl
- {{ .Values.digestCacheTtl | quote }}
- --registry-concurrency
- {{ .Values.registry.concurrency | quote }}
- --max-concurrent-verifications
- {{ .Values.registry.maxConcurrentVerifications | quote }}
- --unattended-fetch-limit
- {{ .Values.registry.unattendedFetchLimit | quote }}
- --audit-retention
- {{ .Values.audit.retention | quote }}
- --audit-max-rows
- {{ .Values.audit.maxRows | int64 | quote }}
{{- if .Values.audit.sync }}
- --audit-sync
{{- end }}
{{- if .Values.audit.token.enabled }}
- --audit-token-file
- /etc/sealgate/audit/{{ .Values.audit.token.key }}
{{- end }}
- --log-format
- {{ .Values.logFormat | quote }}
{{- range .Values.registryPullSecrets.secrets }}
- --image-pull-secret
- {{ . | quote }}
{{- end }}
{{- if .Values.registryPullSecrets.fromPods }}
- --pod-pull-secrets
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
