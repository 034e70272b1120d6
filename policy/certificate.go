package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ppml/ppml/attest"
)

// Certificate policies decide which attested TEEs the key service gives a
// workload certificate (docs/policy.md, "Certificate policies"). A
// certificate policy is a release policy — the same platforms, jobs and
// validity window, evaluated by Evaluate — plus a certificate section that
// says which worker roles, host names and addresses a certificate issued
// under it may name, and for how long.

// Rules of certificate requests that are not release policy rules.
const (
	RuleCertRole      = "cert_role"       // the requested role is not listed
	RuleCertDNSName   = "cert_dns_name"   // a requested DNS name matches no pattern
	RuleCertIPAddress = "cert_ip_address" // a requested IP address is not listed
)

// Certificate lifetimes: the default when a policy names none, and the
// longest any policy may set. Short lifetimes are what bounds a
// certificate once the TEE that holds its key stops being trusted.
const (
	DefaultCertTTL = time.Hour
	MaxCertTTL     = 24 * time.Hour
	MinCertTTL     = time.Minute
)

// CertPolicy is a certificate policy: the attestation rules of a release
// policy and the certificate section.
type CertPolicy struct {
	Policy      `yaml:",inline"`
	Certificate *CertRules `json:"certificate" yaml:"certificate"`
}

// CertRules say what a certificate issued under the policy may name.
type CertRules struct {
	// Roles are the worker roles a certificate may carry (at least one):
	// lower-case letters, digits and '-', e.g. xgboost-worker, serve.
	Roles []string `json:"roles" yaml:"roles"`
	// DNSNames are the host names a certificate may carry as subject
	// alternative names: exact names, or "*.SUFFIX" for any single label
	// under SUFFIX. Empty: no DNS name.
	DNSNames []string `json:"dns_names,omitempty" yaml:"dns_names,omitempty"`
	// IPAddresses are the addresses a certificate may carry. Empty: none.
	IPAddresses []string `json:"ip_addresses,omitempty" yaml:"ip_addresses,omitempty"`
	// TTL is the longest lifetime of a certificate ("1h", "30m"; default
	// 1h, at most 24h). A request may ask for less.
	TTL string `json:"ttl,omitempty" yaml:"ttl,omitempty"`
}

// ParseCert decodes and validates a certificate policy document (YAML or
// JSON), as strictly as Parse decodes a release policy.
func ParseCert(doc []byte) (p *CertPolicy, err error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("certificate policy: document of %d bytes exceeds %d", len(doc), MaxSize)
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, errors.New("certificate policy: empty document")
	}
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("certificate policy: document could not be parsed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	var out CertPolicy
	if err := dec.Decode(&out); err != nil {
		msg := strings.ReplaceAll(err.Error(), "unmarshal errors:\n  ", "")
		return nil, fmt.Errorf("certificate policy: %s", strings.ReplaceAll(msg, "\n  ", "; "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("certificate policy: more than one document")
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

// Validate checks the attestation rules and the certificate section.
func (p *CertPolicy) Validate() error {
	if err := p.Policy.Validate(); err != nil {
		return fmt.Errorf("certificate %w", err)
	}
	r := p.Certificate
	if r == nil {
		return errors.New("certificate policy: no certificate section (it lists the roles a certificate may carry)")
	}
	if len(r.Roles) == 0 {
		return errors.New("certificate policy: certificate.roles: list at least one role")
	}
	for i, role := range r.Roles {
		if err := CheckRole(role); err != nil {
			return fmt.Errorf("certificate policy: certificate.roles[%d]: %w", i, err)
		}
	}
	for i, d := range r.DNSNames {
		if err := checkDNSPattern(d); err != nil {
			return fmt.Errorf("certificate policy: certificate.dns_names[%d]: %w", i, err)
		}
	}
	for i, a := range r.IPAddresses {
		if net.ParseIP(a) == nil {
			return fmt.Errorf("certificate policy: certificate.ip_addresses[%d]: %q is not an IP address", i, truncate(a, 64))
		}
	}
	if _, err := r.MaxTTL(); err != nil {
		return fmt.Errorf("certificate policy: certificate.ttl: %w", err)
	}
	return nil
}

// MaxTTL is the longest lifetime of a certificate under the rules.
func (r *CertRules) MaxTTL() (time.Duration, error) {
	if r.TTL == "" {
		return DefaultCertTTL, nil
	}
	d, err := time.ParseDuration(r.TTL)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write 1h, 30m)", truncate(r.TTL, 32))
	}
	if d < MinCertTTL || d > MaxCertTTL {
		return 0, fmt.Errorf("%s is outside %s to %s", d, MinCertTTL, MaxCertTTL)
	}
	return d, nil
}

// CheckRole says why s is not a role name: 1-32 of a-z 0-9 '-', starting
// with a letter.
func CheckRole(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("role %q: want 1 to 32 characters", truncate(s, 40))
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || (i > 0 && (c >= '0' && c <= '9' || c == '-'))) {
			return fmt.Errorf("role %q: want lower-case letters, digits and '-', starting with a letter", truncate(s, 40))
		}
	}
	return nil
}

// checkDNSPattern accepts a host name or "*.SUFFIX".
func checkDNSPattern(p string) error {
	name, wild := strings.CutPrefix(p, "*.")
	if err := CheckDNSName(name); err != nil {
		return err
	}
	if wild && !strings.Contains(name, ".") {
		return fmt.Errorf("%q: a wildcard needs a suffix of at least two labels", p)
	}
	return nil
}

// CheckDNSName says why s is not a host name a certificate may carry:
// labels of a-z 0-9 '-' (lower case), 1-63 characters each, 253 in all.
func CheckDNSName(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("host name %q: want 1 to 253 characters", truncate(s, 64))
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host name %q: label %q is empty, too long or starts or ends with '-'", truncate(s, 64), truncate(l, 64))
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host name %q: character %q is not allowed (lower-case letters, digits, '-' and '.')", truncate(s, 64), c)
			}
		}
	}
	return nil
}

// CertRequest is what a TEE asks a certificate to name.
type CertRequest struct {
	Role        string
	DNSNames    []string
	IPAddresses []net.IP
}

// EvaluateCert decides whether the TEE that produced claims, running the
// job with digest jobDigest, may have a certificate for req under p at
// now: the release rules first (Evaluate, same rule names), then the role,
// each DNS name and each address. It never panics; a nil or invalid
// policy denies.
func EvaluateCert(p *CertPolicy, c *attest.Claims, jobDigest []byte, req CertRequest, now time.Time) Decision {
	if p == nil {
		return deny(RuleInvalidPolicy, "no certificate policy")
	}
	if err := p.Validate(); err != nil {
		return deny(RuleInvalidPolicy, "the certificate policy is invalid: %v", err)
	}
	if d := Evaluate(&p.Policy, c, jobDigest, now); !d.Allow {
		return d
	}
	r := p.Certificate
	if !slices.Contains(r.Roles, req.Role) {
		return denyField(RuleCertRole, "certificate.roles", "role %q is not one of the policy's roles (%s)", truncate(req.Role, 40), strings.Join(r.Roles, ", "))
	}
	for _, n := range req.DNSNames {
		if !dnsAllowed(r.DNSNames, n) {
			if len(r.DNSNames) == 0 {
				return denyField(RuleCertDNSName, "certificate.dns_names", "host name %q was asked for and the policy allows no host name", truncate(n, 64))
			}
			return denyField(RuleCertDNSName, "certificate.dns_names", "host name %q matches none of the policy's %d host name patterns", truncate(n, 64), len(r.DNSNames))
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(r.IPAddresses, func(a string) bool { return net.ParseIP(a).Equal(ip) }) {
			return denyField(RuleCertIPAddress, "certificate.ip_addresses", "address %s was asked for and is not one of the policy's %d addresses", ip, len(r.IPAddresses))
		}
	}
	return Decision{Allow: true, Reason: fmt.Sprintf("%s %s measurement %s meets the certificate policy for role %s", c.Platform, c.TEEType, short(c.Measurement), req.Role)}
}

// dnsAllowed matches name against exact names and "*.SUFFIX" patterns (one
// label, as TLS wildcards match).
func dnsAllowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			label, rest, found := strings.Cut(name, ".")
			if found && label != "" && rest == suffix {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// JSON encodes the certificate policy as JSON (both sections).
func (p *CertPolicy) JSON() ([]byte, error) { return json.Marshal(p) }

// YAML encodes the certificate policy as YAML (both sections).
func (p *CertPolicy) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("certificate policy: encode: %w", err)
	}
	enc.Close()
	return buf.Bytes(), nil
}
