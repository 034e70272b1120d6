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
