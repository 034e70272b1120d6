package policy

import (
	"bytes"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
)

const certSection = `certificate:
  roles: [xgboost-worker, serve]
  dns_names: ["*.ppml.svc.cluster.local", kms.example.com]
  ip_addresses: [10.0.0.7]
  ttl: 30m
`

func TestParseCert(t *testing.T) {
	p, err := ParseCert([]byte(expand(basePolicy + certSection)))
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := p.Certificate.MaxTTL(); ttl != 30*time.Minute {
		t.Fatalf("ttl %s", ttl)
	}
	for _, c := range []struct{ doc, want string }{
		{basePolicy, "no certificate section"},
		{basePolicy + "certificate:\n  roles: []\n", "list at least one role"},
		{basePolicy + "certificate:\n  roles: [Worker]\n", "certificate.roles[0]"},
		{basePolicy + "certificate:\n  roles: [w]\n  dns_names: ['*.com']\n", "two labels"},
		{basePolicy + "certificate:\n  roles: [w]\n  dns_names: [Evil.com]\n", "certificate.dns_names[0]"},
		{basePolicy + "certificate:\n  roles: [w]\n  ip_addresses: [10.0.0]\n", "certificate.ip_addresses[0]"},
		{basePolicy + "certificate:\n  roles: [w]\n  ttl: 48h\n", "certificate.ttl"},
		{basePolicy + "certificate:\n  roles: [w]\n  ttl: soon\n", "not a duration"},
		{basePolicy + "certificate:\n  roles: [w]\n  color: red\n", "color"},
		{"certificate:\n  roles: [w]\n", "version"},
	} {
		_, err := ParseCert([]byte(expand(c.doc)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to mention %q", c.doc, err, c.want)
		}
	}
}

func TestEvaluateCert(t *testing.T) {
	p, err := ParseCert([]byte(expand(basePolicy + certSection)))
	if err != nil {
		t.Fatal(err)
	}
	ok := CertRequest{Role: "serve", DNSNames: []string{"model.ppml.svc.cluster.local"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	if d := EvaluateCert(p, sgxClaims(), jobA[:], ok, now); !d.Allow {
		t.Fatalf("refused: %+v", d)
	}
	other := sgxClaims()
	other.Measurement = make([]byte, 32)
	for _, c := range []struct {
		claims *attest.Claims
		job    []byte
		req    CertRequest
		rule   string
	}{
		{other, jobA[:], ok, RuleMeasurement},
		{sgxClaims(), make([]byte, 32), ok, RuleJob},
		{sgxClaims(), jobA[:], CertRequest{Role: "tracker"}, RuleCertRole},
		{sgxClaims(), jobA[:], CertRequest{Role: "serve", DNSNames: []string{"a.b.ppml.svc.cluster.local"}}, RuleCertDNSName},
		{sgxClaims(), jobA[:], CertRequest{Role: "serve", DNSNames: []string{"evil.com"}}, RuleCertDNSName},
		{sgxClaims(), jobA[:], CertRequest{Role: "serve", IPAddresses: []net.IP{net.ParseIP("10.0.0.8")}}, RuleCertIPAddress},
	} {
		d := EvaluateCert(p, c.claims, c.job, c.req, now)
		if d.Allow || d.Rule != c.rule || d.Reason == "" {
			t.Errorf("%+v: decision %+v, want rule %s", c.req, d, c.rule)
		}
	}
	if d := EvaluateCert(nil, sgxClaims(), jobA[:], ok, now); d.Allow || d.Rule != RuleInvalidPolicy {
		t.Fatalf("nil policy: %+v", d)
	}
}

func FuzzParseCert(f *testing.F) {
	f.Add([]byte(expand(basePolicy + certSection)))
	f.Add([]byte(expand(`{"version": 1, "platforms": {"sgx": {"measurements": ["%MRENCLAVE%"]}}, "certificate": {"roles": ["w"], "ttl": "1h"}}`)))
	f.Add([]byte("a: &a [*a, *a]\n"))
	req := CertRequest{Role: "serve", DNSNames: []string{"model.ppml.svc.cluster.local"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	claims := sgxClaims()
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := ParseCert(doc)
		if err != nil {
			return
		}
		if _, err := p.Certificate.MaxTTL(); err != nil {
			t.Fatalf("ParseCert accepted a bad ttl: %v", err)
		}
		d := EvaluateCert(p, claims, jobA[:], req, now)
		if !d.Allow && (d.Rule == "" || d.Reason == "") {
			t.Fatalf("denial without rule or reason: %+v", d)
		}
		b, err := p.JSON()
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseCert(b)
		if err != nil {
			t.Fatalf("re-encoded policy does not parse: %v\n%s", err, b)
		}
		if d2 := EvaluateCert(q, claims, jobA[:], req, now); d2 != d {
			t.Fatalf("decision changed after round trip: %+v vs %+v", d, d2)
		}
	})
}

// TestClusterDocCertPolicies keeps docs/cluster.md honest: every yaml
// block with a certificate section is a valid certificate policy.
func TestClusterDocCertPolicies(t *testing.T) {
	doc, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		if !bytes.Contains(b[1], []byte("certificate:")) {
			continue
		}
		n++
		if _, err := ParseCert(b[1]); err != nil {
			t.Errorf("docs/cluster.md example %d: %v\n%s", n, err, b[1])
		}
	}
	if n == 0 {
		t.Fatal("no certificate policy example in docs/cluster.md")
	}
}
