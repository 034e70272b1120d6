package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/workload"
)

// Limits of what a certificate request may ask for.
const (
	maxCertNames = 16
	// certBackdate is how far before issuance a certificate becomes valid,
	// so that peers whose clocks lag the key service's accept it at once.
	certBackdate = time.Minute
	// pruneEvery issuances, expired certificate records are pruned.
	pruneEvery = 256
)

// IssueCert runs the key service's side of the certificate protocol
// (docs/api/workload-certificates.md) for a runner. It is the release
// protocol's binding with a certificate key in place of the ephemeral HPKE
// key: the nonce is consumed, the manifest digested, the CSR checked, the
// evidence verified and its report_data recomputed over the CSR's public
// key; then, in one transaction, the certificate policy decides, the
// certificate is signed and recorded, and the decision is audited. Any
// refusal is a KindDenied error naming the rule and is on the policy
// owner's audit trail (or on the log without a tenant, when the policy
// does not exist).
func (c *Core) IssueCert(ctx context.Context, who *Caller, req *api.CertRequest) (*api.IssuedCert, error) {
	if err := Require(who, api.RoleRunner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	rc := &releaseCtx{req: &api.ReleaseRequest{Nonce: req.Nonce, Evidence: req.Evidence, Manifest: req.Manifest}, who: who, now: c.now()}
	var csr *x509.CertificateRequest
	steps := []func(context.Context, *releaseCtx) *refusal{
		c.consumeNonce,
		c.digestManifest,
		func(_ context.Context, rc *releaseCtx) *refusal {
			var err error
			if csr, err = checkCSR(req.CSR); err != nil {
				return &refusal{api.RuleCSR, err.Error()}
			}
			rc.req.PublicKey = csr.RawSubjectPublicKeyInfo
			return nil
		},
		c.verifyEvidence,
		c.checkReportData,
	}
	for _, step := range steps {
		if r := step(ctx, rc); r != nil {
			return nil, c.denyCert(rc, req, policy.Decision{Rule: r.rule, Reason: r.reason})
		}
	}
	creq := policy.CertRequest{Role: req.Role, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses}
	var out *api.IssuedCert
	var denied *Error
	err := c.db.Update(func(tx store.Tx) error {
		out, denied = nil, nil
		pr, err := c.getCertPolicy(tx, req.Policy)
		if err != nil {
			return err
		}
		if pr == nil || pr.Deleted {
			d := policy.Decision{Rule: api.RuleUnknownCertPolicy, Reason: "no certificate policy " + req.Policy}
			denied = certDenied(req.Policy, d)
			return c.recordCert(tx, rc, req, nil, d)
		}
		p, err := policy.ParseCert(pr.Policy)
		var d policy.Decision
		if err != nil {
			d = policy.Decision{Rule: policy.RuleInvalidPolicy, Reason: truncate(err.Error(), maxReason)}
		} else {
			d = policy.EvaluateCert(p, rc.claims, rc.job, creq, rc.now)
		}
		if !d.Allow {
			denied = certDenied(req.Policy, d)
			return c.recordCert(tx, rc, req, pr, d)
		}
		ttl, _ := p.Certificate.MaxTTL()
		if asked := time.Duration(req.TTLSeconds) * time.Second; asked > 0 && asked < ttl {
			ttl = max(asked, policy.MinCertTTL)
		}
		out, err = c.signCert(tx, rc, req, pr, csr, ttl)
		if err != nil {
			return err
		}
		reason := fmt.Sprintf("certificate %s for role %s under certificate policy %s version %d, valid until %s%s",
			out.Serial, req.Role, pr.Name, pr.Version, out.NotAfter.Format(time.RFC3339), namesNote(csr))
		return c.recordCert(tx, rc, req, pr, policy.Decision{Allow: true, Reason: reason})
	})
	if err != nil {
		return nil, err
	}
	if denied != nil {
		c.countDenial(denied)
		return nil, denied
	}
	c.cfg.Logger.Info("certificate", "platform", string(rc.claims.Platform), "insecure", rc.claims.Insecure, "job", hex.EncodeToString(rc.job), "role", req.Role, "policy", req.Policy, "serial", out.Serial)
	return out, nil
}

// checkCSR parses a certificate request and checks what it may carry: a
// valid self-signature by an ECDSA P-256/P-384 or Ed25519 key, host names
// and addresses only (no e-mail addresses or URIs), at most maxCertNames.
func checkCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("the certificate request does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the certificate request is not signed by its own key: %v", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("the certificate key is on curve %s; want P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("the certificate key is a %T; want ECDSA P-256 or P-384, or Ed25519", csr.PublicKey)
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return nil, errors.New("the certificate request asks for e-mail addresses or URIs; a workload certificate names host names and IP addresses only")
	}
	if n := len(csr.DNSNames) + len(csr.IPAddresses); n > maxCertNames {
		return nil, fmt.Errorf("the certificate request asks for %d names, at most %d", n, maxCertNames)
	}
	for _, d := range csr.DNSNames {
		if err := policy.CheckDNSName(d); err != nil {
			return nil, fmt.Errorf("the certificate request asks for %v", err)
		}
	}
	for _, ip := range csr.IPAddresses {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return nil, fmt.Errorf("the certificate request asks for address %s", ip)
		}
	}
	return csr, nil
}

// signCert signs and records the certificate.
func (c *Core) signCert(tx store.Tx, rc *releaseCtx, req *api.CertRequest, pr *certPolicyRec, csr *x509.CertificateRequest, ttl time.Duration) (*api.IssuedCert, error) {
	cl := rc.claims
	id := &workload.Identity{
		Platform: cl.Platform, Insecure: cl.Insecure, Debug: cl.Debug, Measurement: cl.Measurement, Signer: cl.Signer,
		TCBStatus: cl.TCBStatus, JobDigest: rc.job, Role: req.Role, Policy: pr.Name, PolicyVersion: pr.Version,
	}
	ext, err := id.Extension()
	if err != nil {
		return nil, err
	}
	now := rc.now.UTC().Truncate(time.Second)
	serial := randomSerial()
	tpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Role, Organization: []string{"ppml workload"}, OrganizationalUnit: []string{pr.Name}},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
		ExtraExtensions:       []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, c.ca.cert, csr.PublicKey, c.ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	rec := &certRec{
		Serial: serialHex(serial), Policy: pr.Name, Tenant: pr.Tenant, PolicyVersion: pr.Version, Role: req.Role, Job: rc.job,
		Platform: string(cl.Platform), Measurement: cl.Measurement, Insecure: cl.Insecure, DNSNames: csr.DNSNames,
		NotBefore: tpl.NotBefore, NotAfter: tpl.NotAfter,
	}
	for _, ip := range csr.IPAddresses {
		rec.IPAddresses = append(rec.IPAddresses, ip.String())
	}
	if err := putJSON(tx, bktCerts, serial.Bytes(), rec); err != nil {
		return nil, err
	}
	c.ca.mu.Lock()
	c.ca.issued++
	prune := c.ca.issued%pruneEvery == 0
	c.ca.mu.Unlock()
	if prune {
		if err := c.pruneCerts(tx); err != nil {
			return nil, err
		}
	}
	return &api.IssuedCert{
		Certificate: der, CA: c.ca.cert.Raw, Serial: rec.Serial, NotBefore: rec.NotBefore, NotAfter: rec.NotAfter,
		Policy: pr.Name, PolicyVersion: pr.Version, Job: rc.job, Claims: cl,
	}, nil
}

func namesNote(csr *x509.CertificateRequest) string {
	var names []string
	names = append(names, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return ""
	}
	return ", names " + strings.Join(names, ",")
}

// certDenied is the error a refused certificate request gets.
func certDenied(policyName string, d policy.Decision) *Error {
	reason := truncate(d.Reason, maxReason)
	return &Error{Kind: KindDenied, Code: "denied", Message: fmt.Sprintf("certificate refused: %s: %s", d.Rule, reason),
		Denials: []api.Denial{{Key: api.CertPolicyTrail + policyName, Rule: d.Rule, Field: d.Field, Reason: reason}}}
}

// denyCert audits a refusal of the request as a whole (before the policy
// was consulted) on the trail of the policy's owner when it exists.
func (c *Core) denyCert(rc *releaseCtx, req *api.CertRequest, d policy.Decision) error {
	e := certDenied(req.Policy, d)
	err := c.db.Batch(func(tx store.Tx) error {
		pr, err := c.getCertPolicy(tx, req.Policy)
		if err != nil {
			return err
		}
		return c.recordCert(tx, rc, req, pr, d)
	})
	if err != nil {
		return err
	}
	c.countDenial(e)
	return e
}

func (c *Core) countDenial(e *Error) {
	if c.cfg.Observer != nil {
		for _, d := range e.Denials {
			c.cfg.Observer.Denied(d.Rule)
		}
	}
}

// recordCert audits a certificate decision: what was verified about the
// TEE (as a release entry does), the policy, and the outcome.
func (c *Core) recordCert(tx store.Tx, rc *releaseCtx, req *api.CertRequest, pr *certPolicyRec, d policy.Decision) error {
	t, decision, reason := audit.TypeCertIssue, audit.Allow, d.Reason
	if !d.Allow {
		t, decision = audit.TypeCertDenial, audit.Deny
		reason = fmt.Sprintf("certificate for role %s under certificate policy %s refused: %s", req.Role, req.Policy, truncate(d.Reason, maxReason))
	}
	e := releaseEntry(rc, t, decision)
	e.Rule, e.Field, e.Reason = d.Rule, d.Field, truncate(reason, maxReason+256)
	e.Key = api.CertPolicyTrail + req.Policy
	if pr != nil {
		e.Tenant = pr.Tenant
	}
	return c.record(tx, e)
}
