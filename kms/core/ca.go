package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
)

// The deployment CA: one per key service, created at first open, its
// private key kept in the meta bucket like the token and audit signing
// keys (so sealed with the store). It signs workload certificates and the
// revocation list, nothing else.
const (
	metaCAKey  = "ca_key"  // PKCS#8
	metaCACert = "ca_cert" // DER
	caLifetime = 20 * 365 * 24 * time.Hour
	// DefaultCRLValidity is how long a revocation list is valid (its next
	// update); the service signs a new one when half of it has passed, and
	// at once after a revocation.
	DefaultCRLValidity = 10 * time.Minute
)

// authority is the open deployment CA and its revocation list cache.
type authority struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate

	mu        sync.Mutex
	crl       []byte
	crlAt     time.Time
	crlNumber int64
	issued    uint64 // certificates issued since open, to prune now and then
}

// loadOrCreateCA opens the deployment CA, creating it (and auditing its
// creation) in a store that has none.
func (c *Core) loadOrCreateCA(tx store.Tx) (*authority, error) {
	kb, kerr := tx.Get(bktMeta, []byte(metaCAKey))
	cb, cerr := tx.Get(bktMeta, []byte(metaCACert))
	if kerr == nil && cerr == nil {
		k, err := x509.ParsePKCS8PrivateKey(kb)
		if err != nil {
			return nil, fmt.Errorf("deployment CA key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errors.New("deployment CA key: not an ECDSA key")
		}
		cert, err := x509.ParseCertificate(cb)
		if err != nil {
			return nil, fmt.Errorf("deployment CA certificate: %w", err)
		}
		if !ek.PublicKey.Equal(cert.PublicKey) {
			return nil, errors.New("deployment CA: the stored key does not match the stored certificate")
		}
		return &authority{key: ek, cert: cert}, nil
	}
	if !errors.Is(kerr, store.ErrNotFound) {
		return nil, kerr
	}
	if !errors.Is(cerr, store.ErrNotFound) {
		return nil, cerr
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	kid := sha256.Sum256(spki)
	now := c.now().UTC()
	tpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "ppml deployment CA " + hex.EncodeToString(kid[:4]), Organization: []string{"ppml"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          kid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("deployment CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := tx.Put(bktMeta, []byte(metaCAKey), pk); err != nil {
		return nil, err
	}
	if err := tx.Put(bktMeta, []byte(metaCACert), der); err != nil {
		return nil, err
	}
	fp := sha256.Sum256(der)
	if err := c.record(tx, audit.Entry{Type: audit.TypeCACreate, Actor: "key service", Reason: fmt.Sprintf("created the deployment CA %q, certificate sha256:%x", cert.Subject.CommonName, fp)}); err != nil {
		return nil, err
	}
	return &authority{key: k, cert: cert}, nil
}

// randomSerial is a positive 127-bit serial number (RFC 5280: at most 20
// octets; CA/B forum: at least 64 random bits).
func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40 // keep 16 octets, so every serial prints at the same width
	return new(big.Int).SetBytes(b)
}

// CACertificate is the deployment CA certificate (DER): what owners and
// clients pin (GET /v1/ca, public).
func (c *Core) CACertificate() []byte { return c.ca.cert.Raw }

// CRL returns the deployment CA's current revocation list (DER; GET
// /v1/ca/crl, public): every unexpired certificate that was revoked, valid
// for Config.CRLValidity. A list is signed again when half of its validity
// has passed or a revocation happened.
func (c *Core) CRL(ctx context.Context) ([]byte, error) {
	a := c.ca
	now := c.now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.crl != nil && now.Sub(a.crlAt) < c.cfg.CRLValidity/2 && !now.Before(a.crlAt) {
		return a.crl, nil
	}
	var entries []x509.RevocationListEntry
	err := c.db.View(func(tx store.Tx) error {
		return scanCerts(tx, func(r *certRec) error {
			if r.Revoked != nil && now.Before(r.NotAfter) {
				serial, ok := new(big.Int).SetString(r.Serial, 16)
				if !ok {
					return fmt.Errorf("certificate record with serial %q", r.Serial)
				}
				entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: r.Revoked.UTC(), ReasonCode: r.Reason})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	num := now.UnixMilli()
	if num <= a.crlNumber {
		num = a.crlNumber + 1
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(num), ThisUpdate: now, NextUpdate: now.Add(c.cfg.CRLValidity), RevokedCertificateEntries: entries,
	}, a.cert, a.key)
	if err != nil {
		return nil, fmt.Errorf("sign revocation list: %w", err)
	}
	a.crl, a.crlAt, a.crlNumber = der, now, num
	return der, nil
}

// crlChanged drops the cached list after a committed revocation.
func (c *Core) crlChanged() {
	c.ca.mu.Lock()
	c.ca.crl = nil
	c.ca.mu.Unlock()
}
