// Package workload is the attested workload identity of a ppml TEE: the
// X.509 certificate the key service issues to a TEE after attestation
// (the MarbleRun pattern, with the key service as the coordinator), the
// certificate extension that names what was attested, and the checks a
// peer makes before it trusts another TEE: chain to the deployment CA,
// validity, revocation (the CA's CRL), job digest, role and the
// certificate policy the certificate was issued under.
//
// The certificate profile and the extension are specified in
// docs/formats/workload-certificate.md. This package parses and checks; it
// issues nothing (the key service does, package kms/core) and fetches
// nothing (package kms/client does). Package workload/mtls builds TLS
// configurations from it.
package workload

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ppml/ppml/attest"
)

// OIDArc is ppml's private object identifier arc, 1.3.9957. It is not
// registered: it lives under ISO's identified-organization arc (1.3), as
// MarbleRun's 1.3.9903 does, and means something only in certificates
// issued by a ppml deployment CA, which is the only issuer peers accept.
// (A 2.25 UUID arc would be the registered-free choice, but its 128-bit
// component cannot be parsed by Go's crypto/x509, which then refuses the
// whole certificate.)
var OIDArc = asn1.ObjectIdentifier{1, 3, 9957}

// OIDIdentity is the workload identity extension, version 1: 1.3.9957.1.1.
var OIDIdentity = asn1.ObjectIdentifier{1, 3, 9957, 1, 1}

// Version is the only extension version this package writes and reads.
const Version = 1

// Bounds of the extension's fields: the decoder refuses anything larger.
const (
	MaxMeasurementSize = 64
	MaxSignerSize      = 64
	JobDigestSize      = 32
	maxStringField     = 256
	// MaxExtensionSize bounds the whole encoded extension value.
	MaxExtensionSize = 1024
)

// Identity is what the workload identity extension says about the TEE
// that holds the certificate's key: what attestation showed (platform,
// measurement, signer, TCB status, the insecure and debug flags), which
// job it runs, the role it was issued for, and the certificate policy
// (TENANT/NAME, version) that admitted it.
type Identity struct {
	Platform      attest.Platform
	Insecure      bool
	Debug         bool
	Measurement   []byte
	Signer        []byte
	TCBStatus     string
	JobDigest     []byte
	Role          string
	Policy        string
	PolicyVersion uint32
}

// identityASN1 is the extension's DER form:
//
//	PPMLWorkloadIdentity ::= SEQUENCE {
//	  version        INTEGER,      -- 1
//	  platform       UTF8String,   -- sgx | tdx | snp | sim
//	  insecure       BOOLEAN,
//	  debug          BOOLEAN,
//	  measurement    OCTET STRING,
//	  signer         OCTET STRING, -- empty where the platform has none
//	  tcbStatus      UTF8String,   -- empty where the platform has none
//	  jobDigest      OCTET STRING, -- 32 bytes
//	  role           UTF8String,
//	  policy         UTF8String,   -- TENANT/NAME
//	  policyVersion  INTEGER }
type identityASN1 struct {
	Version       int
	Platform      string `asn1:"utf8"`
	Insecure      bool
	Debug         bool
	Measurement   []byte
	Signer        []byte
	TCBStatus     string `asn1:"utf8"`
	JobDigest     []byte
	Role          string `asn1:"utf8"`
	Policy        string `asn1:"utf8"`
	PolicyVersion int64
}

// Marshal returns the extension value (DER).
func (id *Identity) Marshal() ([]byte, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	b, err := asn1.Marshal(identityASN1{
		Version: Version, Platform: string(id.Platform), Insecure: id.Insecure, Debug: id.Debug,
		Measurement: nonNil(id.Measurement), Signer: nonNil(id.Signer), TCBStatus: id.TCBStatus,
		JobDigest: id.JobDigest, Role: id.Role, Policy: id.Policy, PolicyVersion: int64(id.PolicyVersion),
	})
	if err != nil {
		return nil, fmt.Errorf("workload identity: encode: %w", err)
	}
	return b, nil
}

// Extension returns the certificate extension (not critical: TLS clients
// that know nothing of ppml, such as KServe clients pinning the CA, must
// still accept the certificate; ppml peers require it).
func (id *Identity) Extension() (pkix.Extension, error) {
	b, err := id.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDIdentity, Value: b}, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ParseIdentity decodes an extension value strictly: DER only (it must
// re-encode to the same bytes), no trailing data, version 1, every field
// within its bounds.
func ParseIdentity(der []byte) (*Identity, error) {
	if len(der) > MaxExtensionSize {
		return nil, fmt.Errorf("workload identity: extension of %d bytes exceeds %d", len(der), MaxExtensionSize)
	}
	var a identityASN1
	rest, err := asn1.Unmarshal(der, &a)
	if err != nil {
		return nil, fmt.Errorf("workload identity: not a valid extension: %v", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("workload identity: %d bytes after the extension", len(rest))
	}
	if a.Version != Version {
		return nil, fmt.Errorf("workload identity: version %d is not supported (want %d)", a.Version, Version)
	}
	if a.PolicyVersion < 1 || a.PolicyVersion > 1<<32-1 {
		return nil, fmt.Errorf("workload identity: policy version %d out of range", a.PolicyVersion)
	}
	id := &Identity{
		Platform: attest.Platform(a.Platform), Insecure: a.Insecure, Debug: a.Debug,
		Measurement: a.Measurement, Signer: a.Signer, TCBStatus: a.TCBStatus,
		JobDigest: a.JobDigest, Role: a.Role, Policy: a.Policy, PolicyVersion: uint32(a.PolicyVersion),
	}
	if len(id.Signer) == 0 {
		id.Signer = nil
	}
	if err := id.check(); err != nil {
		return nil, err
	}
	again, err := id.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, der) {
		return nil, errors.New("workload identity: extension is not in DER form")
	}
	return id, nil
}

// check validates the fields' shapes (not what they say).
func (id *Identity) check() error {
	switch id.Platform {
	case attest.PlatformSGX, attest.PlatformTDX, attest.PlatformSNP, attest.PlatformSim:
	default:
		return fmt.Errorf("workload identity: unknown platform %q", truncate(string(id.Platform), 32))
	}
	if id.Insecure != (id.Platform == attest.PlatformSim) {
		return fmt.Errorf("workload identity: platform %s with insecure=%v: only the simulated TEE is insecure, and always", id.Platform, id.Insecure)
	}
	if len(id.Measurement) == 0 || len(id.Measurement) > MaxMeasurementSize {
		return fmt.Errorf("workload identity: measurement of %d bytes", len(id.Measurement))
	}
	if len(id.Signer) > MaxSignerSize {
		return fmt.Errorf("workload identity: signer of %d bytes", len(id.Signer))
	}
	if len(id.JobDigest) != JobDigestSize {
		return fmt.Errorf("workload identity: job digest of %d bytes, want %d", len(id.JobDigest), JobDigestSize)
	}
	if err := checkText("role", id.Role, false); err != nil {
		return err
	}
	if err := checkText("policy", id.Policy, false); err != nil {
		return err
	}
	if err := checkText("tcb status", id.TCBStatus, true); err != nil {
		return err
	}
	if id.PolicyVersion == 0 {
		return errors.New("workload identity: policy version 0")
	}
	return nil
}

// checkText accepts printable ASCII without spaces, so that a field can be
// printed and logged as it is.
func checkText(field, s string, empty bool) error {
	if (s == "" && !empty) || len(s) > maxStringField {
		return fmt.Errorf("workload identity: %s of %d bytes", field, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("workload identity: %s has byte 0x%02x at %d (printable ASCII only)", field, s[i], i)
		}
	}
	return nil
}

// FromCertificate returns the identity in a certificate's extension. A
// certificate without it, or with it twice, is not a ppml workload
// certificate.
func FromCertificate(c *x509.Certificate) (*Identity, error) {
	var found *pkix.Extension
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(OIDIdentity) {
			if found != nil {
				return nil, errors.New("certificate has the workload identity extension twice")
			}
			found = &c.Extensions[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("certificate (subject %q) has no ppml workload identity extension (%s): it is not a workload certificate", truncate(c.Subject.CommonName, 64), OIDIdentity)
	}
	if found.Critical {
		return nil, errors.New("workload identity extension is marked critical; ppml writes it non-critical")
	}
	return ParseIdentity(found.Value)
}

// JobString is the job digest as `ppml job digest` prints it.
func (id *Identity) JobString() string { return "sha256:" + hex.EncodeToString(id.JobDigest) }

// String summarizes the identity on one line (for logs and errors).
func (id *Identity) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "role %s, job %s, %s measurement %s", id.Role, id.JobString(), id.Platform, short(id.Measurement))
	if id.Insecure {
		b.WriteString(" (SIMULATED TEE, insecure)")
	}
	fmt.Fprintf(&b, ", policy %s v%d", id.Policy, id.PolicyVersion)
	return b.String()
}

func short(b []byte) string {
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + "…"
	}
	return hex.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
