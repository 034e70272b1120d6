package snp

// Turin and VLEK evidence from real hardware is not in the shared vectors,
// so these tests build a complete chain with a test-only ARK (never the
// pinned one), exercising the Turin TCB layout, the 8-byte Turin hwID and
// the ASVK→VLEK chain, and showing that the pinned verifier refuses the
// same evidence.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
)

type testPKI struct {
	root    Root
	askKey  *rsa.PrivateKey
	asvkKey *rsa.PrivateKey
}

var notBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestPKI(t *testing.T, p Product) *testPKI {
	t.Helper()
	arkKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	askKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	asvkKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ark := mkCert(t, "ARK-"+string(p), nil, &arkKey.PublicKey, arkKey, nil, notBefore.AddDate(25, 0, 0))
	ask := mkCert(t, "SEV-"+string(p), ark, &askKey.PublicKey, arkKey, nil, notBefore.AddDate(25, 0, 0))
	asvk := mkCert(t, "SEV-VLEK-"+string(p), ark, &asvkKey.PublicKey, arkKey, nil, notBefore.AddDate(25, 0, 0))
	return &testPKI{root: Root{Product: p, ARK: ark, ASK: ask, ASVK: asvk}, askKey: askKey, asvkKey: asvkKey}
}

func mkCert(t *testing.T, cn string, parent *x509.Certificate, pub any, signer any, exts []pkix.Extension, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: cn, Organization: []string{"Test Only Devices"}},
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		ExtraExtensions:    exts,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func kdsExt(t *testing.T, productName string, tcb TCB, fmc bool, hwid []byte, csp string) []pkix.Extension {
	i := func(v uint8) []byte { b, _ := asn1.Marshal(int(v)); return b }
	ia5 := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "ia5"); return b }
	e := []pkix.Extension{
		{Id: oidStructVersion, Value: i(1)},
		{Id: oidProductName, Value: ia5(productName)},
		{Id: oidBlSPL, Value: i(tcb.Bootloader)},
		{Id: oidTeeSPL, Value: i(tcb.TEE)},
		{Id: oidSnpSPL, Value: i(tcb.SNP)},
		{Id: oidUcodeSPL, Value: i(tcb.Microcode)},
	}
	if fmc {
		e = append(e, pkix.Extension{Id: oidFmcSPL, Value: i(tcb.FMC)})
	}
	if hwid != nil {
		e = append(e, pkix.Extension{Id: oidHwID, Value: hwid})
	}
	if csp != "" {
		e = append(e, pkix.Extension{Id: oidCspID, Value: ia5(csp)})
	}
	return e
}

// buildReport writes a v3 report and signs it with key.
func buildReport(key *ecdsa.PrivateKey, signingKey SigningKey, reportedTCB uint64, chipID []byte, family, model uint8) []byte {
	b := make([]byte, ReportSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 3)
	le.PutUint32(b[4:], 9)                   // guest svn
	le.PutUint64(b[8:], 0x30000|PolicyDebug) // debug allowed, SMT
	le.PutUint32(b[0x34:], SigAlgoECDSAP384SHA384)
	le.PutUint32(b[0x48:], uint32(signingKey)<<2)
	for i := 0; i < 64; i++ {
		b[0x50+i] = byte(i)
	}
	le.PutUint64(b[0x38:], reportedTCB)
	le.PutUint64(b[0x180:], reportedTCB)
	b[0x188], b[0x189], b[0x18A] = family, model, 0
	copy(b[0x1A0:], chipID)
	d := sha512.Sum384(b[:SignedSize])
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		panic(err)
	}
	rb, sb := r.FillBytes(make([]byte, 48)), s.FillBytes(make([]byte, 48))
	for i := 0; i < 48; i++ {
		b[SignedSize+i] = rb[47-i]
		b[SignedSize+72+i] = sb[47-i]
	}
	return b
}

func turinTCB(t TCB) uint64 {
	return uint64(t.FMC) | uint64(t.Bootloader)<<8 | uint64(t.TEE)<<16 | uint64(t.SNP)<<24 | uint64(t.Microcode)<<56
}

func TestTurinVCEK(t *testing.T) {
	pki := newTestPKI(t, Turin)
	tcb := TCB{FMC: 1, Bootloader: 2, TEE: 3, SNP: 4, Microcode: 5}
	chip := make([]byte, 64)
	copy(chip, []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4})
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	vcek := mkCert(t, "SEV-VCEK", pki.root.ASK, &key.PublicKey, pki.askKey, kdsExt(t, "Turin-C0", tcb, true, chip[:8], ""), notBefore.AddDate(7, 0, 0))
	at := attest.VerifyOptions{Time: notBefore.AddDate(1, 0, 0)}
	v := &Verifier{Roots: []Root{pki.root}}
	ev := func(report []byte, leaf *x509.Certificate) *attest.Evidence {
		tab := &CertTable{Entries: []CertEntry{{GUID: GUIDVCEK, Data: leaf.Raw}, {GUID: GUIDASK, Data: pki.root.ASK.Raw}, {GUID: GUIDARK, Data: pki.root.ARK.Raw}}}
		return &attest.Evidence{Platform: attest.PlatformSNP, Data: report, Aux: tab.Marshal()}
	}

	good := buildReport(key, SigningKeyVCEK, turinTCB(tcb), chip, 0x1A, 0x02)
	cl, err := v.Verify(context.Background(), ev(good, vcek), at)
	if err != nil {
		t.Fatal(err)
	}
	if cl.EvidenceVersion != 3 || !cl.Debug || !cl.SMTAllowed || cl.SecurityVersion != 9 || uint64(cl.ReportedTCB.Raw) != turinTCB(tcb) || cl.ReportedTCB.FMC == nil || *cl.ReportedTCB.FMC != 1 || cl.ReportedTCB.Microcode != 5 {
		t.Fatalf("claims %+v", cl)
	}

	// The pinned verifier refuses the same evidence: the test ARK in the
	// table is never trusted.
	if _, err := (&Verifier{}).Verify(context.Background(), ev(good, vcek), at); checkName(err) != "ask_chain" {
		t.Fatalf("pinned verifier: %v", err)
	}
	// Milan's layout of the same SPLs does not match a Turin VCEK.
	milanLayout := uint64(tcb.Bootloader) | uint64(tcb.TEE)<<8 | uint64(tcb.SNP)<<48 | uint64(tcb.Microcode)<<56
	if _, err := v.Verify(context.Background(), ev(buildReport(key, SigningKeyVCEK, milanLayout, chip, 0x1A, 0x02), vcek), at); checkName(err) != "reported_tcb" {
		t.Fatalf("Milan layout: %v", err)
	}
	// Another chip.
	other := append([]byte(nil), chip...)
	other[3] ^= 1
	if _, err := v.Verify(context.Background(), ev(buildReport(key, SigningKeyVCEK, turinTCB(tcb), other, 0x1A, 0x02), vcek), at); checkName(err) != "chip_id" {
		t.Fatalf("other chip: %v", err)
	}
	// CPUID says Genoa.
	if _, err := v.Verify(context.Background(), ev(buildReport(key, SigningKeyVCEK, turinTCB(tcb), chip, 0x19, 0x11), vcek), at); checkName(err) != "product" {
		t.Fatalf("cpuid mismatch: %v", err)
	}
	// A Turin VCEK without the FMC SPL.
	noFMC := mkCert(t, "SEV-VCEK", pki.root.ASK, &key.PublicKey, pki.askKey, kdsExt(t, "Turin-C0", tcb, false, chip[:8], ""), notBefore.AddDate(7, 0, 0))
	if _, err := v.Verify(context.Background(), ev(good, noFMC), at); checkName(err) != "reported_tcb" {
		t.Fatalf("no fmc: %v", err)
	}
	// A VCEK with a 64-byte hwID on Turin.
	longID := mkCert(t, "SEV-VCEK", pki.root.ASK, &key.PublicKey, pki.askKey, kdsExt(t, "Turin-C0", tcb, true, chip, ""), notBefore.AddDate(7, 0, 0))
	if _, err := v.Verify(context.Background(), ev(good, longID), at); checkName(err) != "chip_id" {
		t.Fatalf("64-byte hwID on Turin: %v", err)
	}
	// A VCEK signed by the ASVK is refused: each intermediate has one role.
	wrongIssuer := mkCert(t, "SEV-VCEK", pki.root.ASVK, &key.PublicKey, pki.asvkKey, kdsExt(t, "Turin-C0", tcb, true, chip[:8], ""), notBefore.AddDate(7, 0, 0))
	tab := &CertTable{Entries: []CertEntry{{GUID: GUIDVCEK, Data: wrongIssuer.Raw}, {GUID: GUIDASK, Data: pki.root.ASVK.Raw}}}
	if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: good, Aux: tab.Marshal()}, at); checkName(err) != "ask_chain" {
		t.Fatalf("VCEK under ASVK: %v", err)
	}
}

func TestVLEK(t *testing.T) {
	for _, p := range []Product{Milan, Genoa, Turin} {
		pki := newTestPKI(t, p)
		tcb := TCB{Bootloader: 7, TEE: 0, SNP: 14, Microcode: 72}
		raw := uint64(tcb.Bootloader) | uint64(tcb.TEE)<<8 | uint64(tcb.SNP)<<48 | uint64(tcb.Microcode)<<56
		fam, model := uint8(0x19), uint8(0x01)
		if p == Genoa {
			model = 0x11
		}
		if p == Turin {
			tcb.FMC = 1
			raw = turinTCB(tcb)
			fam, model = 0x1A, 0x02
		}
		key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		vlek := mkCert(t, "SEV-VLEK", pki.root.ASVK, &key.PublicKey, pki.asvkKey, kdsExt(t, string(p)+"-B0", tcb, p == Turin, nil, "Example Cloud"), notBefore.AddDate(1, 0, 0))
		// VLEK reports carry no chip binding: a zero CHIP_ID is fine.
		report := buildReport(key, SigningKeyVLEK, raw, make([]byte, 64), fam, model)
		tab := &CertTable{Entries: []CertEntry{{GUID: GUIDVLEK, Data: vlek.Raw}}}
		ev := &attest.Evidence{Platform: attest.PlatformSNP, Data: report, Aux: tab.Marshal()}
		v := &Verifier{Roots: []Root{pki.root}}
		cl, err := v.Verify(context.Background(), ev, attest.VerifyOptions{Time: notBefore.AddDate(0, 6, 0)})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if cl.SigningKey != "vlek" {
			t.Fatalf("%s: signing key %q", p, cl.SigningKey)
		}
		// Expired VLEK.
		if _, err := v.Verify(context.Background(), ev, attest.VerifyOptions{Time: vlek.NotAfter.Add(time.Second)}); checkName(err) != "vlek_validity" {
			t.Fatalf("%s expired: %v", p, err)
		}
		// A VLEK table for a VCEK-signed report names the missing VCEK.
		rep2 := buildReport(key, SigningKeyVCEK, raw, make([]byte, 64), fam, model)
		if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: rep2, Aux: tab.Marshal()}, attest.VerifyOptions{Time: notBefore.AddDate(0, 6, 0)}); checkName(err) != "vcek_missing" {
			t.Fatalf("%s: %v", p, err)
		}
		// A VLEK signed by the ASK (wrong role) is refused.
		bad := mkCert(t, "SEV-VLEK", pki.root.ASK, &key.PublicKey, pki.askKey, kdsExt(t, string(p)+"-B0", tcb, p == Turin, nil, "Example Cloud"), notBefore.AddDate(1, 0, 0))
		tab2 := &CertTable{Entries: []CertEntry{{GUID: GUIDVLEK, Data: bad.Raw}, {GUID: GUIDASK, Data: pki.root.ASK.Raw}}}
		if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: report, Aux: tab2.Marshal()}, attest.VerifyOptions{Time: notBefore.AddDate(0, 6, 0)}); checkName(err) != "asvk_chain" {
			t.Fatalf("%s VLEK under ASK: %v", p, err)
		}
	}
}
