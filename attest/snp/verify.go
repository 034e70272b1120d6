package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ppml/ppml/attest"
)

// Verifier checks SEV-SNP evidence: the report in Evidence.Data and the
// certificate table in Evidence.Aux, which holds the VCEK (or VLEK) and may
// hold the ASK (or ASVK). When the table holds no key certificate, Certs (if
// set) supplies it. Checks, by the name a failure carries:
//
//	platform          evidence is for SNP
//	event_log         no event log came with it (they are TDX's)
//	report_format     the report parses (version 2 or 3, ECDSA P-384)
//	cert_table        the certificate table parses
//	signing_key       the report names VCEK or VLEK as its signing key
//	vcek_missing      (vlek_missing) the table or Certs has the key the report names
//	vcek_parse        the key certificate parses and has the AMD extensions
//	product           the product (Milan, Genoa, Turin) is known and consistent
//	ark_validity      the pinned ARK is valid at the verification time
//	ask_chain         (asvk_chain) the intermediate is signed by the pinned ARK
//	ask_validity      (asvk_validity) the intermediate is valid at the verification time
//	vcek_chain        (vlek_chain) the key certificate is signed by the intermediate
//	vcek_validity     (vlek_validity) it is valid at the verification time
//	vcek_key          it holds an ECDSA P-384 key
//	chip_id           VCEK only: its hwID is the report's CHIP_ID
//	reported_tcb      the report's REPORTED_TCB equals the key's SPLs
//	report_signature  the report signature verifies under the key
//
// A zero Verifier uses the pinned AMD roots and is safe for concurrent use.
type Verifier struct {
	// Roots replaces the pinned AMD roots. Tests only: production code
	// leaves it nil.
	Roots []Root
	// Certs supplies the VCEK or VLEK (and possibly the intermediate) when
	// the evidence carries none; nil refuses such evidence.
	Certs CertSource

	mu    sync.Mutex
	known map[[32]byte]bool // (parent, child) pairs whose signature verified
}

// Name of the check for each certificate role.
func roleName(kind SigningKey, leaf bool) string {
	switch {
	case leaf && kind == SigningKeyVLEK:
		return "vlek"
	case leaf:
		return "vcek"
	case kind == SigningKeyVLEK:
		return "asvk"
	}
	return "ask"
}

// Verify implements attest.Verifier.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.VerifyOptions) (*attest.Claims, error) {
	if ev == nil {
		return nil, attest.Fail("platform", "no evidence")
	}
	if ev.Platform != attest.PlatformSNP {
		return nil, attest.Fail("platform", "evidence is for platform %q, not snp", ev.Platform)
	}
	if len(ev.EventLog) > 0 {
		return nil, attest.Fail("event_log", "an event log came with SEV-SNP evidence: event logs apply to TDX only")
	}
	now := opts.Now()
	rep, err := ParseReport(ev.Data)
	if err != nil {
		return nil, attest.Fail("report_format", "%w", err)
	}
	table, err := ParseCertTable(ev.Aux)
	if err != nil {
		return nil, attest.Fail("cert_table", "%w", err)
	}
	if rep.MaskChipKey {
		return nil, attest.Fail("signing_key", "report has MASK_CHIP_KEY set: the firmware did not sign it")
	}
	kind := rep.SigningKey
	var leafGUID GUID
	switch kind {
	case SigningKeyVCEK:
		leafGUID = GUIDVCEK
	case SigningKeyVLEK:
		leafGUID = GUIDVLEK
	default:
		return nil, attest.Fail("signing_key", "report SIGNING_KEY is %s, want vcek or vlek", kind)
	}
	leafName, midName := roleName(kind, true), roleName(kind, false)
	leafDER, midDER := table.Get(leafGUID), table.Get(GUIDASK)
	if leafDER == nil {
		if v.Certs == nil {
			return nil, attest.Fail(leafName+"_missing", "the report is signed by its %s but the evidence carries none (pass --vcek, a certificate table with a %s entry, or an AMD KDS source with --amd-kds)", upper(leafName), upper(leafName))
		}
		kc, err := v.Certs.KeyCertificates(ctx, KeyRequestFor(rep))
		if err != nil {
			return nil, attest.Fail(leafName+"_missing", "the evidence carries no %s, and getting it failed: %w", upper(leafName), err)
		}
		if len(kc.Leaf) == 0 {
			return nil, attest.Fail(leafName+"_missing", "the evidence carries no %s, and the certificate source returned none", upper(leafName))
		}
		leafDER = kc.Leaf
		if midDER == nil {
			midDER = kc.Intermediate
		}
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, attest.Fail(leafName+"_parse", "%s certificate: %w", upper(leafName), err)
	}
	ext, err := ParseKeyExtensions(leaf)
	if err != nil {
		return nil, attest.Fail(leafName+"_parse", "%s certificate: %w", upper(leafName), err)
	}
	product, err := ext.Product()
	if err != nil {
		return nil, attest.Fail("product", "%s certificate: %w", upper(leafName), err)
	}
	if p := ProductFromCPUID(rep.CPUIDFamily, rep.CPUIDModel); rep.Version >= 3 && p != "" && p != product {
		return nil, attest.Fail("product", "report CPUID says %s but the %s is for %s", p, upper(leafName), product)
	}
	root, err := v.root(product)
	if err != nil {
		return nil, attest.Fail("product", "%w", err)
	}
	mid := root.ASK
	if kind == SigningKeyVLEK {
		mid = root.ASVK
	}
	if der := midDER; der != nil {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, attest.Fail(midName+"_chain", "%s certificate from the evidence or the certificate source: %w", upper(midName), err)
		}
		mid = c
	}
	if mid == nil {
		return nil, attest.Fail(midName+"_chain", "no %s for %s", upper(midName), product)
	}

	// The ASK signs only VCEKs and the ASVK only VLEKs; AMD names them
	// SEV-<product> and SEV-VLEK-<product>.
	wantCN := "SEV-" + string(product)
	if kind == SigningKeyVLEK {
		wantCN = "SEV-VLEK-" + string(product)
	}
	if mid.Subject.CommonName != wantCN {
		return nil, attest.Fail(midName+"_chain", "intermediate is %q, want %q for a %s", mid.Subject.CommonName, wantCN, upper(leafName))
	}

	window := validity{notAfter: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := window.check("ark", root.ARK, now); err != nil {
		return nil, err
	}
	if err := v.signed(mid, root.ARK); err != nil {
		return nil, attest.Fail(midName+"_chain", "%s is not signed by the pinned %s ARK: %w", upper(midName), product, err)
	}
	if err := window.check(midName, mid, now); err != nil {
		return nil, err
	}
	if err := v.signed(leaf, mid); err != nil {
		return nil, attest.Fail(leafName+"_chain", "%s is not signed by the %s %s: %w", upper(leafName), product, upper(midName), err)
	}
	if err := window.check(leafName, leaf, now); err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, attest.Fail(leafName+"_key", "%s key is %T, want ECDSA P-384", upper(leafName), leaf.PublicKey)
	}

	if kind == SigningKeyVCEK {
		if err := checkChipID(product, rep, ext); err != nil {
			return nil, err
		}
	}
	if err := checkTCB(product, rep, ext, upper(leafName)); err != nil {
		return nil, err
	}
	digest := sha512.Sum384(rep.Raw[:SignedSize])
	r := new(big.Int).SetBytes(rep.SignatureR[:])
	s := new(big.Int).SetBytes(rep.SignatureS[:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, attest.Fail("report_signature", "report signature does not verify under the %s", upper(leafName))
	}
	return claimsFor(rep, ev.Data, product, kind, window, now), nil
}

func upper(role string) string {
	b := []byte(role)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func (v *Verifier) root(p Product) (*Root, error) {
	roots := v.Roots
	if roots == nil {
		var err error
		if roots, err = PinnedRoots(); err != nil {
			return nil, err
		}
	}
	for i := range roots {
		if roots[i].Product == p {
			return &roots[i], nil
		}
	}
	return nil, fmt.Errorf("no trusted AMD root for %s", p)
}

// signed checks child's signature by parent, remembering successes: the
// check depends only on the two certificates' bytes, and the RSA-4096
// verifications dominate the cost of verifying a report.
func (v *Verifier) signed(child, parent *x509.Certificate) error {
	h := sha256.New()
	h.Write(parent.Raw)
	h.Write([]byte{0})
	h.Write(child.Raw)
	var key [32]byte
	h.Sum(key[:0])
	v.mu.Lock()
	hit := v.known[key]
	v.mu.Unlock()
	if hit {
		return nil
	}
	if err := checkSigned(child, parent); err != nil {
		return err
	}
	v.mu.Lock()
	if v.known == nil || len(v.known) > 4096 {
		v.known = map[[32]byte]bool{}
	}
	v.known[key] = true
	v.mu.Unlock()
	return nil
}

type validity struct{ notBefore, notAfter time.Time }

// check requires c to be valid at now and narrows the window to c's.
func (w *validity) check(role string, c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return attest.Fail(role+"_validity", "%s certificate is not valid until %s (verification time %s)", upper(role), c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return attest.Fail(role+"_validity", "%s certificate expired at %s (verification time %s)", upper(role), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if c.NotBefore.After(w.notBefore) {
		w.notBefore = c.NotBefore
	}
	if c.NotAfter.Before(w.notAfter) {
		w.notAfter = c.NotAfter
	}
	return nil
}

func checkChipID(p Product, rep *Report, ext *KeyExtensions) error {
	if ext.HwID == nil {
		return attest.Fail("chip_id", "VCEK has no hwID extension")
	}
	if allZero(rep.ChipID[:]) {
		return attest.Fail("chip_id", "report CHIP_ID is zero (masked): it cannot be bound to a VCEK")
	}
	want := 64
	if p == Turin {
		want = 8 // Turin VCEKs name the chip by the first 8 bytes of CHIP_ID
	}
	if len(ext.HwID) != want {
		return attest.Fail("chip_id", "VCEK hwID has %d bytes, want %d for %s", len(ext.HwID), want, p)
	}
	if !bytes.Equal(ext.HwID, rep.ChipID[:want]) {
		return attest.Fail("chip_id", "report CHIP_ID %s… is not the VCEK's hwID %s…: the VCEK belongs to another chip",
			hex.EncodeToString(rep.ChipID[:8]), hex.EncodeToString(ext.HwID[:8]))
	}
	return nil
}

func checkTCB(p Product, rep *Report, ext *KeyExtensions, leaf string) error {
	got := DecodeTCB(p, rep.ReportedTCB)
	if p == Turin && !ext.HasFMC {
		return attest.Fail("reported_tcb", "%s for Turin has no fmcSPL extension", leaf)
	}
	want := ext.TCB
	if got != want {
		return attest.Fail("reported_tcb", "report REPORTED_TCB %s differs from the %s's TCB %s", got, leaf, want)
	}
	return nil
}

func (t TCB) String() string {
	return fmt.Sprintf("{fmc %d, bootloader %d, tee %d, snp %d, microcode %d}", t.FMC, t.Bootloader, t.TEE, t.SNP, t.Microcode)
}

// TCBClaim decodes a TCB_VERSION for claims with the product's layout.
func TCBClaim(p Product, v uint64) *attest.SNPTCB {
	t := DecodeTCB(p, v)
	c := &attest.SNPTCB{Raw: attest.U64(v), Bootloader: t.Bootloader, TEE: t.TEE, SNP: t.SNP, Microcode: t.Microcode}
	if p == Turin {
		c.FMC = &t.FMC
	}
	return c
}

func claimsFor(rep *Report, data []byte, product Product, kind SigningKey, w validity, now time.Time) *attest.Claims {
	digest := sha256.Sum256(data) // of Evidence.Data as given, padding included
	vmpl := int(rep.VMPL)
	current, committed := rep.CurrentVersion(), rep.CommittedVersion()
	return &attest.Claims{
		Platform:                 attest.PlatformSNP,
		TEEType:                  "sev-snp-guest",
		EvidenceVersion:          int(rep.Version),
		Measurement:              attest.Hex(clone(rep.Measurement[:])),
		HostData:                 attest.Hex(clone(rep.HostData[:])),
		IDKeyDigest:              attest.Hex(clone(rep.IDKeyDigest[:])),
		AuthorKeyDigest:          attest.Hex(clone(rep.AuthorKeyDigest[:])),
		FamilyID:                 attest.Hex(clone(rep.FamilyID[:])),
		ImageID:                  attest.Hex(clone(rep.ImageID[:])),
		ChipID:                   attest.Hex(clone(rep.ChipID[:])),
		SNPProduct:               string(product),
		ReportedTCB:              TCBClaim(product, rep.ReportedTCB),
		CommittedTCB:             TCBClaim(product, rep.CommittedTCB),
		LaunchTCB:                TCBClaim(product, rep.LaunchTCB),
		CurrentTCB:               TCBClaim(product, rep.CurrentTCB),
		GuestPolicy:              attest.NewSNPGuestPolicy(rep.Policy),
		PlatformInfo:             attest.SNPPlatformInfoBits.Flags(rep.PlatformInfo),
		FirmwareVersion:          &current,
		CommittedFirmwareVersion: &committed,
		VMPL:                     &vmpl,
		MigrationAgent:           rep.MigrationAgent(),
		SMTAllowed:               rep.SMTAllowed(),
		SigningKey:               kind.String(),
		SecurityVersion:          rep.GuestSVN,
		Debug:                    rep.Debug(),
		ReportData:               attest.Hex(clone(rep.ReportData[:])),
		CollateralNotBefore:      w.notBefore,
		CollateralNotAfter:       w.notAfter,
		VerifiedAt:               now,
		EvidenceDigest:           attest.Hex(digest[:]),
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
