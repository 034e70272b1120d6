package kds

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/attest/snp"
)

// Bundle is an offline set of AMD certificates for key services that may
// not reach KDS: VCEKs and VLEKs, and optionally intermediates (ASK, ASVK;
// an ARK in it is ignored, the pinned one is used). It is indexed by the
// certificates' own AMD extensions, so file names do not matter.
type Bundle struct {
	path  string
	keys  []bundleKey
	inter map[string][]byte // intermediate common name (SEV-Milan, SEV-VLEK-Milan) → DER
}

type bundleKey struct {
	der     []byte
	product snp.Product
	ext     *snp.KeyExtensions
}

var _ snp.CertSource = (*Bundle)(nil)

// bundleExts are the file name endings a bundle directory is read from.
var bundleExts = []string{".pem", ".der", ".crt", ".cer"}

// LoadBundle reads a bundle from a file (PEM with any number of
// certificates, or one DER certificate) or from every .pem, .der, .crt and
// .cer file of a directory (the certificates `snpguest fetch` or a KDS
// download leave behind, say).
func LoadBundle(path string) (*Bundle, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("AMD certificate bundle: %w", err)
	}
	files := []string{path}
	if fi.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("AMD certificate bundle: %w", err)
		}
		files = nil
		for _, e := range ents {
			for _, ext := range bundleExts {
				if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ext) {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
	}
	b := &Bundle{path: path, inter: map[string][]byte{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("AMD certificate bundle: %w", err)
		}
		certs, err := parseCerts(data)
		if err != nil {
			return nil, fmt.Errorf("AMD certificate bundle %s: %w", f, err)
		}
		for _, c := range certs {
			b.add(c)
		}
	}
	if len(b.keys) == 0 {
		return nil, fmt.Errorf("AMD certificate bundle %s holds no VCEK or VLEK", path)
	}
	return b, nil
}

// parseCerts reads every PEM CERTIFICATE block, or one DER certificate.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("not a PEM file and not a DER certificate: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	for rest := data; ; {
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
		return nil, fmt.Errorf("no PEM certificate")
	}
	return out, nil
}

// add files a certificate as a key (it has the AMD TCB extensions) or as
// an intermediate (by the names AMD gives them); anything else is ignored.
func (b *Bundle) add(c *x509.Certificate) {
	if ext, err := snp.ParseKeyExtensions(c); err == nil {
		if p, err := ext.Product(); err == nil {
			b.keys = append(b.keys, bundleKey{der: c.Raw, product: p, ext: ext})
		}
		return
	}
	if cn := c.Subject.CommonName; strings.HasPrefix(cn, "SEV-") {
		b.inter[cn] = c.Raw
	}
}

// KeyCertificates implements snp.CertSource: the VCEK for the report's chip
// and TCB, or a VLEK for its TCB, with the product's intermediate if the
// bundle has it.
func (b *Bundle) KeyCertificates(_ context.Context, req snp.KeyRequest) (*snp.KeyCertificates, error) {
	for _, k := range b.keys {
		if req.Product != "" && k.product != req.Product {
			continue
		}
		if snp.DecodeTCB(k.product, req.ReportedTCB) != k.ext.TCB {
			continue
		}
		switch req.SigningKey {
		case snp.SigningKeyVCEK:
			if len(k.ext.HwID) == 0 || !bytes.Equal(k.ext.HwID, req.ChipID[:len(k.ext.HwID)]) {
				continue
			}
		case snp.SigningKeyVLEK:
			if k.ext.CspID == "" {
				continue
			}
		default:
			continue
		}
		cn := "SEV-" + string(k.product)
		if req.SigningKey == snp.SigningKeyVLEK {
			cn = "SEV-VLEK-" + string(k.product)
		}
		return &snp.KeyCertificates{Leaf: k.der, Intermediate: b.inter[cn]}, nil
	}
	if req.SigningKey == snp.SigningKeyVLEK {
		return nil, fmt.Errorf("AMD certificate bundle %s has no VLEK for TCB %#x", b.path, req.ReportedTCB)
	}
	return nil, fmt.Errorf("AMD certificate bundle %s has no VCEK for chip %s… at TCB %#x", b.path, hex.EncodeToString(req.ChipID[:8]), req.ReportedTCB)
}
