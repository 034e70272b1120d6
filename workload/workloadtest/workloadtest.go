// Package workloadtest sets up attested workers for tests: a real key
// service on 127.0.0.1 (kms/kmstest) with a simulated TEE, a certificate
// policy admitting that TEE for one job, and workers that obtain their
// certificates through the real certificate protocol and verify each other
// with the CA's live revocation list.
package workloadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
	"github.com/ppml/ppml/workload"
	"github.com/ppml/ppml/workload/mtls"
)

// Manifest is a small job every Cluster admits unless told otherwise.
var Manifest = []byte(`version: 1
name: cluster-test
engine: exec
parameters:
  command: [cat]
`)

// Role is the worker role Cluster policies list first.
const Role = "xgboost-worker"

// Cluster is a key service, an owner with certificate policy PolicyName
// for JobDigest, and a runner token that asks for certificates.
type Cluster struct {
	KMS    *kmstest.Server
	Sim    *kmstest.Sim
	Owner  *client.Client
	Runner *client.Client
	// RunnerToken is the runner's API token, for worker processes.
	RunnerToken string
	Manifest    []byte
	JobDigest   []byte
	PolicyName  string
	CA          *x509.Certificate
	CRL         *client.CRLWatcher
}

// NewSim makes a simulated TEE measuring a small file whose content tells
// two TEEs apart.
func NewSim(t testing.TB, content string) *kmstest.Sim {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "ppml-run")
	if err := os.WriteFile(exe, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := kmstest.NewSim(filepath.Join(dir, "sim"), exe)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Digest is the job digest of a manifest.
func Digest(t testing.TB, manifest []byte) []byte {
	t.Helper()
	m, err := job.Parse(manifest, "/", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Digest()
	return d[:]
}

// New starts a key service and sets certificate policy alice/cluster for
// Manifest with roles xgboost-worker and tracker.
func New(t testing.TB) *Cluster {
	t.Helper()
	sim := NewSim(t, "ppml-run under test")
	srv := kmstest.New(t, kmstest.Options{Sim: sim})
	ctx := context.Background()
	owner, _, err := srv.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	runner, tok, err := srv.Party(ctx, "jobs", api.RoleRunner)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{KMS: srv, Sim: sim, Owner: owner, Runner: runner, RunnerToken: tok.Token, Manifest: Manifest, JobDigest: Digest(t, Manifest), PolicyName: "alice/cluster"}
	c.SetPolicy(t, "  roles: ["+Role+", tracker]\n")
	if c.CA, err = runner.CA(ctx); err != nil {
		t.Fatal(err)
	}
	if c.CRL, err = runner.WatchCRL(ctx, c.CA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CRL.Close)
	return c
}

// SetPolicy (re)writes the cluster's certificate policy with the given
// certificate section, admitting Sim for Manifest.
func (c *Cluster) SetPolicy(t testing.TB, certificate string) *api.CertPolicy {
	t.Helper()
	doc := c.Sim.Policy("jobs: [sha256:" + hex.EncodeToString(c.JobDigest) + "]\ncertificate:\n" + certificate)
	p, err := c.Owner.SetCertPolicy(context.Background(), c.PolicyName, doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue obtains a certificate for role through the certificate protocol.
func (c *Cluster) Issue(t testing.TB, role string) *client.Cert {
	t.Helper()
	cert, err := c.Runner.IssueCert(context.Background(), c.Sim.Attester(), c.Manifest, c.JobDigest, client.CertOptions{Policy: c.PolicyName, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// Trust trusts the cluster's CA with its live revocation list.
func (c *Cluster) Trust() *workload.Trust {
	roots := x509.NewCertPool()
	roots.AddCert(c.CA)
	return &workload.Trust{Roots: roots, Revocations: c.CRL}
}

// Peer expects a worker of the cluster's job and policy in one of roles.
func (c *Cluster) Peer(roles ...string) *mtls.Peer {
	return &mtls.Peer{Trust: c.Trust(), Expect: workload.Expect{JobDigest: c.JobDigest, Policy: c.PolicyName, Roles: roles, AllowInsecure: true}}
}

// TLS returns the server and client configurations of a worker presenting
// cert and accepting peers in roles, with ALPN proto.
func (c *Cluster) TLS(cert *client.Cert, proto string, roles ...string) (server, clientCfg *tls.Config) {
	src := mtls.Static{Cert: &cert.TLS}
	p := c.Peer(roles...)
	return mtls.ServerConfig(src, p, proto), mtls.ClientConfig(src, p, proto)
}
