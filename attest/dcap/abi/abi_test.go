package abi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/internal/shareddata"
)

func TestParseSharedQuotes(t *testing.T) {
	want := map[string]struct {
		version  uint16
		bodyType uint16
	}{
		"phala_sgx_v3":          {3, BodyTypeSGX},
		"dcaprs_sgx_v3":         {3, BodyTypeSGX},
		"phala_tdx_v4":          {4, BodyTypeTD10},
		"gotdx_v5_sample":       {5, BodyTypeTD15},
		"phala_tdx_outdated_v5": {5, BodyTypeTD15},
	}
	for name, w := range want {
		dir := "sgx"
		if strings.Contains(name, "tdx") {
			dir = "tdx"
		}
		b, err := os.ReadFile(filepath.Join(shareddata.Require(t, "attestation", dir), name+".quote.bin"))
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseQuote(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if q.Header.Version != w.version || q.BodyType != w.bodyType {
			t.Errorf("%s: version %d body %d, want %d %d", name, q.Header.Version, q.BodyType, w.version, w.bodyType)
		}
		if len(q.PCKChain) != 3 {
			t.Errorf("%s: %d PCK chain certificates", name, len(q.PCKChain))
		}
		if w.bodyType == BodyTypeTD15 && (len(q.TD.TEETCBSVN2) != 16 || len(q.TD.MRServiceTD) != 48) {
			t.Errorf("%s: TD 1.5 fields missing", name)
		}
	}
}

func TestPEMStrict(t *testing.T) {
	good := "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n"
	if c, err := ParsePEMCertificates([]byte(good + "\x00\x00")); err != nil || len(c) != 1 || len(c[0]) != 3 {
		t.Fatalf("good PEM: %v %v", c, err)
	}
	for _, bad := range []string{
		good + "junk",
		"-----BEGIN CERTIFICATE-----\nAAE=\n-----END CERTIFICATE-----\n" + "-----BEGIN CERTIFICATE-----\nAAF=\n-----END CERTIFICATE-----\n", // non-canonical base64
		"-----BEGIN CERTIFICATE-----\nAA\vEC\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nAAEC\n",
		"-----BEGIN CERTIFICATX-----\nAAEC\n-----END CERTIFICATE-----\n",
	} {
		if _, err := ParsePEMCertificates([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestTrailingBytes: a quote's length comes from its own fields; zero bytes
// after it are padding, anything else is reported at its offset.
func TestTrailingBytes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(shareddata.Require(t, "attestation", "sgx"), "phala_sgx_v3.quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseQuote(b)
	if err != nil || q.Length != len(b) || q.Trailing != 0 || q.CheckTrailing() != nil {
		t.Fatalf("exact quote: length %d of %d, trailing %d, %v", q.Length, len(b), q.Trailing, err)
	}
	padded := append(append([]byte(nil), b...), make([]byte, 70)...)
	q, err = ParseQuote(padded)
	if err != nil || q.Trailing != 70 || q.CheckTrailing() != nil {
		t.Fatalf("zero padding: %v %v", err, q.CheckTrailing())
	}
	junk := append(append([]byte(nil), padded...), 'x')
	q, err = ParseQuote(junk)
	if err != nil {
		t.Fatal(err)
	}
	err = q.CheckTrailing()
	want := "non-zero byte at offset 4670 after the signature data (the quote ends at offset 4600"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("junk after padding: %v, want %q", err, want)
	}
}
