package gramine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/internal/shareddata"
)

// fakeDevAttestation lays out Gramine's pseudo-files in a temp dir, with a
// real SGX quote as the quote file.
func fakeDevAttestation(t *testing.T, typ string, quote []byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"attestation_type": []byte(typ + "\n"),
		"user_report_data": nil,
		"quote":            quote,
		"my_target_info":   make([]byte, 512),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func realQuote(t *testing.T) ([]byte, [64]byte) {
	q, err := os.ReadFile(shareddata.Require(t, "attestation", "sgx", "phala_sgx_v3.quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], q[sgxReportDataStart:])
	return q, rd
}

func TestEvidenceFromRealQuote(t *testing.T) {
	q, rd := realQuote(t)
	if !strings.HasPrefix(string(rd[:]), "Hello, world!") {
		t.Fatalf("unexpected report data in the vector: %q", rd[:16])
	}
	dir := fakeDevAttestation(t, "dcap", q)
	ev, err := (&Attester{Root: dir}).Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Platform != attest.PlatformSGX || !bytes.Equal(ev.Data, q) {
		t.Fatal("evidence is not the quote")
	}
	written, _ := os.ReadFile(filepath.Join(dir, "user_report_data"))
	if !bytes.Equal(written, rd[:]) {
		t.Fatalf("user_report_data holds %x", written)
	}
}

func TestRefusals(t *testing.T) {
	q, rd := realQuote(t)
	var other [64]byte
	other[0] = 1
	if _, err := (&Attester{Root: fakeDevAttestation(t, "dcap", q)}).Evidence(context.Background(), other); err == nil || !strings.Contains(err.Error(), "does not carry the report data") {
		t.Errorf("mismatched report data: %v", err)
	}
	for _, typ := range []string{"none", "epid"} {
		if _, err := (&Attester{Root: fakeDevAttestation(t, typ, q)}).Evidence(context.Background(), rd); err == nil || !strings.Contains(err.Error(), typ) {
			t.Errorf("type %s: %v", typ, err)
		}
	}
	if _, err := (&Attester{Root: fakeDevAttestation(t, "dcap", q[:100])}).Evidence(context.Background(), rd); err == nil {
		t.Error("short quote accepted")
	}
	if _, err := (&Attester{Root: t.TempDir()}).Evidence(context.Background(), rd); err == nil {
		t.Error("missing /dev/attestation accepted")
	}
	tdx, _ := os.ReadFile(shareddata.Require(t, "attestation", "tdx", "phala_tdx_v4.quote.bin"))
	tdx[0] = 5
	if _, err := (&Attester{Root: fakeDevAttestation(t, "dcap", tdx)}).Evidence(context.Background(), rd); err == nil {
		t.Error("v5 quote accepted as SGX")
	}
}
