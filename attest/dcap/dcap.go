// Package dcap verifies Intel DCAP quotes — SGX quote v3/v4 and TDX quote
// v4/v5 — against Intel's collateral, anchored at the pinned Intel SGX Root
// CA. It is the entry point; abi parses quotes, pcs parses collateral.
//
// Verification follows Intel's Quote Verification Library: PCK chain and
// CRLs, quote and QE report signatures, QE report binding, QE identity, TCB
// info, TCB level matching and status convergence. Every failure is an
// *attest.CheckError naming the check (see docs/attestation.md).
package dcap

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap/abi"
	"github.com/ppml/ppml/attest/dcap/pcs"
)

// Quote is a parsed SGX or TDX quote. It marshals to JSON with every parsed
// field, bytes in hex.
type Quote = abi.Quote

// ParseQuote parses an SGX (v3, v4) or TDX (v4, v5) quote. Lengths come from
// the quote's own fields; bytes after the quote are recorded (Quote.Trailing)
// and the verifier refuses any that are not zero.
func ParseQuote(b []byte) (*Quote, error) { return abi.ParseQuote(b) }

//go:embed trust/intel_sgx_root_ca.der
var intelRootDER []byte

var intelRoot = func() *x509.Certificate {
	c, err := x509.ParseCertificate(intelRootDER)
	if err != nil {
		panic("dcap: embedded Intel SGX Root CA does not parse: " + err.Error())
	}
	return c
}()

// IntelRootCA returns the pinned Intel SGX Root CA certificate.
func IntelRootCA() *x509.Certificate { return intelRoot }

// IntelRoots returns a pool holding only the pinned Intel SGX Root CA.
func IntelRoots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(intelRoot)
	return p
}

// Bundle is the offline collateral file layout (see
// testdata/attestation/README.md): all strings; tcb_info and qe_identity
// are the exact signed JSON text, signatures and CRLs hex, chains PEM.
type Bundle struct {
	PCKCRLIssuerChain     string `json:"pck_crl_issuer_chain"`
	RootCACRL             string `json:"root_ca_crl"`
	PCKCRL                string `json:"pck_crl"`
	TCBInfoIssuerChain    string `json:"tcb_info_issuer_chain"`
	TCBInfo               string `json:"tcb_info"`
	TCBInfoSignature      string `json:"tcb_info_signature"`
	QEIdentityIssuerChain string `json:"qe_identity_issuer_chain"`
	QEIdentity            string `json:"qe_identity"`
	QEIdentitySignature   string `json:"qe_identity_signature"`
}

// Collateral is everything needed to verify quotes of one platform (FMSPC
// and PCK CA): parsed, with the raw signed bytes kept for signature checks.
type Collateral struct {
	TCBInfo               *pcs.TCBInfo
	TCBInfoRaw            []byte // exact signed bytes
	TCBInfoSignature      []byte // raw r||s
	TCBInfoIssuerChain    []*x509.Certificate
	QEIdentity            *pcs.QEIdentity
	QEIdentityRaw         []byte
	QEIdentitySignature   []byte
	QEIdentityIssuerChain []*x509.Certificate
	PCKCRL                *x509.RevocationList
	PCKCRLIssuerChain     []*x509.Certificate
	RootCRL               *x509.RevocationList

	// Bundle is the collateral in bundle form, as parsed.
	Bundle Bundle
	// digest identifies the collateral's bytes for the verifier's caches.
	digest [32]byte
}

// ParseBundle parses an offline collateral bundle.
func ParseBundle(b []byte) (*Collateral, error) {
	var bd Bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		return nil, fmt.Errorf("collateral bundle: %w", err)
	}
	return NewCollateral(bd)
}

// LoadBundle reads and parses an offline collateral bundle file.
func LoadBundle(path string) (*Collateral, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("collateral bundle: %w", err)
	}
	c, err := ParseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal returns the collateral in bundle form.
func (c *Collateral) Marshal() ([]byte, error) { return json.MarshalIndent(c.Bundle, "", " ") }

// NewCollateral parses every piece of a bundle.
func NewCollateral(bd Bundle) (*Collateral, error) {
	c := &Collateral{Bundle: bd}
	var err error
	field := func(name string, e error) error { return fmt.Errorf("collateral %s: %w", name, e) }
	if c.TCBInfoIssuerChain, err = parseChain(bd.TCBInfoIssuerChain); err != nil {
		return nil, field("tcb_info_issuer_chain", err)
	}
	if c.QEIdentityIssuerChain, err = parseChain(bd.QEIdentityIssuerChain); err != nil {
		return nil, field("qe_identity_issuer_chain", err)
	}
	if c.PCKCRLIssuerChain, err = parseChain(bd.PCKCRLIssuerChain); err != nil {
		return nil, field("pck_crl_issuer_chain", err)
	}
	if c.RootCRL, err = parseHexCRL(bd.RootCACRL); err != nil {
		return nil, field("root_ca_crl", err)
	}
	if c.PCKCRL, err = parseHexCRL(bd.PCKCRL); err != nil {
		return nil, field("pck_crl", err)
	}
	c.TCBInfoRaw = []byte(bd.TCBInfo)
	if c.TCBInfo, err = pcs.ParseTCBInfo(c.TCBInfoRaw); err != nil {
		return nil, field("tcb_info", err)
	}
	if c.TCBInfoSignature, err = parseSig(bd.TCBInfoSignature); err != nil {
		return nil, field("tcb_info_signature", err)
	}
	c.QEIdentityRaw = []byte(bd.QEIdentity)
	if c.QEIdentity, err = pcs.ParseQEIdentity(c.QEIdentityRaw); err != nil {
		return nil, field("qe_identity", err)
	}
	if c.QEIdentitySignature, err = parseSig(bd.QEIdentitySignature); err != nil {
		return nil, field("qe_identity_signature", err)
	}
	h := sha256.New()
	for _, s := range []string{bd.PCKCRLIssuerChain, bd.RootCACRL, bd.PCKCRL, bd.TCBInfoIssuerChain, bd.TCBInfo,
		bd.TCBInfoSignature, bd.QEIdentityIssuerChain, bd.QEIdentity, bd.QEIdentitySignature} {
		fmt.Fprintf(h, "%d:", len(s))
		h.Write([]byte(s))
	}
	h.Sum(c.digest[:0])
	return c, nil
}

func parseChain(s string) ([]*x509.Certificate, error) {
	ders, err := abi.ParsePEMCertificates([]byte(s))
	if err != nil {
		return nil, err
	}
	if len(ders) == 0 {
		return nil, errors.New("no certificate")
	}
	out := make([]*x509.Certificate, len(ders))
	for i, d := range ders {
		if out[i], err = x509.ParseCertificate(d); err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
	}
	return out, nil
}

func parseHexCRL(s string) (*x509.RevocationList, error) {
	der, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("hex: %w", err)
	}
	return parseCRLBytes(der)
}

// parseCRLBytes accepts DER, PEM ("X509 CRL") or hex-encoded DER, the three
// forms PCS and PCCS versions return.
func parseCRLBytes(b []byte) (*x509.RevocationList, error) {
	t := strings.TrimSpace(string(b))
	switch {
	case strings.HasPrefix(t, "-----BEGIN X509 CRL-----"):
		der, err := decodePEMBlock(t, "X509 CRL")
		if err != nil {
			return nil, err
		}
		b = der
	case len(t) > 0 && isHex(t):
		der, err := hex.DecodeString(t)
		if err != nil {
			return nil, err
		}
		b = der
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, err
	}
	if crl.NextUpdate.IsZero() {
		return nil, errors.New("CRL has no nextUpdate")
	}
	return crl, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return len(s)%2 == 0
}

func parseSig(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("hex: %w", err)
	}
	if len(b) != 64 {
		return nil, fmt.Errorf("signature has %d bytes, want 64 (raw r||s)", len(b))
	}
	return b, nil
}

// Source supplies collateral for a platform: platform is SGX or TDX (TDX
// uses the TDX TCB info and the TD QE identity), fmspc the PCK
// certificate's FMSPC, pckCA "processor" or "platform".
type Source interface {
	Collateral(ctx context.Context, platform attest.Platform, fmspc []byte, pckCA string) (*Collateral, error)
}

type staticSource struct{ c *Collateral }

// StaticSource serves one offline bundle for every request; the verifier
// still checks that it fits the quote (FMSPC, PCE ID, QE identity, CA).
func StaticSource(c *Collateral) Source { return staticSource{c} }

func (s staticSource) Collateral(context.Context, attest.Platform, []byte, string) (*Collateral, error) {
	if s.c == nil {
		return nil, errors.New("no collateral")
	}
	return s.c, nil
}
