{{/* Job workers: one pod template for every kind of job, and what each TEE
adds to it. Called with (dict "root" $ "job" $job). */}}

{{- define "ppml.job.name" -}}
{{- $n := printf "%s-%s" (include "ppml.fullname" .root) .job.name -}}
{{- if gt (len $n) 56 -}}
{{- fail (printf "jobs[%s]: the object name %q is %d characters, at most 56 fit (pod names add an index): shorten the job name or the release name" .job.name $n (len $n)) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{- define "ppml.job.labels" -}}
{{ include "ppml.labels" .root }}
app.kubernetes.io/component: worker
ppml.io/job: {{ .job.name }}
{{- end -}}

{{- define "ppml.job.selectorLabels" -}}
{{ include "ppml.selectorLabels" (dict "root" .root "component" "worker") }}
ppml.io/job: {{ .job.name }}
{{- end -}}

{{/* Refuses a job entry that cannot work, naming the field. */}}
{{- define "ppml.job.validate" -}}
{{- $j := .job -}}
{{- $w := printf "jobs[%s]" $j.name -}}
{{- if and (eq $j.tee "sim") (not .root.Values.tee.sim.allowed) -}}
{{- fail (printf "%s: tee sim is the simulated TEE, which proves nothing; set tee.sim.allowed=true to run it (development only)" $w) -}}
{{- end -}}
{{- if and (eq $j.tee "sim") (not .root.Values.tee.sim.platformKeySecret) -}}
{{- fail (printf "%s: tee sim needs tee.sim.platformKeySecret, the Secret holding the simulation platform key" $w) -}}
{{- end -}}
{{- if eq $j.tee "sgx" -}}
{{- if $j.manifest -}}
{{- fail (printf "%s: under SGX the job manifest is measured into MRENCLAVE and must be in the enclave image (see docs/sgx.md); remove manifest" $w) -}}
{{- end -}}
{{- else if not $j.manifest -}}
{{- fail (printf "%s: manifest is required: the job manifest (YAML) ppml-run runs" $w) -}}
{{- end -}}
{{- if not (and $j.tokenSecret $j.tokenSecret.name $j.tokenSecret.key) -}}
{{- fail (printf "%s: tokenSecret.name and tokenSecret.key are required: the Secret holding the runner API token" $w) -}}
{{- end -}}
{{- if and (eq $j.kind "serve") (not $j.port) -}}
{{- fail (printf "%s: kind serve needs port, the port ppml-run serves on" $w) -}}
{{- end -}}
{{- if and (ne $j.kind "serve") $j.port -}}
{{- fail (printf "%s: port is only for kind serve" $w) -}}
{{- end -}}
{{- $workers := int (default 1 $j.workers) -}}
{{- if and (eq $j.kind "batch") $j.manifest -}}
{{- $declared := int (dig "parameters" "workers" 1 (fromYaml $j.manifest)) -}}
{{- if ne $workers $declared -}}
{{- fail (printf "%s: workers is %d, and the manifest's parameters.workers %d: the workers of a batch job are one distributed job (docs/cluster.md), so the two must match" $w $workers $declared) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The port of a distributed job's attested tunnels between its workers. */}}
{{- define "ppml.job.tunnelPort" -}}7070{{- end -}}

{{/* Whether a job is one distributed job on several workers (a batch job
with workers > 1): "true" or "". */}}
{{- define "ppml.job.distributed" -}}
{{- if and (eq .job.kind "batch") (gt (int (default 1 .job.workers)) 1) -}}true{{- end -}}
{{- end -}}

{{/* Every worker's tunnel address, by index: <job>-<i>.<job>:7070. */}}
{{- define "ppml.job.peers" -}}
{{- $name := include "ppml.job.name" . -}}
{{- $port := include "ppml.job.tunnelPort" . -}}
{{- $peers := list -}}
{{- range $i := until (int .job.workers) -}}
{{- $peers = append $peers (printf "%s-%d.%s:%s" $name $i $name $port) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/* The pod template of a job's workers. */}}
{{- define "ppml.job.podTemplate" -}}
{{- $root := .root -}}
{{- $j := .job -}}
{{- $tee := get $root.Values.tee $j.tee -}}
{{- $name := include "ppml.job.name" . -}}
metadata:
  labels:
    {{- include "ppml.podLabels" (dict "root" $root "component" "worker") | nindent 4 }}
    ppml.io/job: {{ $j.name }}
    ppml.io/tee: {{ $j.tee }}
    ppml.io/kms-client: "true"
    {{- if eq $j.tee "sim" }}
    ppml.io/insecure: "true"
    {{- end }}
  annotations:
    {{- if ne $j.tee "sgx" }}
    checksum/manifest: {{ $j.manifest | sha256sum }}
    {{- end }}
    {{- with $tee.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $j.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "ppml.fullname" $root }}-runtime
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- if eq $j.kind "batch" }}
  restartPolicy: Never
  {{- end }}
  {{- if include "ppml.job.distributed" . }}
  # Stable DNS names <job>-<index>.<job> for the workers of one job.
  subdomain: {{ $name }}
  {{- end }}
  {{- with $tee.runtimeClassName }}
  runtimeClassName: {{ . }}
  {{- end }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "ppml.podSecurityContext" $root | nindent 4 }}
    {{- if and (eq $j.tee "sgx") $tee.supplementalGroups }}
    supplementalGroups:
      {{- toYaml $tee.supplementalGroups | nindent 6 }}
    {{- end }}
  containers:
    - name: worker
      image: {{ include "ppml.image" (dict "image" (default $root.Values.runtime.image $j.image) "root" $root) }}
      imagePullPolicy: {{ (default $root.Values.runtime.image $j.image).pullPolicy | default "IfNotPresent" }}
      {{- if eq $j.tee "sgx" }}
      # The enclave's command line is fixed in its signed Gramine manifest
      # (and so in MRENCLAVE); the host passes no arguments.
      command:
        {{- toYaml $tee.command | nindent 8 }}
      workingDir: {{ $tee.enclaveDir }}
      {{- else }}
      command: [ppml-run]
      args:
        - run
        - --manifest=/etc/ppml/job/job.yaml
        - --tee={{ if eq $j.tee "sim" }}sim{{ else }}tsm{{ end }}
        {{- range $j.args }}
        - {{ . | quote }}
        {{- end }}
      {{- with $j.data }}
      workingDir: {{ .mountPath | default "/data" }}
      {{- end }}
      {{- end }}
      env:
        - name: PPML_SERVER
          value: {{ include "ppml.kms.url" $root | quote }}
        {{- with $root.Values.runtime.kms.fingerprint }}
        - name: PPML_SERVER_FINGERPRINT
          value: {{ . | quote }}
        {{- end }}
        {{- if $root.Values.runtime.kms.caConfigMap }}
        - name: PPML_CA_FILE
          value: /etc/ppml/ca/ca.crt
        {{- end }}
        # The runner token from its Secret: never in values, manifests or
        # logs, and not passed on to the job's program.
        - name: PPML_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ $j.tokenSecret.name }}
              key: {{ $j.tokenSecret.key }}
        {{- if eq $j.tee "sim" }}
        - name: PPML_SIM_DIR
          value: /etc/ppml/sim
        {{- end }}
        {{- if include "ppml.job.distributed" . }}
        # This worker's place in the distributed job: its index (the Indexed
        # Job's completion index) and every worker's tunnel address. Not part
        # of the job's identity: the workers accept each other only by
        # attested certificates naming the job digest (docs/cluster.md).
        - name: PPML_WORKER_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
        - name: PPML_PEERS
          value: {{ include "ppml.job.peers" . | quote }}
        - name: PPML_WORKER_LISTEN
          value: ":{{ include "ppml.job.tunnelPort" . }}"
        {{- end }}
        - name: GOTRACEBACK
          value: single
        {{- with $j.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if include "ppml.job.distributed" . }}
      ports:
        - name: tunnel
          containerPort: {{ include "ppml.job.tunnelPort" . }}
          protocol: TCP
      {{- end }}
      {{- if eq $j.kind "serve" }}
      ports:
        - name: serve
          containerPort: {{ $j.port }}
          protocol: TCP
      # KServe v2 health routes, over the TLS ppml-run serves with.
      startupProbe:
        httpGet: {path: /v2/health/live, port: serve, scheme: HTTPS}
        periodSeconds: 5
        failureThreshold: 60
      livenessProbe:
        httpGet: {path: /v2/health/live, port: serve, scheme: HTTPS}
        periodSeconds: 10
      readinessProbe:
        httpGet: {path: /v2/health/ready, port: serve, scheme: HTTPS}
        periodSeconds: 5
      {{- end }}
      resources:
        {{- $res := deepCopy (required (printf "jobs[%s].resources is required (limits: cpu, memory)" $j.name) $j.resources) }}
        {{- if eq $j.tee "sgx" }}
        {{- /* Extended resources: requests must equal limits. */}}
        {{- $_ := set $res "limits" (merge (deepCopy $res.limits) $tee.resources) }}
        {{- $_ := set $res "requests" (merge (deepCopy (default dict $res.requests)) $tee.resources) }}
        {{- end }}
        {{- include "ppml.resources" (dict "resources" $res "what" (printf "jobs[%s]" $j.name)) | nindent 8 }}
      securityContext:
        {{- include "ppml.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if ne $j.tee "sgx" }}
        - name: job
          mountPath: /etc/ppml/job
          readOnly: true
        {{- end }}
        {{- with $j.data }}
        - name: data
          mountPath: {{ .mountPath | default "/data" }}
          readOnly: {{ .readOnly | default false }}
        {{- end }}
        {{- if $root.Values.runtime.kms.caConfigMap }}
        - name: kms-ca
          mountPath: /etc/ppml/ca
          readOnly: true
        {{- end }}
        {{- if eq $j.tee "sim" }}
        - name: sim
          mountPath: /etc/ppml/sim
          readOnly: true
        {{- end }}
        {{- if and (eq $j.tee "sgx") $tee.aesmSocketDir }}
        - name: aesmd
          mountPath: /var/run/aesmd
        {{- end }}
        {{- if and (eq $j.tee "sgx") $tee.qcnlConfigMap }}
        - name: qcnl
          mountPath: /etc/sgx_default_qcnl.conf
          subPath: sgx_default_qcnl.conf
          readOnly: true
        {{- end }}
  volumes:
    # Memory only: plaintext never reaches a node's disk.
    - name: tmp
      emptyDir: {medium: Memory, sizeLimit: 64Mi}
    {{- if ne $j.tee "sgx" }}
    - name: job
      configMap:
        name: {{ $name }}
        defaultMode: 0444
    {{- end }}
    {{- with $j.data }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ required (printf "jobs[%s].data.claimName is required" $j.name) .claimName }}
        readOnly: {{ .readOnly | default false }}
    {{- end }}
    {{- with $root.Values.runtime.kms.caConfigMap }}
    - name: kms-ca
      configMap:
        name: {{ . }}
        defaultMode: 0444
        items:
          - {key: ca.crt, path: ca.crt}
    {{- end }}
    {{- if eq $j.tee "sim" }}
    - name: sim
      secret:
        secretName: {{ $root.Values.tee.sim.platformKeySecret }}
        defaultMode: 0400
        items:
          - {key: platform.key, path: platform.key}
    {{- end }}
    {{- if and (eq $j.tee "sgx") $tee.aesmSocketDir }}
    # The node's aesmd (quoting enclave) socket, for DCAP quotes.
    - name: aesmd
      hostPath:
        path: {{ $tee.aesmSocketDir }}
        type: Directory
    {{- end }}
    {{- if and (eq $j.tee "sgx") $tee.qcnlConfigMap }}
    - name: qcnl
      configMap:
        name: {{ $tee.qcnlConfigMap }}
        defaultMode: 0444
        items:
          - {key: sgx_default_qcnl.conf, path: sgx_default_qcnl.conf}
    {{- end }}
  {{- $ns := merge (deepCopy (default dict $j.nodeSelector)) (default dict $tee.nodeSelector) }}
  {{- with $ns }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $j.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $j.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
