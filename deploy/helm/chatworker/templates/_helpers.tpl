{{- define "chatworker.name" -}}
{{- default "chat-worker" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chatworker.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "chatworker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chatworker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "worker"). */}}
{{- define "chatworker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatworker.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chatworker.labels" -}}
{{ include "chatworker.selectorLabels" . }}
app.kubernetes.io/part-of: chatworker
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "chatworker.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/*
The settings every pod reads, as a YAML map of variable to string: the
ConfigMap holds them for the worker and the export CronJob; the provision
hook Job, which runs before the ConfigMap exists, gets them inline. Either
way all read the same values (docs/configuration.md: give worker run and
worker provision the same ones, or each undoes the other).
*/}}
{{- define "chatworker.settings" -}}
{{- $w := .Values.worker -}}
{{- $r := .Values.retention -}}
{{- $s := dict
  "NATS_URL" .Values.nats.url
  "CHAT_API_URL" .Values.chatAPI.url
  "WORKER_CONCURRENCY" ($w.concurrency | int64 | toString)
  "WORKER_HTTP_ADDR" (printf ":%d" ($w.httpPort | int64))
  "WORKER_LOG_LEVEL" $w.logLevel
  "WORKER_LOG_FORMAT" $w.logFormat
  "WORKER_STREAM_REPLICAS" (.Values.nats.streamReplicas | int64 | toString)
  "WORKER_SHUTDOWN_GRACE" $w.shutdownGrace -}}
{{- range $k, $v := dict
  "WORKER_ACK_WAIT" $w.ackWait
  "WORKER_SUBJECT_PREFIX" $w.subjectPrefix
  "WORKER_IDEMPOTENCY_BUCKET" $w.idempotencyBucket
  "WORKER_IDEMPOTENCY_LEASE" $w.idempotencyLease
  "WORKER_EXPORT_BUCKET" $w.exportBucket
  "WORKER_RETRY_MAX_ELAPSED" $w.retry.maxElapsed
  "WORKER_RETRY_INITIAL_INTERVAL" $w.retry.initialInterval
  "WORKER_RETRY_MAX_INTERVAL" $w.retry.maxInterval
  "WORKER_RETRY_IN_PROCESS_MAX" $w.retry.inProcessMax
  "WORKER_IDEMPOTENCY_TTL" $r.idempotencyTTL
  "WORKER_COMMANDS_MAX_AGE" $r.commandsMaxAge
  "WORKER_RESULTS_MAX_AGE" $r.resultsMaxAge
  "WORKER_DUPLICATE_WINDOW" $r.duplicateWindow
  "WORKER_DLQ_MAX_AGE" $r.dlqMaxAge }}
{{- if $v }}{{ $_ := set $s $k $v }}{{ end }}
{{- end }}
{{- range $k, $v := dict
  "WORKER_MAX_DELIVER" $w.maxDeliver
  "WORKER_RETRY_MAX_ATTEMPTS" $w.retry.maxAttempts
  "WORKER_DLQ_MAX_MSGS" $r.dlqMaxMsgs
  "WORKER_DLQ_MAX_BYTES" $r.dlqMaxBytes }}
{{- if not (kindIs "invalid" $v) }}{{ $_ := set $s $k ($v | int64 | toString) }}{{ end }}
{{- end }}
{{- if not (kindIs "invalid" $w.perChatOrder) }}{{ $_ := set $s "WORKER_PER_CHAT_ORDER" ($w.perChatOrder | toString) }}{{ end }}
{{- range $k, $v := $w.extraEnv }}{{ $_ := set $s $k $v }}{{ end }}
{{- toYaml $s }}
{{- end -}}

{{- define "chatworker.apiDir" -}}/var/run/secrets/chatworker/api{{- end -}}
{{- define "chatworker.natsDir" -}}/var/run/secrets/chatworker/nats{{- end -}}

{{/* Credential files: (dict "root" $ "api" true "projects" true); only `worker run` serves more projects. */}}
{{- define "chatworker.credentialsEnv" -}}
{{- $v := .root.Values -}}
{{- if .api }}
- name: GOSQUARED_API_KEY_FILE
  value: {{ include "chatworker.apiDir" . }}/{{ $v.chatAPI.apiKeyKey }}
- name: GOSQUARED_SITE_TOKEN_FILE
  value: {{ include "chatworker.apiDir" . }}/{{ $v.chatAPI.siteTokenKey }}
{{- if and .projects $v.chatAPI.projectsKey }}
- name: GOSQUARED_PROJECTS_FILE
  value: {{ include "chatworker.apiDir" . }}/{{ $v.chatAPI.projectsKey }}
{{- end }}
{{- end }}
{{- if $v.nats.credentials.existingSecret }}
- name: NATS_CREDS
  value: {{ include "chatworker.natsDir" . }}/{{ $v.nats.credentials.key }}
{{- end }}
{{- end -}}

{{- define "chatworker.credentialsMounts" -}}
{{- if .api }}
- name: api-credentials
  mountPath: {{ include "chatworker.apiDir" . }}
  readOnly: true
{{- end }}
{{- if .root.Values.nats.credentials.existingSecret }}
- name: nats-credentials
  mountPath: {{ include "chatworker.natsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "chatworker.credentialsVolumes" -}}
{{- if .api }}
- name: api-credentials
  secret:
    secretName: {{ .root.Values.chatAPI.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if .root.Values.nats.credentials.existingSecret }}
- name: nats-credentials
  secret:
    secretName: {{ .root.Values.nats.credentials.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* What every pod of ours shares besides its container. */}}
{{- define "chatworker.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
