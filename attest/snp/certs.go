package snp

import (
	"bytes"
	"crypto/x509"
	"embed"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ppml/ppml/attest"
)

// The AMD root keys are pinned: these files are AMD's published ARK+ASK
// (VCEK chain) and ARK+ASVK (VLEK chain) for each product. An ARK that
// arrives with evidence is never trusted.
//
//go:embed roots/amd_*.pem
var rootFS embed.FS

// Root is the trust anchor for one product: the ARK, and the ASK and ASVK
// AMD issued under it (used when evidence carries no intermediate).
type Root struct {
	Product Product
	ARK     *x509.Certificate
	ASK     *x509.Certificate // signs VCEKs
	ASVK    *x509.Certificate // signs VLEKs
}

var (
	pinnedOnce  sync.Once
	pinnedRoots []Root
	pinnedErr   error
)

// PinnedRoots returns the embedded AMD roots for Milan, Genoa and Turin.
// Each ARK is checked to be self-signed and each ASK/ASVK to be signed by it.
func PinnedRoots() ([]Root, error) {
	pinnedOnce.Do(func() { pinnedRoots, pinnedErr = loadPinned() })
	return pinnedRoots, pinnedErr
}

func loadPinned() ([]Root, error) {
	var roots []Root
	for _, p := range []Product{Milan, Genoa, Turin} {
		lower := strings.ToLower(string(p))
		vcek, err := readChain("roots/amd_ask_ark_" + lower + "_vcek.pem")
		if err != nil {
			return nil, err
		}
		vlek, err := readChain("roots/amd_asvk_ark_" + lower + "_vlek.pem")
		if err != nil {
			return nil, err
		}
		ark := vcek[1]
		if !bytes.Equal(ark.Raw, vlek[1].Raw) {
			return nil, fmt.Errorf("pinned %s roots: VCEK and VLEK chains name different ARKs", p)
		}
		if err := checkSigned(ark, ark); err != nil {
			return nil, fmt.Errorf("pinned %s ARK is not self-signed: %w", p, err)
		}
		for _, c := range []*x509.Certificate{vcek[0], vlek[0]} {
			if err := checkSigned(c, ark); err != nil {
				return nil, fmt.Errorf("pinned %s %s: %w", p, c.Subject.CommonName, err)
			}
		}
		roots = append(roots, Root{Product: p, ARK: ark, ASK: vcek[0], ASVK: vlek[0]})
	}
	return roots, nil
}

func readChain(name string) ([]*x509.Certificate, error) {
	b, err := rootFS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	certs, err := ParsePEMCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(certs) != 2 {
		return nil, fmt.Errorf("%s: %d certificates, want intermediate and ARK", name, len(certs))
	}
	return certs, nil
}

// ParsePEMCerts parses every CERTIFICATE block of a PEM file; a DER file
// holding one certificate is accepted too.
func ParsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("no PEM certificate and not a DER certificate: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// checkSigned checks that parent's key signed child and that the names chain.
// The AMD certificates carry no basic constraints, so x509's CA checks do
// not apply; the roles are fixed by position in the chain instead.
func checkSigned(child, parent *x509.Certificate) error {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return fmt.Errorf("issuer %q is not %q", child.Issuer.CommonName, parent.Subject.CommonName)
	}
	if child.SignatureAlgorithm != x509.SHA384WithRSAPSS {
		return fmt.Errorf("signature algorithm %v, want RSASSA-PSS with SHA-384", child.SignatureAlgorithm)
	}
	if err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature); err != nil {
		return fmt.Errorf("signature by %s does not verify: %w", parent.Subject.CommonName, err)
	}
	return nil
}

// AMD KDS certificate extensions (AMD publication 57230, "VCEK Certificate
// and KDS Interface Specification").
var (
	oidStructVersion = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 1}
	oidProductName   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 2}
	oidBlSPL         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 1}
	oidTeeSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 2}
	oidSnpSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 3}
	oidUcodeSPL      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 8}
	oidFmcSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 9}
	oidHwID          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 4}
	oidCspID         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 5}
)

// KeyExtensions are the AMD extensions of a VCEK or VLEK certificate.
type KeyExtensions struct {
	ProductName string `json:"product_name"` // e.g. "Milan-B0"
	// TCB holds the SPLs the key was derived for; Has* say which were present.
	TCB    TCB        `json:"tcb"`
	HasFMC bool       `json:"has_fmc"`
	HwID   attest.Hex `json:"hwid,omitempty"`   // VCEK only: the chip id (64 bytes; 8 on Turin)
	CspID  string     `json:"csp_id,omitempty"` // VLEK only: the cloud provider the key was issued to
}

// ParseKeyExtensions reads the AMD extensions of a VCEK or VLEK.
func ParseKeyExtensions(c *x509.Certificate) (*KeyExtensions, error) {
	k := &KeyExtensions{}
	var haveBl, haveTee, haveSnp, haveUcode bool
	seen := map[string]bool{}
	for _, e := range c.Extensions {
		id := e.Id.String()
		if seen[id] {
			return nil, fmt.Errorf("duplicate extension %s", id)
		}
		seen[id] = true
		var err error
		switch {
		case e.Id.Equal(oidProductName):
			k.ProductName, err = asn1IA5(e.Value)
		case e.Id.Equal(oidCspID):
			k.CspID, err = asn1IA5(e.Value)
		case e.Id.Equal(oidBlSPL):
			k.TCB.Bootloader, err = asn1U8(e.Value)
			haveBl = true
		case e.Id.Equal(oidTeeSPL):
			k.TCB.TEE, err = asn1U8(e.Value)
			haveTee = true
		case e.Id.Equal(oidSnpSPL):
			k.TCB.SNP, err = asn1U8(e.Value)
			haveSnp = true
		case e.Id.Equal(oidUcodeSPL):
			k.TCB.Microcode, err = asn1U8(e.Value)
			haveUcode = true
		case e.Id.Equal(oidFmcSPL):
			k.TCB.FMC, err = asn1U8(e.Value)
			k.HasFMC = true
		case e.Id.Equal(oidHwID):
			k.HwID, err = asn1Octets(e.Value)
		case e.Id.Equal(oidStructVersion):
			_, err = asn1U8(e.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", id, err)
		}
	}
	var missing []string
	for name, ok := range map[string]bool{"productName": k.ProductName != "", "blSPL": haveBl, "teeSPL": haveTee, "snpSPL": haveSnp, "ucodeSPL": haveUcode} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("missing AMD extensions %s", strings.Join(missing, ", "))
	}
	return k, nil
}

// Product returns the product named by the productName extension ("Milan-B0" → Milan).
func (k *KeyExtensions) Product() (Product, error) {
	name, _, _ := strings.Cut(k.ProductName, "-")
	switch Product(name) {
	case Milan, Genoa, Turin:
		return Product(name), nil
	}
	return "", fmt.Errorf("unknown AMD product %q", k.ProductName)
}

func asn1U8(v []byte) (uint8, error) {
	var i int64
	rest, err := asn1.Unmarshal(v, &i)
	if err != nil {
		return 0, fmt.Errorf("not an INTEGER: %w", err)
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("%d trailing bytes after INTEGER", len(rest))
	}
	if i < 0 || i > 255 {
		return 0, fmt.Errorf("SPL %d out of range 0-255", i)
	}
	return uint8(i), nil
}

func asn1IA5(v []byte) (string, error) {
	if len(v) == 0 || v[0] != asn1.TagIA5String {
		return "", fmt.Errorf("not an IA5String")
	}
	var s string
	rest, err := asn1.UnmarshalWithParams(v, &s, "ia5")
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("%d trailing bytes after IA5String", len(rest))
	}
	return s, nil
}

// asn1Octets reads hwID. AMD's KDS stores the raw 64 (Turin: 8) bytes
// without an OCTET STRING tag; a tagged value is accepted too.
func asn1Octets(v []byte) ([]byte, error) {
	if len(v) == 64 || len(v) == 8 {
		return append([]byte(nil), v...), nil
	}
	var b []byte
	rest, err := asn1.Unmarshal(v, &b)
	if err != nil {
		return nil, fmt.Errorf("hwID is neither 64/8 raw bytes nor an OCTET STRING: %w", err)
	}
	if len(rest) != 0 || (len(b) != 64 && len(b) != 8) {
		return nil, fmt.Errorf("hwID has %d bytes, want 64 (8 on Turin)", len(b))
	}
	return b, nil
}
