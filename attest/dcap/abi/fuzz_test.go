package abi

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/internal/shareddata"
)

func quoteSeeds(f *testing.F) {
	for _, dir := range []string{"sgx", "tdx"} {
		files, _ := filepath.Glob(filepath.Join(shareddata.Path("attestation", dir), "*.quote.bin"))
		if len(files) == 0 {
			f.Fatalf("no %s quotes in the shared test data", dir)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

func FuzzParseQuote(f *testing.F) {
	quoteSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err != nil {
			return
		}
		if q.SGX == nil && q.TD == nil {
			t.Fatal("parsed quote without a body")
		}
		if len(q.ReportData()) != 64 || len(q.Signature) != 64 || len(q.AttestationKey) != 64 || len(q.QEReportRaw) != 384 {
			t.Fatal("parsed quote with wrong field sizes")
		}
		if len(q.PCKChain) == 0 {
			t.Fatal("parsed quote without a PCK chain")
		}
		if q.Length+q.Trailing != len(b) || (q.TrailingNonZero == nil) != (q.CheckTrailing() == nil) {
			t.Fatalf("length %d + trailing %d != %d", q.Length, q.Trailing, len(b))
		}
		if q.TrailingNonZero != nil && (*q.TrailingNonZero < q.Length || b[*q.TrailingNonZero] == 0) {
			t.Fatalf("trailing non-zero offset %d is wrong", *q.TrailingNonZero)
		}
	})
}

func FuzzParsePEMCertificates(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\x00"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParsePEMCertificates(b)
		if err == nil {
			for _, c := range certs {
				if len(c) == 0 {
					t.Fatal("empty certificate accepted")
				}
			}
		}
	})
}
