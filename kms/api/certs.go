package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/policy"
)

// Rules of certificate refusals that are not policy rules (those are in
// package policy: the release rules and cert_role, cert_dns_name,
// cert_ip_address); nonce, manifest and report_data are shared with the
// release protocol.
const (
	RuleCSR               = "csr"                 // the certificate request does not parse, is not self-signed or asks for what no certificate may carry
	RuleUnknownCertPolicy = "unknown_cert_policy" // no such certificate policy
)

// CertPolicyTrail prefixes a certificate policy's name in the key field of
// its audit entries (issuances, refusals, changes): an owner lists them
// with GET /v1/audit?key=cert-policy:TENANT/NAME (ppml audit list --key
// cert-policy:alice/xgb). Key names cannot contain ':'.
const CertPolicyTrail = "cert-policy:"

// MaxCSRSize bounds a certificate signing request.
const MaxCSRSize = 16 << 10

// CheckCertPolicyName says why s is not a certificate policy name:
// TENANT/NAME, NAME being 1-64 of A-Z a-z 0-9 . _ - starting with a letter
// or digit. Policies live in their owner's namespace, as keys do.
func CheckCertPolicyName(s string) error {
	tenant, name, ok := strings.Cut(s, "/")
	if !ok || !ValidTenant(tenant) || !ValidTenant(name) {
		return fmt.Errorf("certificate policy name %q: want TENANT/NAME (letters, digits, '.', '_', '-'; e.g. alice/xgb-train)", truncateName(s))
	}
	return nil
}

func truncateName(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// CertRequest is the body of POST /v1/certs (runner): the TEE side of the
// certificate protocol (docs/api/workload-certificates.md). The evidence
// binds ReportData(Nonce, job digest of Manifest, the CSR's
// SubjectPublicKeyInfo in DER).
type CertRequest struct {
	Nonce    []byte          `json:"nonce"`
	Evidence attest.Evidence `json:"evidence"`
	// CSR is a PKCS#10 certificate request (DER) for the key the TEE made,
	// signed with it. Its DNS names and IP addresses are the subject
	// alternative names asked for; its subject is ignored.
	CSR []byte `json:"csr"`
	// Manifest is the job manifest the TEE runs; the job digest the
	// certificate names is the digest of its canonical form.
	Manifest []byte `json:"manifest"`
	// Policy is the certificate policy to issue under (TENANT/NAME).
	Policy string `json:"policy"`
	// Role is the worker role the certificate names.
	Role string `json:"role"`
	// TTLSeconds asks for a shorter lifetime than the policy's (0: the policy's).
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

func (r *CertRequest) Check() error {
	if len(r.Nonce) != NonceSize {
		return fmt.Errorf("nonce is %d bytes, want %d", len(r.Nonce), NonceSize)
	}
	if r.Evidence.Platform == "" || len(r.Evidence.Data) == 0 {
		return errors.New("evidence is missing (platform and data)")
	}
	if len(r.CSR) == 0 || len(r.CSR) > MaxCSRSize {
		return fmt.Errorf("csr is missing or longer than %d bytes", MaxCSRSize)
	}
	if len(r.Manifest) == 0 {
		return errors.New("manifest is missing")
	}
	if err := CheckCertPolicyName(r.Policy); err != nil {
		return err
	}
	if err := policy.CheckRole(r.Role); err != nil {
		return err
	}
	if r.TTLSeconds < 0 || r.TTLSeconds > int64(policy.MaxCertTTL/time.Second) {
		return fmt.Errorf("ttl_seconds %d: want 0 (the policy's) to %d", r.TTLSeconds, int64(policy.MaxCertTTL/time.Second))
	}
	return nil
}

// IssuedCert is the answer to an allowed certificate request.
type IssuedCert struct {
	// Certificate is the workload certificate (DER), CA the deployment CA
	// certificate that signed it (DER).
	Certificate []byte    `json:"certificate"`
	CA          []byte    `json:"ca"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	// Policy and PolicyVersion name the certificate policy that admitted it.
	Policy        string         `json:"policy"`
	PolicyVersion uint32         `json:"policy_version"`
	Job           attest.Hex     `json:"job_digest"`
	Claims        *attest.Claims `json:"claims,omitempty"`
}

// CertPolicy is a stored certificate policy (PUT and GET
// /v1/cert-policies?name=TENANT/NAME): every PUT makes a new version, and
// certificates issued under older versions are revoked.
type CertPolicy struct {
	Name    string          `json:"name"`
	Tenant  string          `json:"tenant"`
	Version uint32          `json:"version"`
	Updated time.Time       `json:"updated"`
	Policy  json.RawMessage `json:"policy,omitempty"`
	// Revoked is how many unexpired certificates the change revoked (PUT
	// and DELETE answers only).
	Revoked int `json:"revoked,omitempty"`
}

// Cert describes an issued certificate (GET /v1/certs?policy=TENANT/NAME).
type Cert struct {
	Serial        string     `json:"serial"`
	Policy        string     `json:"policy"`
	PolicyVersion uint32     `json:"policy_version"`
	Role          string     `json:"role"`
	Job           attest.Hex `json:"job_digest"`
	Platform      string     `json:"platform"`
	Measurement   attest.Hex `json:"measurement"`
	Insecure      bool       `json:"insecure,omitempty"`
	DNSNames      []string   `json:"dns_names,omitempty"`
	IPAddresses   []string   `json:"ip_addresses,omitempty"`
	NotBefore     time.Time  `json:"not_before"`
	NotAfter      time.Time  `json:"not_after"`
	Revoked       *time.Time `json:"revoked,omitempty"`
	// RevocationReason is the CRL reason code of a revoked certificate.
	RevocationReason int `json:"revocation_reason,omitempty"`
}
