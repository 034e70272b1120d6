package dcap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap/abi"
	"github.com/ppml/ppml/attest/dcap/pcs"
)

// Verifier verifies SGX and TDX quotes. The zero value is not usable: set
// Source. It is safe for concurrent use and caches parsed certificates and
// verified signatures keyed by their bytes, never the time checks.
type Verifier struct {
	Source Source
	// Roots are the trust anchors; nil means the pinned Intel SGX Root CA.
	// Tests set a test-only root here; roots arriving with evidence or
	// collateral are never trusted.
	Roots *x509.CertPool

	mu    sync.Mutex
	cache map[string]any // digestKey → parsed or verified result
}

var _ attest.Verifier = (*Verifier)(nil)

// validity is a named interval during which one item of evidence or
// collateral is valid.
type validity struct {
	item      string
	notBefore time.Time
	notAfter  time.Time
}

func decodePEMBlock(s, typ string) ([]byte, error) {
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("want one PEM %q block", typ)
	}
	return b.Bytes, nil
}

func (v *Verifier) roots() *x509.CertPool {
	if v.Roots != nil {
		return v.Roots
	}
	return intelRootPool
}

var intelRootPool = IntelRoots()

// maxCacheEntries bounds the verifier's caches: keys derive from untrusted
// bytes, so an attacker sending ever-new chains must not grow memory.
const maxCacheEntries = 4096

// cached runs f and remembers a successful result under key. Failures are
// not cached: they cost little and would let junk fill the cache.
func (v *Verifier) cached(key string, f func() (any, error)) (any, error) {
	v.mu.Lock()
	val, ok := v.cache[key]
	v.mu.Unlock()
	if ok {
		return val, nil
	}
	val, err := f()
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= maxCacheEntries {
		v.cache = make(map[string]any)
	}
	v.cache[key] = val
	v.mu.Unlock()
	return val, nil
}

func digestKey(kind string, parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		big.NewInt(int64(len(p))).FillBytes(n[:])
		h.Write(n[:])
		h.Write(p)
	}
	return kind + string(h.Sum(nil))
}

// verifiedChain is a certificate chain checked to a trusted root, without
// time checks (those are done on every verification).
type verifiedChain struct {
	certs []*x509.Certificate // leaf first, trusted root last
}

// verifyChain checks that certs[0] chains through certs[1:] to a trusted
// root. Certificates in certs that are self-signed are ignored: only the
// verifier's roots anchor a chain.
func (v *Verifier) verifyChain(kind string, ders [][]byte) (*verifiedChain, error) {
	key := digestKey("chain:"+kind, ders...)
	r, err := v.cached(key, func() (any, error) {
		var certs []*x509.Certificate
		for i, d := range ders {
			c, err := x509.ParseCertificate(d)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", i+1, err)
			}
			certs = append(certs, c)
		}
		return v.buildChain(certs)
	})
	if err != nil {
		return nil, err
	}
	return r.(*verifiedChain), nil
}

func (v *Verifier) buildChain(certs []*x509.Certificate) (*verifiedChain, error) {
	if len(certs) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	inter := x509.NewCertPool()
	latest := certs[0].NotBefore
	for _, c := range certs[1:] {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			continue // a root that travels with the data is never an anchor
		}
		inter.AddCert(c)
	}
	for _, c := range certs {
		if c.NotBefore.After(latest) {
			latest = c.NotBefore
		}
	}
	// Time is checked separately with named items; verify the structure at
	// an instant inside the chain's own validity so the result is cacheable.
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         v.roots(),
		Intermediates: inter,
		CurrentTime:   latest,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, err
	}
	// The chain must be exactly the one supplied, root included (as Intel
	// publishes it): then every byte of it is checked, and a chain that
	// names another root, or carries extra certificates, is refused.
	for _, ch := range chains {
		if len(ch) != len(certs) {
			continue
		}
		same := true
		for i := range ch {
			if !bytes.Equal(ch[i].Raw, certs[i].Raw) {
				same = false
				break
			}
		}
		if same {
			return &verifiedChain{certs: ch}, nil
		}
	}
	return nil, errors.New("chain does not end in a trusted root certificate, or carries extra certificates")
}

func (v *Verifier) checkSig(kind string, signer *x509.Certificate, data, sig []byte) error {
	key := digestKey("sig:"+kind, signer.Raw, data, sig)
	_, err := v.cached(key, func() (any, error) {
		pub, ok := signer.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, errors.New("signer key is not ECDSA P-256")
		}
		if !verifyRawP256(pub, data, sig) {
			return nil, errors.New("signature does not verify")
		}
		return nil, nil
	})
	return err
}

func verifyRawP256(pub *ecdsa.PublicKey, data, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	d := sha256.Sum256(data)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, d[:], r, s)
}

func rawP256Key(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) != 64 {
		return nil, fmt.Errorf("attestation key has %d bytes, want 64", len(b))
	}
	pt := append([]byte{4}, b...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
	if err != nil {
		return nil, fmt.Errorf("attestation key: %w", err)
	}
	return pub, nil
}

// collateralCheck is the quote-independent part of collateral verification.
type collateralCheck struct {
	tcbChain, qeChain, crlChain *verifiedChain
	pckCRLIssuer                *x509.Certificate
	rootRevoked                 map[string]bool
	pckRevoked                  map[string]bool
}

// checkCollateral verifies issuer chains, signatures of TCB info, QE
// identity and both CRLs. Results are cached per collateral bytes.
func (v *Verifier) checkCollateral(c *Collateral) (*collateralCheck, error) {
	r, err := v.cached("coll:"+string(c.digest[:]), func() (any, error) {
		cc := &collateralCheck{}
		var err error
		cc.tcbChain, err = v.verifyChain("tcb", raws(c.TCBInfoIssuerChain))
		if err != nil {
			return nil, attest.Fail("tcb_info_chain", "TCB info issuer chain does not chain to the trusted root: %v", err)
		}
		if err := intelSigner(cc.tcbChain); err != nil {
			return nil, attest.Fail("tcb_info_chain", "TCB info issuer chain: %v", err)
		}
		cc.qeChain, err = v.verifyChain("qe", raws(c.QEIdentityIssuerChain))
		if err != nil {
			return nil, attest.Fail("qe_identity_chain", "QE identity issuer chain does not chain to the trusted root: %v", err)
		}
		if err := intelSigner(cc.qeChain); err != nil {
			return nil, attest.Fail("qe_identity_chain", "QE identity issuer chain: %v", err)
		}
		cc.crlChain, err = v.verifyChain("crl", raws(c.PCKCRLIssuerChain))
		if err != nil {
			return nil, attest.Fail("pck_crl", "PCK CRL issuer chain does not chain to the trusted root: %v", err)
		}
		root := cc.tcbChain.certs[len(cc.tcbChain.certs)-1]
		if err := c.RootCRL.CheckSignatureFrom(root); err != nil {
			return nil, attest.Fail("root_crl", "root CA CRL is not signed by the trusted root %q: %v", root.Subject.CommonName, err)
		}
		cc.rootRevoked = revokedSet(c.RootCRL)
		for _, ch := range []*verifiedChain{cc.tcbChain, cc.qeChain, cc.crlChain} {
			for _, cert := range ch.certs[:len(ch.certs)-1] {
				if cc.rootRevoked[string(cert.SerialNumber.Bytes())] && bytes.Equal(cert.RawIssuer, root.RawSubject) {
					return nil, attest.Fail("ca_revoked", "certificate %q (serial %x) is revoked by the root CA CRL", cert.Subject.CommonName, cert.SerialNumber)
				}
			}
		}
		if err := v.checkSig("tcb", cc.tcbChain.certs[0], c.TCBInfoRaw, c.TCBInfoSignature); err != nil {
			return nil, attest.Fail("tcb_info_signature", "TCB info signature by %q: %v", cc.tcbChain.certs[0].Subject.CommonName, err)
		}
		if err := v.checkSig("qe", cc.qeChain.certs[0], c.QEIdentityRaw, c.QEIdentitySignature); err != nil {
			return nil, attest.Fail("qe_identity_signature", "QE identity signature by %q: %v", cc.qeChain.certs[0].Subject.CommonName, err)
		}
		cc.pckCRLIssuer = cc.crlChain.certs[0]
		if err := c.PCKCRL.CheckSignatureFrom(cc.pckCRLIssuer); err != nil {
			return nil, attest.Fail("pck_crl", "PCK CRL is not signed by its issuer chain's %q: %v", cc.pckCRLIssuer.Subject.CommonName, err)
		}
		cc.pckRevoked = revokedSet(c.PCKCRL)
		return cc, nil
	})
	if err != nil {
		return nil, err
	}
	return r.(*collateralCheck), nil
}

// intelSigner insists that TCB info and QE identity come from the TCB
// Signing certificate issued directly by the root: any other certificate
// under the root (a PCK certificate, whose key lives in a platform) must not
// be able to sign collateral.
func intelSigner(ch *verifiedChain) error {
	if len(ch.certs) != 2 {
		return fmt.Errorf("signer is %d levels below the root, want 1", len(ch.certs)-1)
	}
	if cn := ch.certs[0].Subject.CommonName; cn != "Intel SGX TCB Signing" {
		return fmt.Errorf("signer %q is not the Intel SGX TCB Signing certificate", cn)
	}
	return nil
}

func raws(cs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(cs))
	for i, c := range cs {
		out[i] = c.Raw
	}
	return out
}

func revokedSet(crl *x509.RevocationList) map[string]bool {
	m := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		m[string(e.SerialNumber.Bytes())] = true
	}
	return m
}

// pckCAKind returns "processor" or "platform" from the PCK issuer's name.
func pckCAKind(issuer *x509.Certificate) (string, error) {
	switch issuer.Subject.CommonName {
	case "Intel SGX PCK Processor CA":
		return "processor", nil
	case "Intel SGX PCK Platform CA":
		return "platform", nil
	}
	return "", fmt.Errorf("PCK issuer %q is neither the Processor nor the Platform CA", issuer.Subject.CommonName)
}

// Verify verifies a DCAP quote at opts.Now() and returns its claims.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.VerifyOptions) (*attest.Claims, error) {
	now := opts.Now().UTC()
	if ev == nil {
		return nil, attest.Fail("quote_parse", "no evidence")
	}
	q, err := abi.ParseQuote(ev.Data)
	if err != nil {
		return nil, attest.Fail("quote_parse", "%v", err)
	}
	if err := q.CheckTrailing(); err != nil {
		return nil, attest.Fail("quote_parse", "%v", err)
	}
	if ev.Platform != "" && ev.Platform != q.Platform() {
		return nil, attest.Fail("evidence_platform", "evidence says %q but the quote is %s", ev.Platform, q.Platform())
	}
	if !bytes.Equal(q.Header.QEVendorID, abi.IntelQEVendorID) {
		return nil, attest.Fail("qe_vendor_id", "QE vendor ID %x is not Intel's", []byte(q.Header.QEVendorID))
	}
	if q.SGX == nil && q.TD == nil {
		return nil, attest.Fail("quote_parse", "quote has no body")
	}

	// PCK chain from the quote's certification data, to the pinned root.
	ders := make([][]byte, len(q.PCKChain))
	for i, c := range q.PCKChain {
		ders[i] = c
	}
	pck, err := v.verifyChain("pck", ders)
	if err != nil {
		return nil, attest.Fail("pck_chain", "PCK certificate chain does not chain to the trusted root: %v", err)
	}
	if len(pck.certs) != 3 {
		return nil, attest.Fail("pck_chain", "PCK chain has %d certificates, want PCK, PCK CA and root", len(pck.certs))
	}
	pckCert, pckCA, root := pck.certs[0], pck.certs[1], pck.certs[2]
	caKind, err := pckCAKind(pckCA)
	if err != nil {
		return nil, attest.Fail("pck_chain", "%v", err)
	}
	ext, err := v.pckExtensions(pckCert)
	if err != nil {
		return nil, attest.Fail("pck_extensions", "%v", err)
	}

	if v.Source == nil {
		return nil, attest.Fail("collateral_unavailable", "verifier has no collateral source")
	}
	coll, err := v.Source.Collateral(ctx, q.Platform(), ext.FMSPC, caKind)
	if err != nil {
		return nil, attest.Fail("collateral_unavailable", "collateral for FMSPC %X (%s CA): %v", ext.FMSPC, caKind, err)
	}
	if coll == nil {
		return nil, attest.Fail("collateral_unavailable", "collateral source returned nothing")
	}
	cc, err := v.checkCollateral(coll)
	if err != nil {
		return nil, err
	}

	// CRLs: the root CRL must come from this chain's root, the PCK CRL from
	// the PCK certificate's own issuer.
	if !bytes.Equal(coll.RootCRL.RawIssuer, root.RawSubject) {
		return nil, attest.Fail("root_crl", "root CA CRL issuer is not the PCK chain's root")
	}
	if cc.rootRevoked[string(pckCA.SerialNumber.Bytes())] {
		return nil, attest.Fail("ca_revoked", "PCK CA %q (serial %x) is revoked by the root CA CRL", pckCA.Subject.CommonName, pckCA.SerialNumber)
	}
	if !bytes.Equal(cc.pckCRLIssuer.Raw, pckCA.Raw) {
		if err := v.checkCRLFrom(coll.PCKCRL, pckCA); err != nil {
			return nil, attest.Fail("pck_crl", "PCK CRL is not signed by the PCK certificate's issuer %q: %v", pckCA.Subject.CommonName, err)
		}
	}
	if cc.pckRevoked[string(pckCert.SerialNumber.Bytes())] {
		return nil, attest.Fail("pck_revoked", "PCK certificate (serial %x) is revoked by the PCK CRL", pckCert.SerialNumber)
	}

	// Quote signature by the attestation key over header ‖ body.
	ak, err := rawP256Key(q.AttestationKey)
	if err != nil {
		return nil, attest.Fail("quote_signature", "%v", err)
	}
	if !verifyRawP256(ak, q.Signed, q.Signature) {
		return nil, attest.Fail("quote_signature", "quote signature does not verify with the attestation key")
	}
	// QE report signed by the PCK key.
	pckPub, ok := pckCert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pckPub.Curve != elliptic.P256() {
		return nil, attest.Fail("pck_chain", "PCK key is not ECDSA P-256")
	}
	if !verifyRawP256(pckPub, q.QEReportRaw, q.QEReportSignature) {
		return nil, attest.Fail("qe_report_signature", "QE report signature does not verify with the PCK key")
	}
	// QE report binds the attestation key and the QE authentication data.
	h := sha256.New()
	h.Write(q.AttestationKey)
	h.Write(q.QEAuthData)
	want := append(h.Sum(nil), make([]byte, 32)...)
	if !bytes.Equal(q.QEReport.ReportData, want) {
		return nil, attest.Fail("qe_report_data", "QE report data is not SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes")
	}

	// QE identity.
	qeid := coll.QEIdentity
	wantID := "QE"
	if q.IsTDX() {
		wantID = "TD_QE"
	}
	if qeid.ID != wantID {
		return nil, attest.Fail("qe_identity_mismatch", "QE identity is for %q, the quote needs %q", qeid.ID, wantID)
	}
	qeLevel, err := matchQEIdentity(qeid, &q.QEReport)
	if err != nil {
		return nil, err
	}

	// TCB info.
	ti := coll.TCBInfo
	wantTI := "SGX"
	if q.IsTDX() {
		wantTI = "TDX"
	}
	if ti.ID != wantTI {
		return nil, attest.Fail("tcb_info_id", "TCB info is for %s, the quote is %s", ti.ID, wantTI)
	}
	if !bytes.Equal(ti.FMSPC, ext.FMSPC) {
		return nil, attest.Fail("tcb_info_fmspc", "TCB info is for FMSPC %X, the PCK certificate has %X", []byte(ti.FMSPC), ext.FMSPC)
	}
	if !bytes.Equal(ti.PCEID, ext.PCEID) {
		return nil, attest.Fail("tcb_info_pceid", "TCB info is for PCE ID %X, the PCK certificate has %X", []byte(ti.PCEID), ext.PCEID)
	}

	// Time: every certificate, CRL, TCB info and QE identity must be
	// current at once.
	windows := []validity{
		certValidity("pck_cert", pckCert), certValidity("pck_ca_cert", pckCA), certValidity("root_ca_cert", root),
		certValidity("tcb_signing_cert", cc.tcbChain.certs[0]),
		certValidity("qe_identity_signing_cert", cc.qeChain.certs[0]),
		certValidity("pck_crl_issuer_cert", cc.pckCRLIssuer),
		{"root_crl", coll.RootCRL.ThisUpdate, coll.RootCRL.NextUpdate},
		{"pck_crl", coll.PCKCRL.ThisUpdate, coll.PCKCRL.NextUpdate},
		{"tcb_info", ti.IssueDate, ti.NextUpdate},
		{"qe_identity", qeid.IssueDate, qeid.NextUpdate},
	}
	for _, ch := range []*verifiedChain{cc.tcbChain, cc.qeChain, cc.crlChain} {
		for i, c := range ch.certs[1:] {
			if i+1 == len(ch.certs)-1 && bytes.Equal(c.Raw, root.Raw) {
				continue
			}
			windows = append(windows, certValidity("collateral_ca_cert", c))
		}
	}
	notBefore, notAfter := windows[0].notBefore, windows[0].notAfter
	for _, w := range windows {
		if w.notBefore.After(notBefore) {
			notBefore = w.notBefore
		}
		if w.notAfter.Before(notAfter) {
			notAfter = w.notAfter
		}
	}
	for _, w := range windows {
		if now.Before(w.notBefore) {
			return nil, attest.Fail("collateral_not_yet_valid", "%s not valid before %s (verification time %s)", w.item, w.notBefore.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
		}
		if now.After(w.notAfter) {
			return nil, attest.Fail(w.item+"_expired", "%s expired at %s (verification time %s)", w.item, w.notAfter.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
		}
	}

	// TCB level and status.
	var teeTCB []byte
	if q.TD != nil {
		teeTCB = q.TD.TEETCBSVN
	}
	st, err := evaluateTCB(ti, ext, q, teeTCB, qeLevel)
	if err != nil {
		return nil, err
	}

	var eventLog *attest.EventLog
	if len(ev.EventLog) > 0 {
		if eventLog, err = eventLogClaims(q, ev.EventLog); err != nil {
			return nil, err
		}
	}

	sum := sha256.Sum256(ev.Data)
	c := &attest.Claims{
		Platform:            q.Platform(),
		EvidenceVersion:     int(q.Header.Version),
		FMSPC:               attest.Hex(bytes.Clone(ext.FMSPC)),
		TCBStatus:           st.status,
		PlatformTCBStatus:   st.platform,
		QETCBStatus:         st.qe,
		TDXModuleTCBStatus:  st.module,
		TCBDate:             st.date,
		Advisories:          st.advisories,
		ReportData:          attest.Hex(bytes.Clone(q.ReportData())),
		CollateralNotBefore: notBefore.UTC(),
		CollateralNotAfter:  notAfter.UTC(),
		VerifiedAt:          now,
		EvidenceDigest:      attest.Hex(sum[:]),
	}
	if q.TD != nil {
		t := q.TD
		c.TEEType = "tdx-td"
		c.Measurement = t.MRTD
		c.MRTD = t.MRTD
		c.RTMR = []attest.Hex{t.RTMR[0], t.RTMR[1], t.RTMR[2], t.RTMR[3]}
		c.MRSeam = t.MRSeam
		c.MRSignerSeam = t.MRSignerSeam
		c.MRConfigID = t.MRConfigID
		c.MROwner = t.MROwner
		c.MROwnerConfig = t.MROwnerConfig
		c.TEETCBSVN = t.TEETCBSVN
		c.TEETCBSVN2 = t.TEETCBSVN2
		c.MRServiceTD = t.MRServiceTD
		c.Attributes = t.TDAttributes
		c.TDAttributes = attest.TDAttributeBits.Flags(binary.LittleEndian.Uint64(t.TDAttributes))
		c.XFAM = attest.XFAMBits.Flags(binary.LittleEndian.Uint64(t.XFAM))
		c.EventLog = eventLog
		c.Debug = t.Debug()
	} else {
		r := q.SGX
		c.TEEType = "sgx-enclave"
		c.Measurement = r.MREnclave
		c.Signer = r.MRSigner
		c.MREnclave = r.MREnclave
		c.MRSigner = r.MRSigner
		c.ProductID = r.ISVProdID
		c.SecurityVersion = uint32(r.ISVSVN)
		c.Attributes = r.Attributes
		c.Debug = r.Debug()
	}
	return c, nil
}

func (v *Verifier) pckExtensions(cert *x509.Certificate) (*pcs.PCKExtensions, error) {
	r, err := v.cached(digestKey("ext", cert.Raw), func() (any, error) { return pcs.ParsePCKExtensions(cert) })
	if err != nil {
		return nil, err
	}
	return r.(*pcs.PCKExtensions), nil
}

func (v *Verifier) checkCRLFrom(crl *x509.RevocationList, issuer *x509.Certificate) error {
	_, err := v.cached(digestKey("crl", crl.Raw, issuer.Raw), func() (any, error) { return nil, crl.CheckSignatureFrom(issuer) })
	return err
}

func certValidity(item string, c *x509.Certificate) validity {
	return validity{item, c.NotBefore, c.NotAfter}
}

func matchQEIdentity(id *pcs.QEIdentity, r *abi.EnclaveReport) (*pcs.QETCBLvl, error) {
	if !bytes.Equal(id.MRSigner, r.MRSigner) {
		return nil, attest.Fail("qe_identity_mismatch", "QE MRSIGNER %x, identity %q wants %x", []byte(r.MRSigner), id.ID, []byte(id.MRSigner))
	}
	if id.ISVProdID != r.ISVProdID {
		return nil, attest.Fail("qe_identity_mismatch", "QE ISVPRODID %d, identity %q wants %d", r.ISVProdID, id.ID, id.ISVProdID)
	}
	ms := leU32(id.MiscSelect)
	mask := leU32(id.MiscSelectMask)
	if r.MiscSelect&mask != ms {
		return nil, attest.Fail("qe_identity_mismatch", "QE MISCSELECT %08x under mask %08x is not %08x", r.MiscSelect, mask, ms)
	}
	for i := range 16 {
		if r.Attributes[i]&id.AttributesMask[i] != id.Attributes[i] {
			return nil, attest.Fail("qe_identity_mismatch", "QE ATTRIBUTES %x under mask %x are not %x", []byte(r.Attributes), []byte(id.AttributesMask), []byte(id.Attributes))
		}
	}
	return pcs.MatchISVSVN(id.TCBLevels, r.ISVSVN), nil
}

// leU32 reads Intel's big-endian-printed hex of a little-endian field:
// the JSON prints MISCSELECT bytes in memory order.
func leU32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

type tcbResult struct {
	status     string
	date       time.Time
	advisories []string
	// platform, qe and module are the statuses that converged into status
	// (module empty when the TCB info does not judge the module alone).
	platform, qe, module string
}

func evaluateTCB(ti *pcs.TCBInfo, ext *pcs.PCKExtensions, q *abi.Quote, teeTCB []byte, qe *pcs.QETCBLvl) (*tcbResult, error) {
	res := &tcbResult{}
	var adv []string
	addDate := func(d time.Time) {
		if res.date.IsZero() || d.Before(res.date) {
			res.date = d
		}
	}

	// TDX module identity (TCB info v3): TEE_TCB_SVN[1] is the module's
	// major version, TEE_TCB_SVN[0] its SVN.
	var moduleStatus string
	if teeTCB != nil {
		seamSigner, seamAttr := q.TD.MRSignerSeam, q.TD.SeamAttributes
		var mrsigner, attr, mask []byte
		var levels []pcs.QETCBLvl
		if teeTCB[1] > 0 && len(ti.TDXModuleIdentities) > 0 {
			id := fmt.Sprintf("TDX_%02X", teeTCB[1])
			idx := slices.IndexFunc(ti.TDXModuleIdentities, func(m pcs.TDXModuleIdentity) bool { return m.ID == id })
			if idx < 0 {
				return nil, attest.Fail("tdx_module_identity", "TCB info has no TDX module identity %q", id)
			}
			m := ti.TDXModuleIdentities[idx]
			mrsigner, attr, mask, levels = m.MRSigner, m.Attributes, m.AttributesMask, m.TCBLevels
		} else {
			mrsigner, attr, mask = ti.TDXModule.MRSigner, ti.TDXModule.Attributes, ti.TDXModule.AttributesMask
		}
		if !bytes.Equal(mrsigner, seamSigner) {
			return nil, attest.Fail("tdx_module_identity", "MRSIGNERSEAM %x is not the TDX module signer %x", []byte(seamSigner), mrsigner)
		}
		for i := range 8 {
			if seamAttr[i]&mask[i] != attr[i] {
				return nil, attest.Fail("tdx_module_identity", "SEAMATTRIBUTES %x under mask %x are not %x", []byte(seamAttr), mask, attr)
			}
		}
		if levels != nil {
			l := pcs.MatchISVSVN(levels, uint16(teeTCB[0]))
			if l == nil {
				moduleStatus = pcs.StatusTCBLevelNotSupported
			} else {
				moduleStatus = l.TCBStatus
				adv = append(adv, l.AdvisoryIDs...)
				addDate(l.TCBDate)
			}
		}
	}

	var platform *pcs.TCBLevel
	for i := range ti.TCBLevels {
		l := &ti.TCBLevels[i]
		if !componentsGE(ext.TCB.SGXComponents[:], l.TCB.SGXComponents[:]) || ext.TCB.PCESVN < l.TCB.PCESVN {
			continue
		}
		if teeTCB != nil {
			if l.TCB.TDXComponents == nil {
				continue
			}
			start := 0
			if ti.Version >= 3 && teeTCB[1] > 0 {
				start = 2 // the module's own SVN is judged by its identity above
			}
			if !componentsGE(teeTCB[start:16], l.TCB.TDXComponents[start:]) {
				continue
			}
		}
		platform = l
		break
	}
	if qe != nil {
		adv = append(adv, qe.AdvisoryIDs...)
		addDate(qe.TCBDate)
	}
	qeStatus := pcs.StatusOutOfDate // no QE level: QVL treats the QE as out of date
	if qe != nil {
		qeStatus = qe.TCBStatus
	}
	res.qe, res.module = qeStatus, moduleStatus
	if platform == nil || moduleStatus == pcs.StatusTCBLevelNotSupported {
		// All signatures are good but Intel lists no level for these SVNs.
		res.status = pcs.StatusTCBLevelNotSupported
		res.platform = pcs.StatusTCBLevelNotSupported
		if platform != nil {
			res.platform = platform.TCBStatus
		}
		res.date = time.Time{}
		res.advisories = sortedUnique(adv)
		return res, nil
	}
	adv = append(adv, platform.AdvisoryIDs...)
	addDate(platform.TCBDate)
	status := platform.TCBStatus
	res.platform = status
	if moduleStatus != "" {
		status = converge(status, moduleStatus)
	}
	status = converge(status, qeStatus)
	if status == pcs.StatusRevoked {
		return nil, attest.Fail("tcb_revoked", "TCB level is Revoked (platform %s, QE %s, module %s)", platform.TCBStatus, qeStatus, moduleStatus)
	}
	res.status = status
	res.advisories = sortedUnique(adv)
	return res, nil
}

// converge combines the platform's status with a component's (QE or TDX
// module) the way Intel's QVL does.
func converge(platform, component string) string {
	switch component {
	case pcs.StatusRevoked:
		return pcs.StatusRevoked
	case pcs.StatusOutOfDate, pcs.StatusOutOfDateConfigurationNeeded:
		switch platform {
		case pcs.StatusUpToDate, pcs.StatusSWHardeningNeeded:
			return pcs.StatusOutOfDate
		case pcs.StatusConfigurationNeeded, pcs.StatusConfigurationAndSWHardeningNeeded:
			return pcs.StatusOutOfDateConfigurationNeeded
		}
	}
	return platform
}

func componentsGE(have, want []uint8) bool {
	for i := range want {
		if have[i] < want[i] {
			return false
		}
	}
	return true
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
