package workload

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// CRL reason codes the key service writes (RFC 5280 section 5.3.1).
const (
	ReasonUnspecified          = 0
	ReasonSuperseded           = 4 // the certificate policy changed: certificates of older versions are revoked
	ReasonCessationOfOperation = 5 // the certificate policy was deleted
)

// MaxCRLSize bounds a revocation list a peer accepts.
const MaxCRLSize = 4 << 20

// CRL is a revocation list of the deployment CA whose signature was
// verified. It is a Revocations: a certificate it lists is revoked, and
// once past its next update it answers nothing (status unknown), so a peer
// that stops getting fresh lists stops trusting anyone rather than trusting
// revoked certificates.
type CRL struct {
	List    *x509.RevocationList
	revoked map[string]x509.RevocationListEntry // by serial, hex
}

// ParseCRL parses a DER revocation list and checks that ca signed it.
func ParseCRL(der []byte, ca *x509.Certificate) (*CRL, error) {
	if len(der) > MaxCRLSize {
		return nil, fmt.Errorf("revocation list of %d bytes exceeds %d", len(der), MaxCRLSize)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("revocation list does not parse: %w", err)
	}
	if err := l.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("revocation list is not signed by the deployment CA %q: %w", ca.Subject.CommonName, err)
	}
	if l.NextUpdate.IsZero() || !l.NextUpdate.After(l.ThisUpdate) {
		return nil, errors.New("revocation list has no next update after its this update")
	}
	c := &CRL{List: l, revoked: map[string]x509.RevocationListEntry{}}
	for _, e := range l.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			c.revoked[fmt.Sprintf("%x", e.SerialNumber)] = e
		}
	}
	return c, nil
}

// Newer reports whether c supersedes old (a higher CRL number, or a later
// this update when numbers are equal).
func (c *CRL) Newer(old *CRL) bool {
	if old == nil {
		return true
	}
	if c.List.Number != nil && old.List.Number != nil {
		if d := c.List.Number.Cmp(old.List.Number); d != 0 {
			return d > 0
		}
	}
	return c.List.ThisUpdate.After(old.List.ThisUpdate)
}

// Status implements Revocations.
func (c *CRL) Status(cert *x509.Certificate, now time.Time) error {
	if c == nil || c.List == nil {
		return errors.New("no revocation list")
	}
	if !now.Before(c.List.NextUpdate) {
		return fmt.Errorf("the revocation list expired at %s (it is now %s): the key service could not be reached for a fresh one", c.List.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Add(time.Minute).Before(c.List.ThisUpdate) {
		return fmt.Errorf("the revocation list is from the future (%s)", c.List.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if e, ok := c.revoked[fmt.Sprintf("%x", cert.SerialNumber)]; ok {
		return refuse(CheckRevoked, "certificate %s was revoked at %s: %s", SerialString(cert), e.RevocationTime.UTC().Format(time.RFC3339), ReasonText(e.ReasonCode))
	}
	return nil
}

// ReasonText says what a revocation reason code means for ppml.
func ReasonText(code int) string {
	switch code {
	case ReasonSuperseded:
		return "its certificate policy changed after it was issued"
	case ReasonCessationOfOperation:
		return "its certificate policy was deleted"
	default:
		return fmt.Sprintf("reason code %d", code)
	}
}
