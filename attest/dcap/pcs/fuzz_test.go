package pcs

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/internal/shareddata"
)

func bundles(tb testing.TB) []map[string]string {
	var out []map[string]string
	for _, dir := range []string{"sgx", "tdx"} {
		files, _ := filepath.Glob(filepath.Join(shareddata.Path("attestation", dir), "collateral_*.json"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				tb.Fatal(err)
			}
			var m map[string]string
			if err := json.Unmarshal(b, &m); err != nil {
				tb.Fatal(err)
			}
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		tb.Fatal("no collateral bundles in the shared test data")
	}
	return out
}

func TestParseSharedCollateral(t *testing.T) {
	for _, m := range bundles(t) {
		ti, err := ParseTCBInfo([]byte(m["tcb_info"]))
		if err != nil {
			t.Fatal(err)
		}
		if ti.ID == "TDX" {
			for _, l := range ti.TCBLevels {
				if l.TCB.TDXComponents == nil {
					t.Fatal("TDX level without TDX components")
				}
			}
		}
		if _, err := ParseQEIdentity([]byte(m["qe_identity"])); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzParseTCBInfo(f *testing.F) {
	for _, m := range bundles(f) {
		f.Add([]byte(m["tcb_info"]))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ti, err := ParseTCBInfo(b)
		if err != nil {
			return
		}
		if len(ti.FMSPC) != 6 || len(ti.TCBLevels) == 0 {
			t.Fatal("accepted TCB info without FMSPC or levels")
		}
	})
}

func FuzzParseQEIdentity(f *testing.F) {
	for _, m := range bundles(f) {
		f.Add([]byte(m["qe_identity"]))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQEIdentity(b)
		if err != nil {
			return
		}
		MatchISVSVN(q.TCBLevels, 5)
	})
}

// FuzzSGXExtension fuzzes the PCK certificate's SGX extension parser, seeded
// with the extensions of the real PCK certificates in the shared quotes.
func FuzzSGXExtension(f *testing.F) {
	for _, dir := range []string{"sgx", "tdx"} {
		files, _ := filepath.Glob(filepath.Join(shareddata.Path("attestation", dir), "*.quote.bin"))
		for _, p := range files {
			b, _ := os.ReadFile(p)
			blk, _ := pem.Decode(b[bytesIndex(b, "-----BEGIN"):])
			if blk == nil {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				continue
			}
			for _, e := range c.Extensions {
				if e.Id.Equal(OIDSGXExtensions) {
					f.Add(e.Value)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSGXExtension(b)
		if err != nil {
			return
		}
		if len(p.FMSPC) != 6 || len(p.PCEID) != 2 || len(p.CPUSVN) != 16 {
			t.Fatal("accepted extension with wrong field sizes")
		}
	})
}

func bytesIndex(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return len(b)
}
