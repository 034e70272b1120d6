package kds

import (
	"crypto/x509"
	"testing"

	"github.com/ppml/ppml/attest/snp"
)

// FuzzParseAnswers feeds arbitrary bytes to what reads KDS answers and
// bundle files: nothing may panic, and what is accepted is a certificate.
func FuzzParseAnswers(f *testing.F) {
	valid, forged := vectors(f)
	for _, v := range valid {
		f.Add(v.vcek)
		f.Add(v.chain)
	}
	f.Add(forged.vcek)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	rep, err := snp.ParseReport(valid[0].report)
	if err != nil {
		f.Fatal(err)
	}
	check := vcekFor(snp.Milan, snp.KeyRequestFor(rep))
	f.Fuzz(func(t *testing.T, b []byte) {
		if der, _, err := check(b); err == nil {
			if _, err := x509.ParseCertificate(der); err != nil {
				t.Fatalf("accepted VCEK does not parse: %v", err)
			}
		}
		if _, _, err := parseChain(b); err == nil {
			if _, _, err := parseDER(b); err == nil {
				t.Fatal("one answer parsed as both a single certificate and a chain of two")
			}
		}
		if certs, err := parseCerts(b); err == nil && len(certs) == 0 {
			t.Fatal("parsed a bundle file with no certificate")
		}
	})
}
