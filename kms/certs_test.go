package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
	"github.com/ppml/ppml/workload"
)

// certEnv is a key service with a simulated TEE, an owner (alice) with a
// certificate policy and a runner.
type certEnv struct {
	srv    *kmstest.Server
	sim    *kmstest.Sim
	alice  *client.Client
	runner *client.Client
	jd     []byte
}

// newSim makes a simulated TEE measuring a small file (cheap to hash for
// every piece of evidence); content tells two TEEs apart.
func newSim(t testing.TB, content string) *kmstest.Sim {
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

func newCertEnv(t *testing.T, cfg kms.Config) *certEnv {
	s := newSim(t, "runtime v1")
	srv := kmstest.New(t, kmstest.Options{Config: cfg, Sim: s})
	ctx := context.Background()
	alice, _, err := srv.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	runner, _, err := srv.Party(ctx, "jobs", api.RoleRunner)
	if err != nil {
		t.Fatal(err)
	}
	return &certEnv{srv: srv, sim: s, alice: alice, runner: runner, jd: jobDigest(t, manifest)}
}

// certPolicy admits e.sim for manifest with roles and extra certificate fields.
func (e *certEnv) certPolicy(jobs, certificate string) []byte {
	return e.sim.Policy(jobs + "certificate:\n" + certificate)
}

func (e *certEnv) set(t *testing.T, name string, doc []byte) *api.CertPolicy {
	t.Helper()
	p, err := e.alice.SetCertPolicy(context.Background(), name, doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWorkloadCertificate(t *testing.T) {
	e := newCertEnv(t, kms.Config{})
	ctx := context.Background()
	p := e.set(t, "alice/xgb", e.certPolicy("jobs: [sha256:"+hexs(e.jd)+"]\n", "  roles: [xgboost-worker, serve]\n  dns_names: ['*.ppml.svc.cluster.local']\n  ttl: 30m\n"))
	if p.Version != 1 || p.Tenant != "alice" {
		t.Fatalf("policy %+v", p)
	}
	cert, err := e.runner.IssueCert(ctx, e.sim.Attester(), manifest, e.jd, client.CertOptions{
		Policy: "alice/xgb", Role: "serve", DNSNames: []string{"model.ppml.svc.cluster.local"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := cert.Identity
	if id.Role != "serve" || id.Policy != "alice/xgb" || id.PolicyVersion != 1 || !bytes.Equal(id.JobDigest, e.jd) ||
		id.Platform != attest.PlatformSim || !id.Insecure || !bytes.Equal(id.Measurement, e.sim.Measurement[:]) {
		t.Fatalf("identity %s", id)
	}
	if got := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); got != 31*time.Minute {
		t.Fatalf("lifetime %s, want the policy's 30m plus the 1m back-dating", got)
	}
	if len(cert.Leaf.DNSNames) != 1 || cert.Leaf.DNSNames[0] != "model.ppml.svc.cluster.local" || cert.Leaf.IsCA {
		t.Fatalf("leaf %v", cert.Leaf.DNSNames)
	}
	// The CA an owner fetches (and pins) is the one that signed it, and its
	// creation is on the log with its fingerprint.
	ca, err := e.alice.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Equal(cert.CA) {
		t.Fatal("GET /v1/ca is not the CA that signed the certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSName: "model.ppml.svc.cluster.local"}); err != nil {
		t.Fatalf("a plain TLS client pinning the CA refuses the serving certificate: %v", err)
	}
	all, err := e.srv.Admin.AuditList(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var sawCA, sawIssue bool
	for _, en := range all {
		sawCA = sawCA || (en.Type == audit.TypeCACreate && strings.Contains(en.Reason, ca.Subject.CommonName))
		if en.Type == audit.TypeCertIssue {
			sawIssue = en.Tenant == "alice" && en.Decision == audit.Allow && strings.Contains(en.Reason, cert.Issued.Serial) &&
				bytes.Equal(en.JobDigest, e.jd) && bytes.Equal(en.Measurement, e.sim.Measurement[:])
		}
	}
	if !sawCA || !sawIssue {
		t.Fatalf("audit log lacks the CA creation (%v) or the issuance (%v)", sawCA, sawIssue)
	}
	// The owner reads the policy's trail: the policy set and the issuance.
	trail, err := e.alice.AuditList(ctx, api.CertPolicyTrail+"alice/xgb", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 2 || trail[0].Type != audit.TypeCertPolicySet || trail[1].Type != audit.TypeCertIssue {
		t.Fatalf("alice's certificate policy trail: %+v", trail)
	}
	if _, err := e.runner.AuditList(ctx, api.CertPolicyTrail+"alice/xgb", 0, 0); err == nil {
		t.Fatal("a runner read the certificate policy's trail")
	}
	// The owner lists it.
	certs, err := e.alice.ListCerts(ctx, "alice/xgb")
	if err != nil || len(certs) != 1 || certs[0].Serial != cert.Issued.Serial || certs[0].Role != "serve" {
		t.Fatalf("ListCerts = %+v, %v", certs, err)
	}
}

// A certificate request is refused, with the rule named and audited on
// the policy owner's trail, when the TEE or the request is not what the
// policy allows.
func TestWorkloadCertificateRefused(t *testing.T) {
	e := newCertEnv(t, kms.Config{})
	ctx := context.Background()
	other := []byte("version: 1\nname: other\nengine: exec\nparameters:\n  command: [true]\n")
	e.set(t, "alice/xgb", e.certPolicy("jobs: [sha256:"+hexs(e.jd)+"]\n", "  roles: [xgboost-worker]\n  ip_addresses: [10.0.0.7]\n"))
	evil := newSim(t, "patched runtime")
	evil.Dir = e.sim.Dir // same platform key, other code
	opts := client.CertOptions{Policy: "alice/xgb", Role: "xgboost-worker"}
	cases := []struct {
		name     string
		att      attest.Attester
		manifest []byte
		opts     client.CertOptions
		rule     string
		field    string // the policy field that refused, in the answer and the entry
	}{
		{"wrong measurement", evil.Attester(), manifest, opts, "measurement", "platforms.sim.measurements"},
		{"wrong job digest", e.sim.Attester(), other, opts, "job_digest", "jobs"},
		{"role not listed", e.sim.Attester(), manifest, client.CertOptions{Policy: "alice/xgb", Role: "serve"}, "cert_role", "certificate.roles"},
		{"host name not allowed", e.sim.Attester(), manifest, client.CertOptions{Policy: "alice/xgb", Role: "xgboost-worker", DNSNames: []string{"evil.example.com"}}, "cert_dns_name", "certificate.dns_names"},
		{"address not allowed", e.sim.Attester(), manifest, client.CertOptions{Policy: "alice/xgb", Role: "xgboost-worker", IPAddresses: []net.IP{net.ParseIP("10.0.0.8")}}, "cert_ip_address", "certificate.ip_addresses"},
		{"unknown policy", e.sim.Attester(), manifest, client.CertOptions{Policy: "alice/nope", Role: "xgboost-worker"}, "unknown_cert_policy", ""},
		{"evidence for another key", &rebinding{e.sim.Attester()}, manifest, opts, "report_data", ""},
	}
	for _, c := range cases {
		jd := jobDigest(t, c.manifest)
		_, err := e.runner.IssueCert(ctx, c.att, c.manifest, jd, c.opts)
		if err == nil {
			t.Fatalf("%s: certificate issued", c.name)
		}
		if got := denialRule(t, err); got != c.rule {
			t.Fatalf("%s: rule %q, want %q (%v)", c.name, got, c.rule, err)
		}
		var se *client.StatusError
		if errors.As(err, &se) && se.Err.Denials[0].Field != c.field {
			t.Fatalf("%s: field %q, want %q", c.name, se.Err.Denials[0].Field, c.field)
		}
	}
	entries, err := e.srv.Admin.AuditList(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	denials := map[string]audit.Entry{}
	for _, en := range entries {
		if en.Type == audit.TypeCertDenial {
			denials[en.Rule] = en
		}
		if en.Type == audit.TypeCertIssue {
			t.Fatalf("an issuance was recorded: %+v", en)
		}
	}
	for _, c := range cases {
		en, ok := denials[c.rule]
		if !ok || en.Decision != audit.Deny || en.Field != c.field {
			t.Fatalf("%s: no cert_denial entry with rule %s and field %q: %+v", c.name, c.rule, c.field, en)
		}
		if c.rule != "unknown_cert_policy" && en.Tenant != "alice" {
			t.Fatalf("%s: denial on tenant %q's trail, want alice's", c.name, en.Tenant)
		}
	}
	if m := denials["measurement"].Measurement; !bytes.Equal(m, evil.Measurement[:]) {
		t.Fatalf("the denial records measurement %x, want the refused TEE's", m)
	}
	// Policies live in their owner's namespace.
	if _, err := e.alice.SetCertPolicy(ctx, "bob/xgb", e.certPolicy("", "  roles: [x]\n")); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("alice set a policy in bob's namespace: %v", err)
	}
	// A runner may not write policies; an owner may not ask for certificates.
	if _, err := e.runner.SetCertPolicy(ctx, "jobs/x", e.certPolicy("", "  roles: [x]\n")); err == nil {
		t.Fatal("a runner set a certificate policy")
	}
	if _, err := e.alice.IssueCert(ctx, e.sim.Attester(), manifest, e.jd, opts); err == nil {
		t.Fatal("an owner token got a certificate")
	}
}

// rebinding makes evidence over other report data than asked: evidence
// made for another certificate key.
type rebinding struct{ attest.Attester }

func (r *rebinding) Evidence(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	rd[0] ^= 1
	return r.Attester.Evidence(ctx, rd)
}

// Changing a certificate policy revokes the certificates issued under the
// older version: the CRL lists them (reason superseded) and a peer
// refuses them; the same document again revokes nothing; deleting the
// policy revokes the rest.
func TestWorkloadCertificateRevocation(t *testing.T) {
	e := newCertEnv(t, kms.Config{})
	ctx := context.Background()
	v1 := e.certPolicy("", "  roles: [xgboost-worker]\n")
	e.set(t, "alice/xgb", v1)
	opts := client.CertOptions{Policy: "alice/xgb", Role: "xgboost-worker"}
	old, err := e.runner.IssueCert(ctx, e.sim.Attester(), manifest, e.jd, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p := e.set(t, "alice/xgb", v1); p.Version != 1 || p.Revoked != 0 {
		t.Fatalf("the same document again: %+v", p)
	}
	crl, err := e.runner.CRL(ctx, old.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.Status(old.Leaf, time.Now()); err != nil {
		t.Fatalf("not revoked yet: %v", err)
	}
	p := e.set(t, "alice/xgb", e.certPolicy("", "  roles: [xgboost-worker]\n  ttl: 2h\n"))
	if p.Version != 2 || p.Revoked != 1 {
		t.Fatalf("changed policy: %+v", p)
	}
	fresh, err := e.runner.IssueCert(ctx, e.sim.Attester(), manifest, e.jd, opts)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Identity.PolicyVersion != 2 {
		t.Fatalf("new certificate under version %d", fresh.Identity.PolicyVersion)
	}
	crl, err = e.runner.CRL(ctx, old.CA)
	if err != nil {
		t.Fatal(err)
	}
	var pe *workload.PeerError
	if err := crl.Status(old.Leaf, time.Now()); !asPeer(err, &pe) || pe.Check != workload.CheckRevoked || !strings.Contains(err.Error(), "policy changed") {
		t.Fatalf("old certificate after the change: %v", err)
	}
	if err := crl.Status(fresh.Leaf, time.Now()); err != nil {
		t.Fatalf("new certificate: %v", err)
	}
	// A peer with this list refuses the old certificate and takes the new.
	roots := x509.NewCertPool()
	roots.AddCert(old.CA)
	trust := &workload.Trust{Roots: roots, Revocations: crl}
	want := workload.Expect{JobDigest: e.jd, Policy: "alice/xgb", AllowInsecure: true}
	if _, _, err := trust.Verify([][]byte{old.Leaf.Raw}, x509.ExtKeyUsageClientAuth, want); !asPeer(err, &pe) || pe.Check != workload.CheckRevoked {
		t.Fatalf("peer accepted a revoked certificate: %v", err)
	}
	if _, _, err := trust.Verify([][]byte{fresh.Leaf.Raw}, x509.ExtKeyUsageClientAuth, want); err != nil {
		t.Fatal(err)
	}
	// A stale list answers nothing.
	stale := &workload.Trust{Roots: roots, Revocations: crl, Now: func() time.Time { return time.Now().Add(kmsCRLValidity + time.Second) }}
	if _, _, err := stale.Verify([][]byte{fresh.Leaf.Raw}, x509.ExtKeyUsageClientAuth, want); !asPeer(err, &pe) || pe.Check != workload.CheckRevocation {
		t.Fatalf("a stale list was trusted: %v", err)
	}
	d, err := e.alice.DeleteCertPolicy(ctx, "alice/xgb")
	if err != nil || d.Revoked != 1 {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if _, err := e.runner.IssueCert(ctx, e.sim.Attester(), manifest, e.jd, opts); err == nil || denialRule(t, err) != "unknown_cert_policy" {
		t.Fatalf("issued under a deleted policy: %v", err)
	}
	crl, err = e.runner.CRL(ctx, old.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.Status(fresh.Leaf, time.Now()); !asPeer(err, &pe) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("after delete: %v", err)
	}
	// Created again, the policy continues its versions.
	if p := e.set(t, "alice/xgb", v1); p.Version != 4 {
		t.Fatalf("re-created policy version %d, want 4", p.Version)
	}
}

const kmsCRLValidity = 10 * time.Minute

func hexs(b []byte) string { return hex.EncodeToString(b) }

func asPeer(err error, pe **workload.PeerError) bool {
	if err == nil {
		return false
	}
	p, ok := err.(*workload.PeerError)
	if ok {
		*pe = p
	}
	return ok
}

// The renewing identity replaces its certificate two thirds into its
// lifetime: with the key service's clock set back, the first certificate
// is already due and the next one arrives at once.
func TestWorkloadIdentityRenews(t *testing.T) {
	skew := -90 * time.Second
	e := newCertEnv(t, kms.Config{Now: func() time.Time { return time.Now().Add(skew) }})
	ctx := context.Background()
	e.set(t, "alice/xgb", e.certPolicy("", "  roles: [xgboost-worker]\n  ttl: 1m\n"))
	id, err := e.runner.NewIdentity(ctx, e.sim.Attester(), manifest, e.jd, client.CertOptions{Policy: "alice/xgb", Role: "xgboost-worker"})
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	first := id.Current()
	if !client.RenewAt(first.Leaf).Before(time.Now()) {
		t.Fatalf("renewal due at %s", client.RenewAt(first.Leaf))
	}
	deadline := time.Now().Add(20 * time.Second)
	for id.Current() == first {
		if time.Now().After(deadline) {
			t.Fatalf("not renewed (last error %v)", id.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	next := id.Current()
	if next.Issued.Serial == first.Issued.Serial || bytes.Equal(next.Leaf.RawSubjectPublicKeyInfo, first.Leaf.RawSubjectPublicKeyInfo) {
		t.Fatal("renewal kept the certificate or its key")
	}
}

// Attack: copy a revoked certificate's older record back from a backup, so
// that the revocation list no longer lists it. The store's state check
// covers the certificate buckets: the key service refuses to start.
func TestAttackRevokedCertificateRestored(t *testing.T) {
	s := newSim(t, "runtime v1")
	dir := t.TempDir()
	cfg := kms.Config{SimKeys: []ed25519.PublicKey{s.PublicKey}}
	e := startServer(t, dir, cfg)
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("jobs", api.RoleRunner)
	ctx := context.Background()
	if _, err := alice.SetCertPolicy(ctx, "alice/xgb", s.Policy("certificate:\n  roles: [w]\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := runner.IssueCert(ctx, s.Attester(), manifest, jobDigest(t, manifest), client.CertOptions{Policy: "alice/xgb", Role: "w"}); err != nil {
		t.Fatal(err)
	}
	backup := backupTo(t, e.admin)
	if p, err := alice.SetCertPolicy(ctx, "alice/xgb", s.Policy("certificate:\n  roles: [w]\n  ttl: 2h\n")); err != nil || p.Revoked != 1 {
		t.Fatalf("policy change: %+v %v", p, err)
	}
	e.stop()
	if n := copyBackChanged(t, dir, backup, "certs"); n != 1 {
		t.Fatalf("%d certificate rows changed since the backup", n)
	}
	msg := startRefused(t, dir, cfg)
	mustSay(t, msg, "workload certificates (issued and revoked) (bucket certs)", "values were replaced by other values of the same rows")
}
