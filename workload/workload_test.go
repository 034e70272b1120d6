package workload

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
)

func sampleIdentity() *Identity {
	return &Identity{Platform: attest.PlatformSGX, Measurement: bytes.Repeat([]byte{0xab}, 32), Signer: bytes.Repeat([]byte{0xcd}, 32),
		TCBStatus: "UpToDate", JobDigest: bytes.Repeat([]byte{1}, 32), Role: "xgboost-worker", Policy: "alice/xgb", PolicyVersion: 3}
}

func TestIdentityRoundTrip(t *testing.T) {
	id := sampleIdentity()
	b, err := id.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != id.String() || got.TCBStatus != id.TCBStatus || !bytes.Equal(got.Signer, id.Signer) {
		t.Fatalf("round trip: %s vs %s", got, id)
	}
	for _, c := range []struct {
		edit func(*Identity)
		want string
	}{
		{func(i *Identity) { i.Platform = "sim" }, "only the simulated TEE is insecure"},
		{func(i *Identity) { i.JobDigest = i.JobDigest[:31] }, "job digest of 31 bytes"},
		{func(i *Identity) { i.Role = "a b" }, "printable ASCII"},
		{func(i *Identity) { i.PolicyVersion = 0 }, "policy version 0"},
		{func(i *Identity) { i.Measurement = nil }, "measurement of 0 bytes"},
	} {
		bad := sampleIdentity()
		c.edit(bad)
		if _, err := bad.Marshal(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	if _, err := ParseIdentity(append(b, 0)); err == nil || !strings.Contains(err.Error(), "after the extension") {
		t.Fatalf("trailing byte: %v", err)
	}
}

// testCA is a CA, a leaf it signed and a CRL of it.
func testCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, k
}

func TestCRL(t *testing.T) {
	ca, k := testCA(t)
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(5), ThisUpdate: now, NextUpdate: now.Add(10 * time.Minute),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(42), RevocationTime: now, ReasonCode: ReasonSuperseded}}}, ca, k)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseCRL(der, ca)
	if err != nil {
		t.Fatal(err)
	}
	var pe *PeerError
	if err := l.Status(&x509.Certificate{SerialNumber: big.NewInt(42)}, now); err == nil || !errorAs(err, &pe) || pe.Check != CheckRevoked {
		t.Fatalf("revoked: %v", err)
	}
	if err := l.Status(&x509.Certificate{SerialNumber: big.NewInt(43)}, now); err != nil {
		t.Fatal(err)
	}
	if err := l.Status(&x509.Certificate{SerialNumber: big.NewInt(43)}, now.Add(11*time.Minute)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("stale list: %v", err)
	}
	other, _ := testCA(t)
	if _, err := ParseCRL(der, other); err == nil || !strings.Contains(err.Error(), "not signed by the deployment CA") {
		t.Fatalf("list of another CA: %v", err)
	}
}

func errorAs(err error, pe **PeerError) bool {
	p, ok := err.(*PeerError)
	*pe = p
	return ok
}

func FuzzParseIdentity(f *testing.F) {
	b, _ := sampleIdentity().Marshal()
	f.Add(b)
	sim := sampleIdentity()
	sim.Platform, sim.Insecure, sim.Signer, sim.TCBStatus = attest.PlatformSim, true, nil, ""
	b, _ = sim.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, der []byte) {
		id, err := ParseIdentity(der)
		if err != nil {
			return
		}
		again, err := id.Marshal()
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("accepted extension does not re-encode to itself: %v", err)
		}
		_ = id.String()
	})
}

func FuzzParseCRL(f *testing.F) {
	ca, k := testCA(f)
	now := time.Now()
	der, _ := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(7), RevocationTime: now, ReasonCode: ReasonCessationOfOperation}}}, ca, k)
	f.Add(der)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(7)}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseCRL(b, ca)
		if err != nil {
			return
		}
		l.Status(leaf, now)
		l.Newer(l)
	})
}
