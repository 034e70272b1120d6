package core

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/workload"
)

// Buckets of the certificate authority.
const (
	bktCertPolicies = "cert_policies" // blind("certpolicy\0"+name) -> certPolicyRec
	bktCerts        = "certs"         // serial (16 bytes) -> certRec
)

// certPolicyRec is a certificate policy. A deleted policy keeps its record
// (Deleted) so that a policy created again under the name continues its
// version numbers.
type certPolicyRec struct {
	Name    string          `json:"name"`
	Tenant  string          `json:"tenant"`
	Version uint32          `json:"version"`
	Policy  json.RawMessage `json:"policy,omitempty"`
	Updated time.Time       `json:"updated"`
	Deleted bool            `json:"deleted,omitempty"`
}

func (r *certPolicyRec) api() *api.CertPolicy {
	return &api.CertPolicy{Name: r.Name, Tenant: r.Tenant, Version: r.Version, Updated: r.Updated, Policy: r.Policy}
}

// certRec is an issued certificate, kept until a while after it expires so
// that a revocation can list it.
type certRec struct {
	Serial        string     `json:"serial"` // hex
	Policy        string     `json:"policy"`
	Tenant        string     `json:"tenant"`
	PolicyVersion uint32     `json:"policy_version"`
	Role          string     `json:"role"`
	Job           []byte     `json:"job"`
	Platform      string     `json:"platform"`
	Measurement   []byte     `json:"measurement"`
	Insecure      bool       `json:"insecure,omitempty"`
	DNSNames      []string   `json:"dns_names,omitempty"`
	IPAddresses   []string   `json:"ip_addresses,omitempty"`
	NotBefore     time.Time  `json:"not_before"`
	NotAfter      time.Time  `json:"not_after"`
	Revoked       *time.Time `json:"revoked,omitempty"`
	Reason        int        `json:"reason,omitempty"`
}

func (r *certRec) api() api.Cert {
	return api.Cert{Serial: r.Serial, Policy: r.Policy, PolicyVersion: r.PolicyVersion, Role: r.Role, Job: r.Job, Platform: r.Platform,
		Measurement: r.Measurement, Insecure: r.Insecure, DNSNames: r.DNSNames, IPAddresses: r.IPAddresses,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter, Revoked: r.Revoked, RevocationReason: r.Reason}
}

func (c *Core) certPolicyKey(name string) []byte { return c.db.Blind([]byte("certpolicy\x00" + name)) }

func scanCerts(tx store.Tx, fn func(*certRec) error) error {
	return tx.Scan(bktCerts, nil, nil, func(_, v []byte) error {
		var r certRec
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		return fn(&r)
	})
}

// ownPolicyName checks a certificate policy name and that it is in the
// caller's namespace (admins may name any).
func ownPolicyName(who *Caller, name string) error {
	if err := api.CheckCertPolicyName(name); err != nil {
		return badRequest(err)
	}
	if who.Role == api.RoleAdmin {
		return nil
	}
	if tenant, _, _ := strings.Cut(name, "/"); tenant != who.Tenant {
		return Errorf(KindBadRequest, "policy_namespace", "certificate policy %s is not in your tenant's namespace: name it %s/NAME", name, who.Tenant)
	}
	return nil
}

// getCertPolicy reads a live policy; a deleted or missing one is nil.
func (c *Core) getCertPolicy(tx store.Tx, name string) (*certPolicyRec, error) {
	var r certPolicyRec
	if err := getJSON(tx, bktCertPolicies, c.certPolicyKey(name), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return &r, nil
}

// SetCertPolicy creates or replaces a certificate policy in the caller's
// namespace (owner). A changed document is a new version, and every
// unexpired certificate issued under an older version is revoked (CRL
// reason superseded) in the same transaction; the same document again
// changes nothing.
func (c *Core) SetCertPolicy(ctx context.Context, who *Caller, name string, doc []byte) (*api.CertPolicy, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := ownPolicyName(who, name); err != nil {
		return nil, err
	}
	p, err := policy.ParseCert(doc)
	if err != nil {
		return nil, Errorf(KindBadRequest, "bad_policy", "%v", err)
	}
	js, err := p.JSON()
	if err != nil {
		return nil, err
	}
	var out *api.CertPolicy
	err = c.db.Update(func(tx store.Tx) error {
		r, err := c.getCertPolicy(tx, name)
		if err != nil {
			return err
		}
		if r != nil && !r.Deleted && bytes.Equal(r.Policy, js) {
			out = r.api()
			return nil
		}
		if r == nil {
			r = &certPolicyRec{Name: name, Tenant: who.Tenant}
		}
		r.Version++
		r.Policy, r.Updated, r.Deleted = js, c.now().UTC(), false
		if err := putJSON(tx, bktCertPolicies, c.certPolicyKey(name), r); err != nil {
			return err
		}
		n, err := c.revokeUnder(tx, name, r.Version, workload.ReasonSuperseded)
		if err != nil {
			return err
		}
		out = r.api()
		out.Revoked = n
		reason := fmt.Sprintf("certificate policy %s version %d: %s roles=%s; revoked %d certificates of earlier versions",
			name, r.Version, policySummary(&p.Policy), strings.Join(p.Certificate.Roles, ","), n)
		return c.record(tx, audit.Entry{Type: audit.TypeCertPolicySet, Tenant: r.Tenant, Key: api.CertPolicyTrail + name, Actor: who.TokenID, Reason: reason})
	})
	if err != nil {
		return nil, err
	}
	if out.Revoked > 0 {
		c.crlChanged()
	}
	return out, nil
}

// DeleteCertPolicy deletes a certificate policy (owner): nothing more is
// issued under it, and every unexpired certificate issued under it is
// revoked (CRL reason cessationOfOperation).
func (c *Core) DeleteCertPolicy(ctx context.Context, who *Caller, name string) (*api.CertPolicy, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := ownPolicyName(who, name); err != nil {
		return nil, err
	}
	var out *api.CertPolicy
	err := c.db.Update(func(tx store.Tx) error {
		r, err := c.getCertPolicy(tx, name)
		if err != nil {
			return err
		}
		if r == nil || r.Deleted {
			return notFound("no certificate policy %s", name)
		}
		r.Deleted, r.Updated, r.Policy = true, c.now().UTC(), nil
		r.Version++
		if err := putJSON(tx, bktCertPolicies, c.certPolicyKey(name), r); err != nil {
			return err
		}
		n, err := c.revokeUnder(tx, name, r.Version, workload.ReasonCessationOfOperation)
		if err != nil {
			return err
		}
		out = r.api()
		out.Revoked = n
		return c.record(tx, audit.Entry{Type: audit.TypeCertPolicyDelete, Tenant: r.Tenant, Key: api.CertPolicyTrail + name, Actor: who.TokenID,
			Reason: fmt.Sprintf("certificate policy %s deleted; revoked %d certificates", name, n)})
	})
	if err != nil {
		return nil, err
	}
	if out.Revoked > 0 {
		c.crlChanged()
	}
	return out, nil
}

// GetCertPolicy returns a certificate policy of the caller's (owner).
func (c *Core) GetCertPolicy(ctx context.Context, who *Caller, name string) (*api.CertPolicy, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := ownPolicyName(who, name); err != nil {
		return nil, err
	}
	var out *api.CertPolicy
	err := c.db.View(func(tx store.Tx) error {
		r, err := c.getCertPolicy(tx, name)
		if err != nil {
			return err
		}
		if r == nil || r.Deleted {
			return notFound("no certificate policy %s", name)
		}
		out = r.api()
		return nil
	})
	return out, err
}

// ListCertPolicies lists the caller's certificate policies (every tenant's
// for an admin), without their documents.
func (c *Core) ListCertPolicies(ctx context.Context, who *Caller) ([]api.CertPolicy, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return nil, err
	}
	out := []api.CertPolicy{}
	err := c.db.View(func(tx store.Tx) error {
		return tx.Scan(bktCertPolicies, nil, nil, func(_, v []byte) error {
			var r certPolicyRec
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if !r.Deleted && (who.Role == api.RoleAdmin || r.Tenant == who.Tenant) {
				a := r.api()
				a.Policy = nil
				out = append(out, *a)
			}
			return nil
		})
	})
	return out, err
}

// ListCerts lists the unexpired and recently expired certificates issued
// under the caller's certificate policies (every tenant's for an admin),
// or under one of them when name is set.
func (c *Core) ListCerts(ctx context.Context, who *Caller, name string) ([]api.Cert, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return nil, err
	}
	if name != "" {
		if err := ownPolicyName(who, name); err != nil {
			return nil, err
		}
	}
	out := []api.Cert{}
	err := c.db.View(func(tx store.Tx) error {
		return scanCerts(tx, func(r *certRec) error {
			if (name == "" || r.Policy == name) && (who.Role == api.RoleAdmin || r.Tenant == who.Tenant) {
				out = append(out, r.api())
			}
			return nil
		})
	})
	return out, err
}

// certKeepAfterExpiry is how long a certificate record outlives the
// certificate (for listings and the audit trail's cross-reference); a
// revocation list never needs expired certificates.
const certKeepAfterExpiry = 24 * time.Hour

// revokeUnder revokes, in tx, every unexpired certificate of policy name
// whose policy version is below version, and deletes records expired for
// long. It returns how many it revoked.
func (c *Core) revokeUnder(tx store.Tx, name string, version uint32, reason int) (int, error) {
	now := c.now().UTC()
	var revoke []*certRec
	var drop []string
	err := scanCerts(tx, func(r *certRec) error {
		switch {
		case now.Sub(r.NotAfter) > certKeepAfterExpiry:
			drop = append(drop, r.Serial)
		case r.Policy == name && r.PolicyVersion < version && r.Revoked == nil && now.Before(r.NotAfter):
			revoke = append(revoke, r)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, s := range drop {
		if err := tx.Delete(bktCerts, serialKey(s)); err != nil {
			return 0, err
		}
	}
	for _, r := range revoke {
		r.Revoked, r.Reason = &now, reason
		if err := putJSON(tx, bktCerts, serialKey(r.Serial), r); err != nil {
			return 0, err
		}
	}
	return len(revoke), nil
}

// pruneCerts deletes records expired for long (called now and then on
// issuance).
func (c *Core) pruneCerts(tx store.Tx) error {
	now := c.now().UTC()
	var drop []string
	err := scanCerts(tx, func(r *certRec) error {
		if now.Sub(r.NotAfter) > certKeepAfterExpiry {
			drop = append(drop, r.Serial)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range drop {
		if err := tx.Delete(bktCerts, serialKey(s)); err != nil {
			return err
		}
	}
	return nil
}

func serialKey(hexSerial string) []byte {
	b, err := hex.DecodeString(hexSerial)
	if err != nil {
		return []byte(hexSerial)
	}
	return b
}

func serialHex(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// certPolicyTrailTenant is the tenant whose trail holds the audit entries
// of certificate policy name, for a caller who may read it: its owner (a
// deleted policy's trail stays readable) or an admin.
func (c *Core) certPolicyTrailTenant(tx store.Tx, who *Caller, name string) (string, error) {
	if err := ownPolicyName(who, name); err != nil {
		return "", err
	}
	var r certPolicyRec
	if err := getJSON(tx, bktCertPolicies, c.certPolicyKey(name), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", notFound("no certificate policy %s", name)
		}
		return "", err
	}
	return r.Tenant, nil
}
