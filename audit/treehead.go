package audit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ppml/ppml/attest"
)

// Signature algorithms of tree heads.
const (
	AlgECDSAP256 = "ecdsa-p256-sha256" // ASN.1 DER signature over SHA-256 of the message
	AlgEd25519   = "ed25519"           // Ed25519 over the message
)

// TreeHead is a signed statement of the log's size and root hash and, in
// format 2, of the chain table: how many trails it holds (Chains) and its
// root (ChainRoot), which commits to each trail's newest entry.
type TreeHead struct {
	LogID    attest.Hex `json:"log_id"`
	Size     uint64     `json:"size"`
	RootHash attest.Hex `json:"root_hash"`
	// Chains and ChainRoot are set on tree heads of format 2 (a server
	// that keeps per-trail chains); a format 1 head has neither.
	Chains    uint64     `json:"chains,omitempty"`
	ChainRoot attest.Hex `json:"chain_root,omitempty"`
	Timestamp time.Time  `json:"timestamp"`
	// KeyID is SHA-256 of the signing key's PKIX (SubjectPublicKeyInfo) DER.
	KeyID     attest.Hex `json:"key_id"`
	Algorithm string     `json:"algorithm"`
	Signature attest.Hex `json:"signature"`
}

// V2 reports whether the head commits to the chain table (format 2).
func (h *TreeHead) V2() bool { return len(h.ChainRoot) != 0 }

// Message returns the bytes that are signed:
//
//	ppml audit tree head v1\n       (v2 when the head has a chain root)
//	log_id <hex>\n
//	size <decimal>\n
//	root_hash <hex>\n
//	chains <decimal>\n              (v2 only)
//	chain_root <hex>\n              (v2 only)
//	timestamp <RFC 3339, UTC, nanoseconds>\n
//	key_id <hex>\n
//	algorithm <name>\n
//
// The first line differs between the versions, so a signature over one
// never verifies as the other: a chain root cannot be stripped.
func (h *TreeHead) Message() []byte {
	v := "1"
	if h.V2() {
		v = "2"
	}
	b := []byte("ppml audit tree head v" + v + "\n")
	b = append(b, "log_id "+h.LogID.String()+"\n"...)
	b = append(b, "size "+strconv.FormatUint(h.Size, 10)+"\n"...)
	b = append(b, "root_hash "+h.RootHash.String()+"\n"...)
	if h.V2() {
		b = append(b, "chains "+strconv.FormatUint(h.Chains, 10)+"\n"...)
		b = append(b, "chain_root "+h.ChainRoot.String()+"\n"...)
	}
	b = append(b, "timestamp "+h.Timestamp.UTC().Format(time.RFC3339Nano)+"\n"...)
	b = append(b, "key_id "+h.KeyID.String()+"\n"...)
	b = append(b, "algorithm "+h.Algorithm+"\n"...)
	return b
}

// KeyID returns SHA-256 of the PKIX encoding of pub.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("audit: public key: %w", err)
	}
	s := sha256.Sum256(der)
	return s[:], nil
}

func algorithmOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("audit: ECDSA tree head keys must be P-256")
		}
		return AlgECDSAP256, nil
	case ed25519.PublicKey:
		return AlgEd25519, nil
	}
	return "", fmt.Errorf("audit: unsupported tree head key type %T (want ECDSA P-256 or Ed25519)", pub)
}

// SignTreeHead signs a format 1 tree head (no chain table) with signer
// (ECDSA P-256 or Ed25519).
func SignTreeHead(signer crypto.Signer, logID []byte, size uint64, root []byte, ts time.Time) (*TreeHead, error) {
	h := &TreeHead{LogID: logID, Size: size, RootHash: root, Timestamp: ts}
	if err := h.Sign(signer); err != nil {
		return nil, err
	}
	return h, nil
}

// Sign sets the head's key id, algorithm and signature, signing with
// signer (ECDSA P-256 or Ed25519); the timestamp is made UTC first.
func (h *TreeHead) Sign(signer crypto.Signer) error {
	if signer == nil {
		return errors.New("audit: no tree head signer configured")
	}
	pub := signer.Public()
	alg, err := algorithmOf(pub)
	if err != nil {
		return err
	}
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	h.Timestamp, h.KeyID, h.Algorithm, h.Signature = h.Timestamp.UTC(), id, alg, nil
	msg := h.Message()
	var sig []byte
	switch alg {
	case AlgECDSAP256:
		d := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
	case AlgEd25519:
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	if err != nil {
		return fmt.Errorf("audit: sign tree head: %w", err)
	}
	h.Signature = sig
	return nil
}

// Verify checks the tree head's signature with pub.
func (h *TreeHead) Verify(pub crypto.PublicKey) error {
	alg, err := algorithmOf(pub)
	if err != nil {
		return err
	}
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	if h.Algorithm != alg {
		return fmt.Errorf("tree head is signed with %q, the public key is for %q", h.Algorithm, alg)
	}
	if string(h.KeyID) != string(id) {
		return fmt.Errorf("tree head was signed by key %x, not by the given public key %x", []byte(h.KeyID), id)
	}
	if len(h.RootHash) != sha256.Size {
		return fmt.Errorf("tree head root hash is %d bytes, want %d", len(h.RootHash), sha256.Size)
	}
	if h.V2() && len(h.ChainRoot) != sha256.Size {
		return fmt.Errorf("tree head chain root is %d bytes, want %d", len(h.ChainRoot), sha256.Size)
	}
	if !h.V2() && h.Chains != 0 {
		return errors.New("tree head counts chains but has no chain root")
	}
	msg := h.Message()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(k, d[:], h.Signature) {
			return errors.New("tree head signature is not valid")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, msg, h.Signature) {
			return errors.New("tree head signature is not valid")
		}
	}
	return nil
}

// ParsePublicKey reads the PEM public key that signs tree heads, as the key
// service serves it at /v1/audit/public-key and `ppml audit export` saves it.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("audit public key: want a PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	if _, err := algorithmOf(k); err != nil {
		return nil, err
	}
	return k, nil
}

// MarshalPublicKey is the PEM form ParsePublicKey reads.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
