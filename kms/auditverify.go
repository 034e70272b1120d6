package kms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/ppml/ppml/audit"
)

// VerifyAuditExport verifies an exported audit log against the tree-head
// public key; the error is an *audit.TamperError naming where it breaks.
func VerifyAuditExport(r io.Reader, pub crypto.PublicKey) error {
	_, err := audit.VerifyExport(r, audit.VerifyOptions{PublicKey: pub})
	return err
}

// ParseAuditPublicKey reads the PEM key served at /v1/audit/public-key.
func ParseAuditPublicKey(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("audit public key: want a PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	return k, nil
}

// ParseJWKS reads the keys of a /.well-known/jwks.json document.
func ParseJWKS(b []byte) ([]*ecdsa.PublicKey, error) {
	var doc struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var out []*ecdsa.PublicKey
	for _, j := range doc.Keys {
		k, err := ParseJWK(j)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
