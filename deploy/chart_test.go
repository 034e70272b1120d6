package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/envelope"
)

var valueFiles = []string{"production-values.yaml", "development-values.yaml"}

// TestLint runs Helm's linter (Chart.yaml, values against the schema,
// templates rendered and parsed) with each of the chart's CI value files.
// Informational messages (no icon) pass; warnings and errors fail.
func TestLint(t *testing.T) {
	for _, f := range valueFiles {
		t.Run(f, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir, readValues(t, f), namespace, &kubeVersion)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", m)
				}
			}
		})
	}
}

// podSpecs is every pod template of a release, by owner.
func podSpecs(r *rendered) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, s := range all[*appsv1.StatefulSet](r) {
		out["StatefulSet/"+s.Name] = s.Spec.Template
	}
	for _, d := range all[*appsv1.Deployment](r) {
		out["Deployment/"+d.Name] = d.Spec.Template
	}
	for _, j := range all[*batchv1.Job](r) {
		out["Job/"+j.Name] = j.Spec.Template
	}
	return out
}

// secretLike are what secrets of ppml look like in text: API tokens,
// unseal shares, private keys (PEM and ppml key files). None may appear in
// anything the chart renders.
var secretLike = regexp.MustCompile(`ppml_[0-9a-f]{16}_|ppml-share-1:|PRIVATE KEY|ppml-local-key-v1|ppml-recipient-key-v1`)

// TestRenderedObjectsAreHardened renders each CI value file, decodes every
// object strictly, and checks every pod: non-root with a fixed user, no
// privilege escalation, read-only root, all capabilities dropped, the
// runtime's seccomp profile, no service account token, no host namespaces,
// CPU and memory limits, scratch space in memory, secrets only by reference.
func TestRenderedObjectsAreHardened(t *testing.T) {
	c := loadChart(t)
	for _, f := range valueFiles {
		t.Run(f, func(t *testing.T) {
			r := mustRender(t, c, readValues(t, f))
			for key, text := range r.texts {
				if m := secretLike.FindString(text); m != "" {
					t.Errorf("%s: rendered text contains secret-looking %q", key, m)
				}
			}
			pods := podSpecs(r)
			if len(pods) == 0 {
				t.Fatal("no pods rendered")
			}
			for owner, p := range pods {
				checkPod(t, owner, p.Spec)
			}
		})
	}
}

func checkPod(t *testing.T, owner string, p corev1.PodSpec) {
	t.Helper()
	fail := func(format string, a ...any) { t.Errorf("%s: %s", owner, fmt.Sprintf(format, a...)) }
	sc := p.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		fail("pod must run as a non-root user: %+v", sc)
	}
	if sc != nil && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		fail("pod seccomp profile must be RuntimeDefault")
	}
	if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
		fail("automountServiceAccountToken must be false")
	}
	if p.HostNetwork || p.HostPID || p.HostIPC {
		fail("uses a host namespace")
	}
	if len(p.InitContainers) > 0 || len(p.EphemeralContainers) > 0 {
		fail("unexpected init or ephemeral containers")
	}
	vols := map[string]corev1.Volume{}
	for _, v := range p.Volumes {
		vols[v.Name] = v
		if v.HostPath != nil && !(v.Name == "aesmd" && v.HostPath.Path == "/var/run/aesmd") {
			fail("hostPath volume %s (%s): only the aesmd socket directory may come from the node", v.Name, v.HostPath.Path)
		}
		if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o077 != 0) {
			fail("secret volume %s must be readable by its owner only (defaultMode 0400)", v.Name)
		}
	}
	for _, ctr := range p.Containers {
		cf := func(format string, a ...any) { fail("container %s: %s", ctr.Name, fmt.Sprintf(format, a...)) }
		s := ctr.SecurityContext
		switch {
		case s == nil:
			cf("no securityContext")
			continue
		case s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation:
			cf("allowPrivilegeEscalation must be false")
		case s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem:
			cf("readOnlyRootFilesystem must be true")
		case s.Privileged != nil && *s.Privileged:
			cf("privileged")
		case s.RunAsNonRoot == nil || !*s.RunAsNonRoot || s.RunAsUser == nil || *s.RunAsUser == 0:
			cf("must run as a non-root user")
		case s.Capabilities == nil || !slices.Contains(s.Capabilities.Drop, "ALL") || len(s.Capabilities.Add) > 0:
			cf("must drop ALL capabilities and add none: %+v", s.Capabilities)
		}
		lim := ctr.Resources.Limits
		if lim.Cpu().IsZero() || lim.Memory().IsZero() {
			cf("needs CPU and memory limits, has %v", lim)
		}
		for name, q := range ctr.Resources.Requests {
			if l, ok := lim[name]; ok && q.Cmp(l) > 0 {
				cf("request %s %s above its limit %s", name, q.String(), l.String())
			}
		}
		if strings.HasSuffix(ctr.Image, ":latest") || !strings.ContainsAny(ctr.Image, ":@") {
			cf("image %q is not pinned to a tag or digest", ctr.Image)
		}
		for _, e := range ctr.Env {
			if e.Value != "" && secretLike.MatchString(e.Value) {
				cf("env %s holds a secret literally", e.Name)
			}
		}
		if tok := envVar(ctr, "PPML_TOKEN"); tok != nil && (tok.ValueFrom == nil || tok.ValueFrom.SecretKeyRef == nil || tok.Value != "") {
			cf("PPML_TOKEN must come from a Secret")
		}
		if envVar(ctr, "GOTRACEBACK") == nil {
			cf("GOTRACEBACK must be set (no core dumps)")
		}
		tmp := mountAt(ctr, "/tmp")
		if tmp == nil || vols[tmp.Name].EmptyDir == nil || vols[tmp.Name].EmptyDir.Medium != corev1.StorageMediumMemory {
			cf("/tmp must be an in-memory emptyDir")
		}
	}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func mountAt(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func args(c corev1.Container) map[string][]string {
	out := map[string][]string{}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestKeyService checks the production key service: one replica on a
// retained volume, probes on the server's real health routes over HTTPS,
// the TLS Secret mounted read-only and given to the server, each unseal
// share and the admin token encrypted to a public key, a client Service
// that only reaches an unsealed pod and an internal one that reaches a
// sealed pod, and Prometheus annotations.
func TestKeyService(t *testing.T) {
	r := mustRender(t, loadChart(t), readValues(t, "production-values.yaml"))
	ss := get[*appsv1.StatefulSet](t, r, "prod-ppml-kms")
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1 (one writer on the embedded store)", ss.Spec.Replicas)
	}
	if p := ss.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("the data volume must be retained: %+v", p)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Fatalf("want one volume claim template named data, have %+v", ss.Spec.VolumeClaimTemplates)
	}
	pvc := ss.Spec.VolumeClaimTemplates[0]
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("10Gi")) != 0 {
		t.Errorf("data volume size %s, want 10Gi", got.String())
	}
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "encrypted-ssd" {
		t.Errorf("storage class %v, want encrypted-ssd", pvc.Spec.StorageClassName)
	}
	pod := ss.Spec.Template.Spec
	if pod.RuntimeClassName == nil || *pod.RuntimeClassName != "kata-qemu-snp" || pod.NodeSelector["ppml.io/key-service"] != "true" || len(pod.Tolerations) != 1 {
		t.Errorf("key service placement: runtime class %v, node selector %v, tolerations %v", pod.RuntimeClassName, pod.NodeSelector, pod.Tolerations)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	if ctr.Image != "ghcr.io/ppml/ppml@sha256:"+strings.Repeat("0", 64) {
		t.Errorf("image %q, want the digest of the values", ctr.Image)
	}
	if mountAt(ctr, "/var/lib/ppml") == nil || mountAt(ctr, "/var/lib/ppml").Name != "data" {
		t.Error("the data volume must be mounted at /var/lib/ppml")
	}

	// Probes: the routes kms/http.go serves, over HTTPS on the named port.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", ctr.StartupProbe, "/healthz"}, {"liveness", ctr.LivenessProbe, "/healthz"}, {"readiness", ctr.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Scheme != corev1.URISchemeHTTPS || g.Port.String() != "https" {
			t.Errorf("%s probe: GET %s %s port %s, want %s over HTTPS on port https", p.name, g.Scheme, g.Path, g.Port.String(), p.path)
		}
	}
	if len(ctr.Ports) != 1 || ctr.Ports[0].Name != "https" || ctr.Ports[0].ContainerPort != 8443 {
		t.Errorf("ports %+v, want https 8443", ctr.Ports)
	}

	// TLS: the Secret, read-only, owner-only, the two files the server reads.
	a := args(ctr)
	if !slices.Equal(a["--tls-cert"], []string{"/etc/ppml/tls/tls.crt"}) || !slices.Equal(a["--tls-key"], []string{"/etc/ppml/tls/tls.key"}) {
		t.Errorf("TLS flags %v %v", a["--tls-cert"], a["--tls-key"])
	}
	if a["--tls-host"] != nil {
		t.Error("--tls-host (self-signed certificate) given with a TLS Secret")
	}
	m := mountAt(ctr, "/etc/ppml/tls")
	if m == nil || !m.ReadOnly {
		t.Fatal("the TLS Secret must be mounted read-only at /etc/ppml/tls")
	}
	var tlsVol *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == m.Name {
			tlsVol = &pod.Volumes[i]
		}
	}
	if tlsVol == nil || tlsVol.Secret == nil || tlsVol.Secret.SecretName != "ppml-kms-tls" {
		t.Fatalf("TLS volume %+v, want Secret ppml-kms-tls", tlsVol)
	}
	if tlsVol.Secret.DefaultMode == nil || *tlsVol.Secret.DefaultMode != 0o400 {
		t.Errorf("TLS Secret mode %v, want 0400", tlsVol.Secret.DefaultMode)
	}
	var items []string
	for _, it := range tlsVol.Secret.Items {
		items = append(items, it.Key+"->"+it.Path)
	}
	if !slices.Equal(items, []string{"tls.crt->tls.crt", "tls.key->tls.key"}) {
		t.Errorf("TLS Secret items %v", items)
	}

	// Seal: Shamir 2 of 3, each share and the admin token encrypted.
	if !slices.Equal(a["--seal"], []string{"shamir"}) || !slices.Equal(a["--shares"], []string{"3"}) || !slices.Equal(a["--threshold"], []string{"2"}) {
		t.Errorf("seal flags %v %v %v", a["--seal"], a["--shares"], a["--threshold"])
	}
	if len(a["--init-share-recipient"]) != 3 || len(a["--init-admin-recipient"]) != 1 {
		t.Errorf("want 3 share recipients and 1 admin recipient, have %v, %v", a["--init-share-recipient"], a["--init-admin-recipient"])
	}
	if !slices.Equal(a["--data-dir"], []string{"/var/lib/ppml/data"}) || !slices.Equal(a["--listen"], []string{":8443"}) {
		t.Errorf("data dir %v, listen %v", a["--data-dir"], a["--listen"])
	}
	if !slices.Equal(a["--pccs-cache"], []string{"/var/lib/ppml/cache/pccs"}) {
		t.Errorf("the PCCS cache must be on the data volume (the root file system is read-only): %v", a["--pccs-cache"])
	}

	ann := ss.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/scheme"] != "https" || ann["prometheus.io/port"] != "8443" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("Prometheus annotations %v", ann)
	}

	// Services: clients reach only a ready (unsealed) pod; the internal,
	// headless one publishes a sealed pod for unsealing.
	podLabels := labels.Set(ss.Spec.Template.Labels)
	svc := get[*corev1.Service](t, r, "prod-ppml-kms")
	if svc.Spec.PublishNotReadyAddresses || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("client Service: must select the key service and not publish unready pods: %+v", svc.Spec)
	}
	in := get[*corev1.Service](t, r, "prod-ppml-kms-internal")
	if in.Spec.ClusterIP != corev1.ClusterIPNone || !in.Spec.PublishNotReadyAddresses || !labels.SelectorFromSet(in.Spec.Selector).Matches(podLabels) {
		t.Errorf("internal Service: must be headless, publish unready pods and select the key service: %+v", in.Spec)
	}
	if ss.Spec.ServiceName != in.Name {
		t.Errorf("serviceName %q, want %q", ss.Spec.ServiceName, in.Name)
	}
	// What helm install prints: how each holder reads their share, how to unseal.
	for _, want := range []string{
		`kubectl -n ppml logs prod-ppml-kms-0 | awk '$1=="ppml-init-share-1" {print $3}' | base64 -d | ppml decrypt --key share-holder-1.key -`,
		"kubectl -n ppml port-forward pod/prod-ppml-kms-0 8443:8443",
		"ppml server unseal --server https://127.0.0.1:8443",
	} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
		}
	}
	if sa := get[*corev1.ServiceAccount](t, r, pod.ServiceAccountName); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the key service's ServiceAccount must not mount a token")
	}
}

// TestUnsealerRole checks that the operators' Role allows what unsealing
// needs, on the key service's pod only, and nothing that reaches its
// secrets (exec, attach, Secrets, wildcards).
func TestUnsealerRole(t *testing.T) {
	r := mustRender(t, loadChart(t), readValues(t, "production-values.yaml"))
	role := get[*rbacv1.Role](t, r, "prod-ppml-kms-unsealer")
	granted := map[string]bool{}
	for _, rule := range role.Rules {
		if !slices.Equal(rule.ResourceNames, []string{"prod-ppml-kms-0"}) {
			t.Errorf("rule %+v is not limited to the key service pod", rule)
		}
		for _, res := range rule.Resources {
			for _, v := range rule.Verbs {
				granted[res+":"+v] = true
			}
		}
		if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
			t.Errorf("wildcard in %+v", rule)
		}
	}
	for _, need := range []string{"pods:get", "pods/portforward:create", "pods/log:get"} {
		if !granted[need] {
			t.Errorf("the Role does not grant %s", need)
		}
	}
	for g := range granted {
		res := strings.Split(g, ":")[0]
		if res == "secrets" || res == "pods/exec" || res == "pods/attach" {
			t.Errorf("the Role grants %s", g)
		}
	}
	rb := get[*rbacv1.RoleBinding](t, r, "prod-ppml-kms-unsealer")
	if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "ppml-operators" {
		t.Errorf("RoleBinding %+v", rb)
	}
	// Without unsealers nothing is bound.
	if _, ok := mustRender(t, loadChart(t), readValues(t, "development-values.yaml")).texts["Role/prod-ppml-kms-unsealer"]; ok {
		t.Error("a Role is rendered without unsealers")
	}
}

// TestWorkers checks each kind of job and each TEE: SGX through the device
// plugin's resources (requests = limits) with the enclave's fixed command;
// TDX and SNP through their runtime classes and node labels; batch as an
// Indexed Job with every worker running at once; serve and stream as
// Deployments; the runner token from its Secret; the simulated TEE labelled.
func TestWorkers(t *testing.T) {
	r := mustRender(t, loadChart(t), readValues(t, "production-values.yaml"))

	sgx := get[*batchv1.Job](t, r, "prod-ppml-claims-sgx")
	p := sgx.Spec.Template.Spec
	ctr := p.Containers[0]
	if !slices.Equal(ctr.Command, []string{"gramine-sgx", "ppml"}) || len(ctr.Args) != 0 || ctr.WorkingDir != "/opt/ppml/enclave" {
		t.Errorf("SGX worker: command %v args %v dir %q, want gramine-sgx ppml with no host arguments in the enclave directory", ctr.Command, ctr.Args, ctr.WorkingDir)
	}
	for name, want := range map[corev1.ResourceName]string{"sgx.intel.com/epc": "512Mi", "sgx.intel.com/enclave": "1", "sgx.intel.com/provision": "1"} {
		l, r := ctr.Resources.Limits[name], ctr.Resources.Requests[name]
		if l.Cmp(resource.MustParse(want)) != 0 || r.Cmp(l) != 0 {
			t.Errorf("SGX worker: %s limit %s request %s, want %s for both", name, l.String(), r.String(), want)
		}
	}
	if l := ctr.Resources.Limits.Memory(); l.Cmp(resource.MustParse("2Gi")) != 0 {
		t.Errorf("SGX worker: memory limit %s, want the job's 2Gi", l.String())
	}
	if p.SecurityContext.SupplementalGroups == nil || p.SecurityContext.SupplementalGroups[0] != 107 {
		t.Errorf("SGX worker: supplemental groups %v, want the sgx group 107", p.SecurityContext.SupplementalGroups)
	}
	if p.NodeSelector["intel.feature.node.kubernetes.io/sgx"] != "true" {
		t.Errorf("SGX worker: node selector %v", p.NodeSelector)
	}
	if mountAt(ctr, "/var/run/aesmd") == nil || mountAt(ctr, "/etc/sgx_default_qcnl.conf") == nil || mountAt(ctr, "/etc/ppml/job") != nil {
		t.Error("SGX worker: wants the aesmd socket and the QCNL configuration, and no job manifest from a ConfigMap (it is in MRENCLAVE)")
	}
	if _, ok := r.texts["ConfigMap/prod-ppml-claims-sgx"]; ok {
		t.Error("SGX job: no manifest ConfigMap expected")
	}
	if ctr.Image != "registry.example/hospital/claims-enclave@sha256:"+strings.Repeat("2", 64) {
		t.Errorf("SGX worker image %q: want the job's enclave image", ctr.Image)
	}

	tdx := get[*batchv1.Job](t, r, "prod-ppml-tpch-tdx")
	if tdx.Spec.CompletionMode == nil || *tdx.Spec.CompletionMode != batchv1.IndexedCompletion ||
		*tdx.Spec.Completions != 1 || *tdx.Spec.Parallelism != 1 || *tdx.Spec.BackoffLimit != 0 {
		t.Errorf("TDX job: want Indexed, 1 completion, no retry: %+v", tdx.Spec)
	}
	p = tdx.Spec.Template.Spec
	ctr = p.Containers[0]
	if p.RuntimeClassName == nil || *p.RuntimeClassName != "kata-qemu-tdx" || p.NodeSelector["intel.feature.node.kubernetes.io/tdx"] != "true" {
		t.Errorf("TDX worker: runtime class %v, node selector %v", p.RuntimeClassName, p.NodeSelector)
	}
	if !slices.Equal(ctr.Command, []string{"ppml-run"}) || !slices.Equal(ctr.Args, []string{"run", "--manifest=/etc/ppml/job/job.yaml", "--tee=tsm"}) {
		t.Errorf("TDX worker: %v %v", ctr.Command, ctr.Args)
	}
	if p.Subdomain != "" || p.RestartPolicy != corev1.RestartPolicyNever || envVar(ctr, "PPML_PEERS") != nil || ctr.Ports != nil {
		t.Errorf("TDX worker of a one-worker job: subdomain %q restart %q, peers %v, ports %v", p.Subdomain, p.RestartPolicy, envVar(ctr, "PPML_PEERS"), ctr.Ports)
	}
	if e := envVar(ctr, "PPML_SERVER"); e == nil || e.Value != "https://prod-ppml-kms.ppml.svc:8443" {
		t.Errorf("PPML_SERVER %+v", e)
	}
	if e := envVar(ctr, "PPML_CA_FILE"); e == nil || e.Value != "/etc/ppml/ca/ca.crt" || mountAt(ctr, "/etc/ppml/ca") == nil {
		t.Errorf("PPML_CA_FILE %+v, or the CA is not mounted", e)
	}
	if e := envVar(ctr, "PPML_TOKEN"); e.ValueFrom.SecretKeyRef.Name != "hospital-runner" || e.ValueFrom.SecretKeyRef.Key != "token" {
		t.Errorf("PPML_TOKEN from %+v", e.ValueFrom.SecretKeyRef)
	}
	cm := get[*corev1.ConfigMap](t, r, "prod-ppml-tpch-tdx")
	if !strings.Contains(cm.Data["job.yaml"], "engine: sql") {
		t.Errorf("manifest ConfigMap: %q", cm.Data["job.yaml"])
	}
	if _, ok := r.texts["Service/prod-ppml-tpch-tdx"]; ok {
		t.Error("one-worker job: no headless Service expected")
	}

	// A distributed job: one pod per worker, all at once, each told its
	// index and every worker's tunnel address.
	xgb := get[*batchv1.Job](t, r, "prod-ppml-xgb-tdx")
	if *xgb.Spec.CompletionMode != batchv1.IndexedCompletion || *xgb.Spec.Completions != 3 || *xgb.Spec.Parallelism != 3 || *xgb.Spec.BackoffLimit != 0 {
		t.Errorf("distributed job: want Indexed, 3 completions, 3 at once, no retry: %+v", xgb.Spec)
	}
	p = xgb.Spec.Template.Spec
	ctr = p.Containers[0]
	if p.Subdomain != "prod-ppml-xgb-tdx" {
		t.Errorf("distributed worker: subdomain %q", p.Subdomain)
	}
	if e := envVar(ctr, "PPML_WORKER_INDEX"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("PPML_WORKER_INDEX %+v", e)
	}
	if e := envVar(ctr, "PPML_PEERS"); e == nil || e.Value != "prod-ppml-xgb-tdx-0.prod-ppml-xgb-tdx:7070,prod-ppml-xgb-tdx-1.prod-ppml-xgb-tdx:7070,prod-ppml-xgb-tdx-2.prod-ppml-xgb-tdx:7070" {
		t.Errorf("PPML_PEERS %+v", e)
	}
	if e := envVar(ctr, "PPML_WORKER_LISTEN"); e == nil || e.Value != ":7070" || len(ctr.Ports) != 1 || ctr.Ports[0].Name != "tunnel" || ctr.Ports[0].ContainerPort != 7070 {
		t.Errorf("PPML_WORKER_LISTEN %+v, ports %+v", e, ctr.Ports)
	}
	hs := get[*corev1.Service](t, r, "prod-ppml-xgb-tdx")
	if hs.Spec.ClusterIP != corev1.ClusterIPNone || !labels.SelectorFromSet(hs.Spec.Selector).Matches(labels.Set(xgb.Spec.Template.Labels)) {
		t.Errorf("workers' headless Service %+v", hs.Spec)
	}

	snp := get[*appsv1.Deployment](t, r, "prod-ppml-scoring-snp")
	p = snp.Spec.Template.Spec
	ctr = p.Containers[0]
	if *snp.Spec.Replicas != 2 || p.RuntimeClassName == nil || *p.RuntimeClassName != "kata-qemu-snp" || p.NodeSelector["amd.feature.node.kubernetes.io/snp"] != "true" {
		t.Errorf("SNP serve: replicas %d, runtime class %v, node selector %v", *snp.Spec.Replicas, p.RuntimeClassName, p.NodeSelector)
	}
	if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" || ctr.LivenessProbe.HTTPGet.Path != "/v2/health/live" || ctr.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Error("serve worker: wants the KServe v2 health routes over HTTPS")
	}
	svc := get[*corev1.Service](t, r, "prod-ppml-scoring-snp")
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(snp.Spec.Template.Labels)) || svc.Spec.Ports[0].Port != 8443 {
		t.Errorf("serve Service %+v", svc.Spec)
	}
	stream := get[*appsv1.Deployment](t, r, "prod-ppml-events-tdx")
	if *stream.Spec.Replicas != 1 || stream.Spec.Template.Spec.Containers[0].Ports != nil {
		t.Errorf("stream: %+v", stream.Spec)
	}

	dev := mustRender(t, loadChart(t), readValues(t, "development-values.yaml"))
	sim := get[*batchv1.Job](t, dev, "prod-ppml-hello")
	if sim.Spec.Template.Labels["ppml.io/insecure"] != "true" || !slices.Contains(sim.Spec.Template.Spec.Containers[0].Args, "--tee=sim") {
		t.Errorf("simulated-TEE worker must be labelled insecure and run --tee=sim: %v %v", sim.Spec.Template.Labels, sim.Spec.Template.Spec.Containers[0].Args)
	}
	if p := sim.Spec.Template.Spec; p.RuntimeClassName != nil || len(p.NodeSelector) != 0 {
		t.Errorf("simulated-TEE worker: no runtime class or node selector expected: %v %v", p.RuntimeClassName, p.NodeSelector)
	}
	if !strings.Contains(dev.notes, "WARNING: job hello runs in the SIMULATED TEE") || !strings.Contains(dev.notes, "WARNING: the file seal keeps the root key on the data volume") {
		t.Errorf("NOTES.txt must warn of the simulated TEE and the file seal:\n%s", dev.notes)
	}
	kms := get[*appsv1.StatefulSet](t, dev, "prod-ppml-kms")
	da := args(kms.Spec.Template.Spec.Containers[0])
	if da["--tls-host"] == nil || !strings.Contains(da["--tls-host"][0], "prod-ppml-kms.ppml.svc") || da["--init-share-recipient"] != nil {
		t.Errorf("development key service: want a self-signed certificate for the service's names and no share recipients (file seal): %v", kms.Spec.Template.Spec.Containers[0].Args)
	}
	if !slices.Equal(da["--sim-key"], []string{"/etc/ppml/sim/dev-laptop.pub"}) {
		t.Errorf("--sim-key %v", da["--sim-key"])
	}
}

// TestNetworkPolicies checks that every pod is selected by a default-deny
// policy of its own, that the key service admits the release's workers
// (and only peers the values list), and that each worker may reach the key
// service: the labels on both sides must agree, which a typo breaks
// silently on a real cluster.
func TestNetworkPolicies(t *testing.T) {
	r := mustRender(t, loadChart(t), readValues(t, "production-values.yaml"))
	nps := all[*networkingv1.NetworkPolicy](r)
	kmsPod := get[*appsv1.StatefulSet](t, r, "prod-ppml-kms").Spec.Template
	selects := func(sel metav1.LabelSelector, l map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			t.Fatal(err)
		}
		return s.Matches(labels.Set(l))
	}
	for owner, pod := range podSpecs(r) {
		var mine []*networkingv1.NetworkPolicy
		for _, np := range nps {
			if selects(np.Spec.PodSelector, pod.Labels) {
				mine = append(mine, np)
			}
		}
		if len(mine) != 1 {
			t.Errorf("%s: selected by %d NetworkPolicies, want 1", owner, len(mine))
			continue
		}
		np := mine[0]
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("%s: policy %s must restrict ingress and egress", owner, np.Name)
		}
		if owner == "StatefulSet/prod-ppml-kms" {
			continue
		}
		// A worker: its policy lets it out to the key service ...
		out := false
		for _, e := range np.Spec.Egress {
			for _, to := range e.To {
				if to.PodSelector != nil && to.NamespaceSelector == nil && selects(*to.PodSelector, kmsPod.Labels) {
					out = true
				}
			}
		}
		// ... and the key service's policy lets it in.
		in := false
		kmsNP := get[*networkingv1.NetworkPolicy](t, r, "prod-ppml-kms")
		for _, ing := range kmsNP.Spec.Ingress {
			for _, from := range ing.From {
				if from.PodSelector != nil && from.NamespaceSelector == nil && selects(*from.PodSelector, pod.Labels) {
					in = true
				}
			}
		}
		if !out || !in {
			t.Errorf("%s: cannot reach the key service (egress allowed %v, key service ingress allowed %v)", owner, out, in)
		}
	}
	kmsNP := get[*networkingv1.NetworkPolicy](t, r, "prod-ppml-kms")
	if n := len(kmsNP.Spec.Ingress); n != 1 || len(kmsNP.Spec.Ingress[0].From) != 2 || kmsNP.Spec.Ingress[0].Ports[0].Port.String() != "https" {
		t.Errorf("key service ingress %+v: want the workers and the listed monitoring namespace, on https only", kmsNP.Spec.Ingress)
	}
	// A single-worker batch job admits nothing; a serve job only its callers.
	sgx := get[*networkingv1.NetworkPolicy](t, r, "prod-ppml-claims-sgx")
	if len(sgx.Spec.Ingress) != 0 {
		t.Errorf("single-worker batch job admits %+v", sgx.Spec.Ingress)
	}
	// The workers of a distributed job reach each other on the tunnel port only.
	xgb := get[*networkingv1.NetworkPolicy](t, r, "prod-ppml-xgb-tdx")
	if len(xgb.Spec.Ingress) != 1 || len(xgb.Spec.Ingress[0].Ports) != 1 || xgb.Spec.Ingress[0].Ports[0].Port.String() != "tunnel" {
		t.Errorf("distributed job ingress %+v: want the tunnel port from its workers", xgb.Spec.Ingress)
	}
	tunnelOut := false
	for _, e := range xgb.Spec.Egress {
		if len(e.To) == 1 && e.To[0].PodSelector != nil && e.To[0].PodSelector.MatchLabels["ppml.io/job"] == "xgb-tdx" {
			tunnelOut = len(e.Ports) == 1 && e.Ports[0].Port.IntValue() == 7070
		}
	}
	if !tunnelOut {
		t.Errorf("distributed job egress %+v: want port 7070 to its workers", xgb.Spec.Egress)
	}
	serve := get[*networkingv1.NetworkPolicy](t, r, "prod-ppml-scoring-snp")
	if len(serve.Spec.Ingress) != 2 || serve.Spec.Ingress[1].From[0].PodSelector.MatchLabels["app"] != "claims-frontend" {
		t.Errorf("serve job ingress %+v", serve.Spec.Ingress)
	}
}

// TestValuesRefused checks that values that cannot work, or would weaken
// the deployment, fail to render with a message that names the value.
func TestValuesRefused(t *testing.T) {
	c := loadChart(t)
	prod := readValues(t, "production-values.yaml")
	dev := readValues(t, "development-values.yaml")
	job := func(over map[string]any) map[string]any {
		base := map[string]any{"name": "j", "kind": "batch", "tee": "tdx", "manifest": "name: j\n",
			"tokenSecret": map[string]any{"name": "s", "key": "token"},
			"resources":   map[string]any{"limits": map[string]any{"cpu": "1", "memory": "1Gi"}}}
		for k, v := range over { // replaces whole fields, unlike merged
			base[k] = v
		}
		return base
	}
	cases := []struct {
		name string
		vals map[string]any
		want string
	}{
		{"no admin recipient", merged(prod, map[string]any{"kms": map[string]any{"init": map[string]any{"adminRecipient": ""}}}), "kms.init.adminRecipient is required"},
		{"share recipients short", merged(prod, map[string]any{"kms": map[string]any{"seal": map[string]any{"shares": 5}}}), "kms.init.shareRecipients has 3 public keys, kms.seal.shares is 5"},
		{"threshold above shares", merged(prod, map[string]any{"kms": map[string]any{"seal": map[string]any{"threshold": 4}}}), "kms.seal.threshold 4 is more than kms.seal.shares 3"},
		{"not a public key", merged(prod, map[string]any{"kms": map[string]any{"init": map[string]any{"adminRecipient": "ppml_0123456789abcdef_secret"}}}), "adminRecipient"},
		{"file seal not acknowledged", merged(dev, map[string]any{"kms": map[string]any{"seal": map[string]any{"allowInsecureFileSeal": false}}}), "kms.seal.type file keeps the root key on the same volume"},
		{"tee seal", merged(prod, map[string]any{"kms": map[string]any{"seal": map[string]any{"type": "tee"}}}), "kms.seal.type tee"},
		{"unknown seal", merged(prod, map[string]any{"kms": map[string]any{"seal": map[string]any{"type": "vault"}}}), "/kms/seal/type"},
		{"misspelt value", merged(prod, map[string]any{"kms": map[string]any{"persistance": map[string]any{"size": "1Gi"}}}), "persistance"},
		{"private sim key", merged(dev, map[string]any{"kms": map[string]any{"attestation": map[string]any{"simPlatformKeys": map[string]any{"x": "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"}}}}), "simPlatformKeys.x holds a PRIVATE key"},
		{"bad digest", merged(prod, map[string]any{"kms": map[string]any{"image": map[string]any{"digest": "sha256:abc"}}}), "/kms/image/digest"},
		{"sim not allowed", merged(dev, map[string]any{"tee": map[string]any{"sim": map[string]any{"allowed": false}}}), "jobs[hello]: tee sim is the simulated TEE"},
		{"sgx manifest", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"tee": "sgx"})}}), "jobs[j]: under SGX the job manifest is measured into MRENCLAVE"},
		{"no manifest", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"manifest": ""})}}), "jobs[j]: manifest is required"},
		{"no limits", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "1"}}})}}), "jobs[j]: resources.limits is required"},
		{"no memory limit", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"resources": map[string]any{"limits": map[string]any{"cpu": "1"}}})}}), "jobs[j]: resources.limits needs both cpu and memory"},
		{"no token secret key", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"tokenSecret": map[string]any{"name": "s"}})}}), "/jobs/0/tokenSecret"},
		{"workers mismatch", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"workers": 2})}}), "jobs[j]: workers is 2, and the manifest's parameters.workers 1"},
		{"serve without port", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"kind": "serve"})}}), "jobs[j]: kind serve needs port"},
		{"duplicate job", merged(prod, map[string]any{"jobs": []any{job(nil), job(nil)}}), `jobs: the name "j" is used twice`},
		{"bad job name", merged(prod, map[string]any{"jobs": []any{job(map[string]any{"name": "My_Job"})}}), "/jobs/0/name"},
		{"long name", merged(prod, map[string]any{"fullnameOverride": strings.Repeat("a", 40), "jobs": []any{job(map[string]any{"name": strings.Repeat("b", 20)})}}), "at most 56 fit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(c, tc.vals)
			if err == nil {
				t.Fatalf("rendered; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestStrictDecodingRefusesUnknownFields makes sure the decoder the other
// tests rely on does refuse a field the API types do not have (a
// misspelling that kubectl apply would drop).
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	doc := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: None\n  publishNotReadyAdresses: true\n"
	if _, _, err := strict.Decode([]byte(doc), nil, nil); err == nil || !strings.Contains(err.Error(), "publishNotReadyAdresses") {
		t.Fatalf("strict decoding accepted an unknown field: %v", err)
	}
	doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {a: b}\nkind: Service\n"
	if _, _, err := strict.Decode([]byte(doc), nil, nil); err == nil {
		t.Fatal("strict decoding accepted a duplicate field")
	}
	doc = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n"
	if _, _, err := strict.Decode([]byte(doc), nil, nil); err == nil {
		t.Fatal("decoded a kind the chart should not render")
	}
}

// TestExampleKeysAreReal checks that the public keys in the CI value files
// are what the key service will accept: ppml recipients for the encrypted
// first-start output, Ed25519 simulation platform keys.
func TestExampleKeysAreReal(t *testing.T) {
	prod := readValues(t, "production-values.yaml")
	first := prod["kms"].(map[string]any)["init"].(map[string]any)
	keys := []any{first["adminRecipient"]}
	keys = append(keys, first["shareRecipients"].([]any)...)
	for _, k := range keys {
		if _, err := envelope.ParseRecipient(k.(string)); err != nil {
			t.Errorf("%v: %v", k, err)
		}
	}
	dev := readValues(t, "development-values.yaml")
	for name, pem := range dev["kms"].(map[string]any)["attestation"].(map[string]any)["simPlatformKeys"].(map[string]any) {
		p := filepath.Join(t.TempDir(), name+".pub")
		if err := os.WriteFile(p, []byte(pem.(string)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := sim.LoadPublicKey(p); err != nil {
			t.Errorf("simPlatformKeys.%s: %v", name, err)
		}
	}
}
