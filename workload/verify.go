package workload

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Checks a peer certificate can fail, as PeerError.Check names them.
const (
	CheckChain       = "chain"              // no chain to the deployment CA, or not for this key usage
	CheckNotYetValid = "not_yet_valid"      // before NotBefore
	CheckExpired     = "expired"            // at or after NotAfter
	CheckRevoked     = "revoked"            // on the CA's revocation list
	CheckRevocation  = "revocation_unknown" // no revocation list, or a stale one
	CheckExtension   = "extension"          // no valid workload identity extension
	CheckInsecure    = "insecure"           // a simulated TEE and the peer does not accept one
	CheckJob         = "job_digest"         // another job
	CheckRole        = "role"               // a role not accepted
	CheckPolicy      = "policy"             // issued under another certificate policy
)

// PeerError is a refused peer certificate: the check that failed and why.
type PeerError struct {
	Check  string
	Reason string
}

func (e *PeerError) Error() string { return "peer certificate refused (" + e.Check + "): " + e.Reason }

func refuse(check, format string, args ...any) *PeerError {
	return &PeerError{Check: check, Reason: fmt.Sprintf(format, args...)}
}

// Revocations answers whether a certificate of the deployment CA is
// revoked. The key service's CRL (type CRL) is one; kms/client keeps a
// fresh one.
type Revocations interface {
	// Status returns nil when c is known not to be revoked at now, and an
	// error otherwise: revoked (a *PeerError with CheckRevoked), or status
	// unknown (no list, or a list past its next update).
	Status(c *x509.Certificate, now time.Time) error
}

// Trust is what a peer trusts: the deployment CA, a source of revocation
// status, and a clock.
type Trust struct {
	// Roots holds the deployment CA certificate (what `ppml cert ca` saves).
	Roots *x509.CertPool
	// Revocations gives revocation status. Nil refuses every certificate:
	// a peer that cannot learn of revocations must not trust anyone.
	Revocations Revocations
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Expect is what a peer requires of the other side's identity.
type Expect struct {
	// JobDigest is the job the peer must run (required: workers of one job
	// talk to workers of that job only).
	JobDigest []byte
	// Roles are the accepted roles; empty accepts any role.
	Roles []string
	// Policy is the certificate policy (TENANT/NAME) the peer's certificate
	// must have been issued under: set it to the policy of one's own
	// certificate, so that another tenant's policy admitting other code for
	// the same job digest admits nobody here. Required.
	Policy string
	// AllowInsecure accepts certificates of simulated TEEs. It must be set
	// when, and only when, one's own certificate is one.
	AllowInsecure bool
}

// Verify checks a peer's certificate chain (leaf first, as TLS presents it)
// for usage (x509.ExtKeyUsageServerAuth when the peer is a server,
// ExtKeyUsageClientAuth when it is a client) and returns the leaf and its
// identity: validity at now, the chain to the deployment CA, revocation,
// the identity extension, then the expectations. The first failing check
// is a *PeerError.
func (t *Trust) Verify(rawCerts [][]byte, usage x509.ExtKeyUsage, want Expect) (*x509.Certificate, *Identity, error) {
	if t == nil || t.Roots == nil {
		return nil, nil, refuse(CheckChain, "no deployment CA to verify against")
	}
	if len(want.JobDigest) != JobDigestSize || want.Policy == "" {
		return nil, nil, errors.New("workload: peer expectations need the job digest and the certificate policy")
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	if len(rawCerts) == 0 {
		return nil, nil, refuse(CheckChain, "the peer sent no certificate")
	}
	if len(rawCerts) > 4 {
		return nil, nil, refuse(CheckChain, "the peer sent %d certificates", len(rawCerts))
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, nil, refuse(CheckChain, "certificate %d does not parse: %v", i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	serial := SerialString(leaf)
	if now.Before(leaf.NotBefore) {
		return nil, nil, refuse(CheckNotYetValid, "certificate %s is valid from %s, it is now %s", serial, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(leaf.NotAfter) {
		return nil, nil, refuse(CheckExpired, "certificate %s expired at %s, it is now %s", serial, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.Roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, nil, refuse(CheckChain, "certificate %s does not chain to the deployment CA for %s: %v", serial, usageName(usage), err)
	}
	if t.Revocations == nil {
		return nil, nil, refuse(CheckRevocation, "no revocation list of the deployment CA")
	}
	if err := t.Revocations.Status(leaf, now); err != nil {
		var pe *PeerError
		if errors.As(err, &pe) {
			return nil, nil, pe
		}
		return nil, nil, refuse(CheckRevocation, "revocation status of certificate %s unknown: %v", serial, err)
	}
	id, err := FromCertificate(leaf)
	if err != nil {
		return nil, nil, refuse(CheckExtension, "%v", err)
	}
	if err := id.Match(want); err != nil {
		return nil, nil, err
	}
	return leaf, id, nil
}

// Match checks the identity against the expectations.
func (id *Identity) Match(want Expect) error {
	if id.Insecure && !want.AllowInsecure {
		return refuse(CheckInsecure, "the peer runs in a simulated TEE (insecure) and this side does not accept one")
	}
	if !bytes.Equal(id.JobDigest, want.JobDigest) {
		return refuse(CheckJob, "the peer runs job %s, not this job sha256:%s", id.JobString(), hex.EncodeToString(want.JobDigest))
	}
	if len(want.Roles) > 0 && !slices.Contains(want.Roles, id.Role) {
		return refuse(CheckRole, "the peer's role %s is not accepted here (want %s)", id.Role, strings.Join(want.Roles, " or "))
	}
	if id.Policy != want.Policy {
		return refuse(CheckPolicy, "the peer's certificate was issued under certificate policy %s, not %s", id.Policy, want.Policy)
	}
	return nil
}

// SerialString is a certificate's serial number in hex, as the audit log
// and `ppml cert list` print it.
func SerialString(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return "(none)"
	}
	return hex.EncodeToString(c.SerialNumber.Bytes())
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "TLS servers"
	case x509.ExtKeyUsageClientAuth:
		return "TLS clients"
	}
	return fmt.Sprintf("key usage %d", u)
}
