package serve_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/servetest"
	"github.com/ppml/ppml/workload"
	"github.com/ppml/ppml/workload/workloadtest"
)

// caJob is a serve job whose certificate comes from a real key service's deployment CA.
type caJob struct {
	*job
	kms    *kmstest.Server
	sim    *kmstest.Sim
	owner  *client.Client
	runner *client.Client
	ca     *x509.Certificate
	digest string // sha256:…
}

const caPolicy = "alice/serving"

// newCAJob starts a key service on 127.0.0.1 (its clock behind by skew) and writes a serve
// job with certificate.issuer deployment-ca under policy alice/serving.
func newCAJob(t *testing.T, skew time.Duration) *caJob {
	j := &caJob{job: newJob(t, "  certificate: {issuer: deployment-ca, policy: "+caPolicy+"}\n")}
	j.sim = workloadtest.NewSim(t, "serving runtime")
	cfg := kms.Config{}
	if skew != 0 {
		cfg.Now = func() time.Time { return time.Now().Add(-skew) }
	}
	j.kms = kmstest.New(t, kmstest.Options{Sim: j.sim, Config: cfg})
	ctx := context.Background()
	var err error
	j.owner, _, err = j.kms.Party(ctx, "alice", api.RoleOwner)
	servetest.Must(t, err)
	j.runner, _, err = j.kms.Party(ctx, "jobs", api.RoleRunner)
	servetest.Must(t, err)
	j.ca, err = j.runner.CA(ctx)
	servetest.Must(t, err)
	m, err := launcher.Load(j.manifest)
	servetest.Must(t, err)
	j.digest = m.Job.DigestString()
	return j
}

// setPolicy sets the certificate policy for the given job digest and certificate section.
func (j *caJob) setPolicy(t *testing.T, digest, certificate string) {
	_, err := j.owner.SetCertPolicy(context.Background(), caPolicy, j.sim.Policy("jobs: ["+digest+"]\ncertificate:\n"+certificate))
	servetest.Must(t, err)
}

// run starts the job through the launcher with the key service as its key source (the
// model's key is a local one; no release is needed, the certificate request is the
// attestation).
func (j *caJob) run(t *testing.T, log io.Writer) (context.CancelFunc, chan error) {
	local, err := launcher.NewLocalKeys(filepath.Join(j.dir, "owner.key"))
	servetest.Must(t, err)
	keys := &launcher.KMSKeys{Client: j.runner, Server: j.kms.URL, Attester: j.sim.Attester(), Local: local}
	cancel, done, _ := j.start(t, launcher.Config{Keys: keys, Log: log, Grace: 10 * time.Second})
	return cancel, done
}

// caClient is an HTTPS client that trusts the deployment CA and nothing else, verifying
// as any TLS client does: chain, validity and the host name (here an IP address).
func (j *caJob) caClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(j.ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}}
}

func waitReady(t *testing.T, hc *http.Client, url string, done <-chan error, log interface{ String() string }, timeout time.Duration) *http.Response {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(url + "/v2/health/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return resp
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the job ended: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeDeploymentCA: a serve job with certificate.issuer deployment-ca attests to a real
// key service, gets a certificate of the deployment CA naming its job, role and address,
// and serves KServe REST and gRPC to clients that verify it with nothing but the CA bundle
// (Go's crypto/tls and Python's ssl module, i.e. OpenSSL); clients that do not trust the CA
// are refused.
func TestServeDeploymentCA(t *testing.T) {
	j := newCAJob(t, 0)
	j.setPolicy(t, j.digest, "  roles: [serve]\n  ip_addresses: [127.0.0.1]\n  ttl: 30m\n")
	log := &syncBuffer{}
	cancel, done := j.run(t, log)
	hc := j.caClient()
	base := "https://" + j.http
	resp := waitReady(t, hc, base, done, log, 30*time.Second)

	leaf := resp.TLS.PeerCertificates[0]
	id, err := workload.FromCertificate(leaf)
	servetest.Must(t, err)
	if got := "sha256:" + hex.EncodeToString(id.JobDigest); got != j.digest || id.Role != "serve" || id.Policy != caPolicy || id.Platform != "sim" {
		t.Fatalf("the certificate names %s, want job %s role serve policy %s", id, j.digest, caPolicy)
	}
	// The policy's 30m, shorter than the job's certificate_validity (24h), wins.
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 32*time.Minute {
		t.Errorf("certificate lifetime %s, want the policy's 30m (plus the CA's backdating)", life)
	}
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x", resp.TLS.Version)
	}

	row := `[1,2,3,4]`
	r, err := hc.Post(base+"/v2/models/house/versions/3/infer", "application/json",
		strings.NewReader(`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":`+row+`}]}`))
	servetest.Must(t, err)
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `"outputs"`) {
		t.Fatalf("KServe REST: %d %s", r.StatusCode, body)
	}

	pool := x509.NewCertPool()
	pool.AddCert(j.ca)
	gconn, err := grpc.NewClient(j.grpc, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	servetest.Must(t, err)
	defer gconn.Close()
	gr, err := inferencepb.NewGRPCInferenceServiceClient(gconn).ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "house",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, features},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}})
	servetest.Must(t, err)
	if len(gr.Outputs) == 0 || len(gr.Outputs[0].Contents.Fp32Contents) != 1 {
		t.Fatalf("gRPC: %v", gr)
	}

	// Another TLS stack, trusting the CA bundle file and checking the host name.
	if py, err := exec.LookPath("python3"); err == nil {
		caFile := filepath.Join(j.dir, "deployment-ca.pem")
		servetest.Must(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: j.ca.Raw}), 0o644))
		out, err := exec.Command(py, "-c", `import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen(sys.argv[2], context=ctx).status)`, caFile, base+"/v2/health/live").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "200" {
			t.Errorf("python's ssl with the CA bundle: %v\n%s", err, out)
		}
	}

	// A client that trusts no ppml CA (the system roots) is refused by its own TLS stack.
	if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13}}}).Get(base + "/v2/health/live"); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA: %v", err)
	}
	// Nor does the certificate name a host it was not issued for.
	wrongName := j.caClient()
	wrongName.Transport.(*http.Transport).TLSClientConfig.ServerName = "serve.example.com"
	if _, err := wrongName.Get(base + "/v2/health/live"); err == nil || !strings.Contains(err.Error(), "serve.example.com") {
		t.Errorf("a client expecting another host name: %v", err)
	}

	// The issuance is on the key service's audit trail of the policy.
	certs, err := j.owner.ListCerts(context.Background(), caPolicy)
	servetest.Must(t, err)
	if len(certs) != 1 {
		t.Errorf("%d certificates listed under %s, want 1", len(certs), caPolicy)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopping the job: %v\n%s", err, log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the job did not drain\n%s", log)
	}
	if !strings.Contains(log.String(), "serving certificate from deployment CA") {
		t.Errorf("log:\n%s", log)
	}
}

// TestServeDeploymentCARenewal: with a one-minute policy lifetime and the key service's
// clock running behind (so its certificates are two thirds through their lifetime seconds
// after issue), the job renews with a new key while a client keeps its connection: the
// connection established under the first certificate goes on answering, and new
// connections get the new certificate, which clients verify with the same CA bundle.
func TestServeDeploymentCARenewal(t *testing.T) {
	// A 1m policy lifetime is 2m with the CA's 60 s backdating; two thirds is 80 s after
	// notBefore, i.e. 20 s after issue by the key service's clock: 17 s behind puts it
	// 3 s after issue.
	j := newCAJob(t, 17*time.Second)
	j.setPolicy(t, j.digest, "  roles: [serve]\n  ip_addresses: [127.0.0.1]\n  ttl: 1m\n")
	log := &syncBuffer{}
	_, done := j.run(t, log)
	kept := j.caClient()
	base := "https://" + j.http
	first := waitReady(t, kept, base, done, log, 30*time.Second).TLS.PeerCertificates[0]

	// New connections, each verifying from scratch, until one gets a new certificate.
	var renewed *x509.Certificate
	deadline := time.Now().Add(20 * time.Second)
	for renewed == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no renewed certificate within 20s\n%s", log)
		}
		time.Sleep(250 * time.Millisecond)
		fresh := j.caClient()
		resp, err := fresh.Get(base + "/v2/health/live")
		if err != nil {
			t.Fatalf("a new connection during renewal: %v", err)
		}
		resp.Body.Close()
		fresh.CloseIdleConnections()
		if c := resp.TLS.PeerCertificates[0]; c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = c
		}
	}
	if renewed.Equal(first) || string(renewed.RawSubjectPublicKeyInfo) == string(first.RawSubjectPublicKeyInfo) {
		t.Fatal("the renewed certificate has the old key")
	}
	id, err := workload.FromCertificate(renewed)
	servetest.Must(t, err)
	if "sha256:"+hex.EncodeToString(id.JobDigest) != j.digest || id.Role != "serve" {
		t.Fatalf("renewed certificate names %s", id)
	}

	// The first connection is still open and still answers.
	reused := false
	req, _ := http.NewRequest("GET", base+"/v2/health/ready", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	resp, err := kept.Do(req)
	servetest.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || !reused || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("the connection made before the renewal: status %d, reused %v, serial %x (first %x)",
			resp.StatusCode, reused, resp.TLS.PeerCertificates[0].SerialNumber, first.SerialNumber)
	}
	if !strings.Contains(log.String(), "serving certificate renewed") {
		t.Errorf("log:\n%s", log)
	}
}

// TestServeDeploymentCARefused: the job does not start serving when the certificate policy
// does not name its job (the key service refuses with the rule, and audits it), nor when
// it asks for a host the policy does not allow, nor without a key service.
func TestServeDeploymentCARefused(t *testing.T) {
	j := newCAJob(t, 0)
	other := "sha256:" + strings.Repeat("ab", 32)
	j.setPolicy(t, other, "  roles: [serve]\n  ip_addresses: [127.0.0.1]\n")
	_, done := j.run(t, io.Discard)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "job_digest") || !strings.Contains(err.Error(), "certificate policy "+caPolicy) {
		t.Fatalf("a policy naming another job: %v", err)
	} else {
		t.Logf("refused as it should be: %v", err)
	}
	certs, err := j.owner.ListCerts(context.Background(), caPolicy)
	servetest.Must(t, err)
	if len(certs) != 0 {
		t.Fatalf("%d certificates issued", len(certs))
	}

	j.setPolicy(t, j.digest, "  roles: [serve]\n  ip_addresses: [10.0.0.7]\n")
	_, done = j.run(t, io.Discard)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "cert_ip_address") {
		t.Fatalf("a policy not allowing the job's address: %v", err)
	}

	j.setPolicy(t, j.digest, "  roles: [xgboost-worker]\n  ip_addresses: [127.0.0.1]\n")
	_, done = j.run(t, io.Discard)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "cert_role") {
		t.Fatalf("a policy without the serve role: %v", err)
	}

	// Local keys only: no key service to issue the certificate.
	_, done, _ = j.start(t, launcher.Config{Attester: j.sim.Attester()})
	if err := <-done; err == nil || !strings.Contains(err.Error(), "no key service") {
		t.Fatalf("without a key service: %v", err)
	}
}
