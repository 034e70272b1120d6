package snp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/internal/shareddata"
)

func FuzzParseReport(f *testing.F) {
	dir := shareddata.Require(f, "attestation", "snp")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".bin" {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Raw, b[:ReportSize]) {
			t.Fatal("Raw is not the parsed bytes")
		}
		_ = DecodeTCB(Turin, r.ReportedTCB)
	})
}

func FuzzParseCertTable(f *testing.F) {
	vcek, _ := os.ReadFile(shareddata.Require(f, "attestation", "snp", "gosev_milan.vcek.der"))
	chain, _ := os.ReadFile(shareddata.Require(f, "attestation", "common", "amd_ask_ark_milan_vcek.pem"))
	tab, err := TableFromCerts(vcek, chain)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tab)
	f.Add([]byte{})
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseCertTable(b)
		if err != nil {
			return
		}
		// What parses re-encodes to a table with the same entries.
		again, err := ParseCertTable(tab.Marshal())
		if err != nil {
			t.Fatalf("re-encoded table does not parse: %v", err)
		}
		if len(again.Entries) != len(tab.Entries) {
			t.Fatal("entry count changed")
		}
		for i := range tab.Entries {
			if again.Entries[i].GUID != tab.Entries[i].GUID || !bytes.Equal(again.Entries[i].Data, tab.Entries[i].Data) {
				t.Fatal("entry changed")
			}
		}
	})
}

// FuzzVerify drives the whole verifier (certificate and extension parsing
// included) with a mutated report and VCEK; nothing may panic, and a
// mutated pair that verifies must be byte-identical to a real one.
func FuzzVerify(f *testing.F) {
	cs := loadCases(f)
	for _, c := range cs {
		f.Add(c.report, c.vcek)
	}
	v := &Verifier{}
	at := cs[0].inside(f)
	f.Fuzz(func(t *testing.T, report, vcek []byte) {
		aux := (&CertTable{Entries: []CertEntry{{GUID: GUIDVCEK, Data: vcek}}}).Marshal()
		_, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: report, Aux: aux}, attest.VerifyOptions{Time: at})
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.Valid && bytes.Equal(c.report, report[:min(len(report), ReportSize)]) && bytes.Equal(c.vcek, vcek) {
				return
			}
		}
		t.Fatalf("a report/VCEK pair that is not a real one verified")
	})
}
