// Package api holds the key service's wire types, shared by the server
// (the core, kms/core, takes them as typed requests; the HTTP layer, kms,
// decodes them) and the Go client (kms/client), the stable names of release
// denial rules, and the two constructions both sides must compute
// identically: the report_data a TEE binds into its evidence and the HPKE
// info string a released key is sealed under.
//
// Every request body is decoded with Decode: at most MaxBodySize bytes, one
// JSON object, unknown fields refused. docs/api/openapi.yaml describes the
// routes; docs/api/release-protocol.md the release protocol.
package api

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/envelope"
)

// Prefix is the path prefix of API version 1.
const Prefix = "/v1"

// MaxBodySize bounds every request body (evidence with certificates is ~10 KiB).
const MaxBodySize = 1 << 20

// Roles.
const (
	RoleAdmin  = "admin"  // manages tenants and tokens, reads the whole audit log
	RoleOwner  = "owner"  // manages its own keys and policies, reads its audit trail, unwraps its own data keys
	RoleRunner = "runner" // attestation challenge and key release only
)

// ValidRole reports whether r is a role name.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleOwner || r == RoleRunner }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidTenant reports whether s is a valid tenant name: 1-64 of A-Z a-z 0-9 . _ -, not starting with a punctuation mark.
func ValidTenant(s string) bool { return nameRE.MatchString(s) }

// Error is the body of every non-2xx response.
type Error struct {
	// Code is a stable snake_case name of what went wrong ("bad_request",
	// "unauthorized", "forbidden", "not_found", "conflict", "sealed",
	// "too_large", "rate_limited", "denied", "internal").
	Code    string `json:"code"`
	Message string `json:"message"`
	// Denials lists, for a refused release, each key and the rule that refused it.
	Denials []Denial `json:"denials,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Rules of release denials that are not policy rules (those are in package
// policy); attestation failures are "attestation:" + the verifier's check name.
const (
	RuleNonce      = "nonce"       // unknown, used, expired or foreign nonce
	RuleManifest   = "manifest"    // the job manifest does not parse
	RuleReportData = "report_data" // evidence binds other data than nonce, job and key
	RulePublicKey  = "public_key"  // the ephemeral key does not parse
	RuleUnknownKey = "unknown_key" // no such key, or none with a release policy (they answer alike), or not a key reference
	RuleNoPolicy   = "no_policy"   // the key has no release policy
	RuleWrappedKey = "wrapped_key" // the wrapped data key does not unwrap
	RuleKeyVersion = "key_version" // the key has no such version, or the reference names another
	// RuleKeyDisabled and RuleKeyDestroyed refuse a key version its owner
	// disabled or destroyed.
	RuleKeyDisabled  = "key_version_disabled"
	RuleKeyDestroyed = "key_version_destroyed"
	// RuleWrap refuses a release whose keys could not be sealed to the
	// TEE's ephemeral public key (nothing was released).
	RuleWrap = "wrap"
	// RuleOutputOwner refuses an output key whose owner provides none of
	// the job's inputs and whose policy does not list the job.
	RuleOutputOwner = "output_owner"
)

// Denial names a key and the policy rule or attestation check that refused it.
type Denial struct {
	Key  string `json:"key"`
	Rule string `json:"rule"`
	// Field is the policy field that refused (policy.Decision.Field:
	// "platforms.snp.min_committed_tcb.snp", "jobs"), when the key's
	// policy was evaluated and one field decided; empty otherwise, and
	// always for unknown_key, which answers alike for a key that does not
	// exist and one without a release policy.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// DenialsText lists refused keys for a person: one line per key with the
// rule and, when one decided, the policy field. The runtime prints it when a
// release is refused, and the demo when it shows a refused run.
func DenialsText(ds []Denial) string {
	var b strings.Builder
	b.WriteString("keys denied, the job does not run:")
	for _, d := range ds {
		if d.Field != "" {
			fmt.Fprintf(&b, "\n  key %s: rule %s (policy field %s): %s", d.Key, d.Rule, d.Field, d.Reason)
		} else {
			fmt.Fprintf(&b, "\n  key %s: rule %s: %s", d.Key, d.Rule, d.Reason)
		}
	}
	return b.String()
}

// Decode reads one JSON object of at most MaxBodySize bytes into v,
// refusing unknown fields and trailing data.
func Decode(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return DecodeBytes(b, v)
}

// ErrTooLarge is returned by Decode for a body over MaxBodySize.
var ErrTooLarge = fmt.Errorf("request body larger than %d bytes", MaxBodySize)

// DecodeBytes is Decode on a byte slice.
func DecodeBytes(b []byte, v any) error {
	if len(b) > MaxBodySize {
		return ErrTooLarge
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON body: data after the JSON object")
	}
	if c, ok := v.(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			return err
		}
	}
	return nil
}

// Tenant is a party: a data owner, a job runner, or an administrator.
type Tenant struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

// CreateTenantRequest is the body of POST /v1/tenants (admin).
type CreateTenantRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (r *CreateTenantRequest) Check() error {
	if !ValidTenant(r.Name) {
		return fmt.Errorf("tenant name %q: want 1-64 characters of A-Z a-z 0-9 . _ -", r.Name)
	}
	if !ValidRole(r.Role) {
		return fmt.Errorf("role %q: want admin, owner or runner", r.Role)
	}
	return nil
}

// CreateTokenRequest is the body of POST /v1/tokens (admin).
type CreateTokenRequest struct {
	Tenant      string `json:"tenant"`
	Description string `json:"description,omitempty"`
	// TTL is the token's lifetime, a duration such as "720h" or "30m";
	// empty: the server's default (720h unless configured). Renewing the
	// token extends it by the same amount.
	TTL string `json:"ttl,omitempty"`
}

func (r *CreateTokenRequest) Check() error {
	if !ValidTenant(r.Tenant) {
		return fmt.Errorf("tenant name %q is not valid", r.Tenant)
	}
	if len(r.Description) > 256 {
		return errors.New("description longer than 256 bytes")
	}
	if !utf8.ValidString(r.Description) || strings.IndexFunc(r.Description, func(c rune) bool { return c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 }) >= 0 {
		return errors.New("description: control characters and invalid UTF-8 are not allowed (it is printed on terminals)")
	}
	_, err := ParseTTL(r.TTL)
	return err
}

// ParseTTL reads a token lifetime: "" (0: the server's default) or a
// positive duration of at least a minute ("90m", "720h").
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute {
		return 0, fmt.Errorf("ttl %q: want a duration of at least 1m, such as 30m or 720h", s)
	}
	return d, nil
}

// TokenInfo describes an API token; Token (the secret) is set only in the
// response that issued it.
type TokenInfo struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	// Expires is when the token stops working unless renewed; absent for
	// tokens issued before tokens expired (they never do: revoke them).
	Expires time.Time `json:"expires,omitzero"`
	// TTL is the token's lifetime, by which a renewal extends it.
	TTL     string `json:"ttl,omitempty"`
	Revoked bool   `json:"revoked,omitempty"`
	Token   string `json:"token,omitempty"`
}

// RenewTokenRequest is the body of POST /v1/tokens/renew: any token renews
// itself (ID empty or its own); an admin renews any token by ID.
type RenewTokenRequest struct {
	ID string `json:"id,omitempty"`
	// TTL is the new lifetime from now; empty: the token's own TTL.
	TTL string `json:"ttl,omitempty"`
}

var tokenIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func (r *RenewTokenRequest) Check() error {
	if r.ID != "" && !tokenIDRE.MatchString(r.ID) {
		return fmt.Errorf("token id %q: want 16 hex digits (ppml token list shows them)", r.ID)
	}
	_, err := ParseTTL(r.TTL)
	return err
}

// CreateKeyRequest is the body of POST /v1/keys (owner).
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Recipient makes a recipient key: each version is a public/private key
	// pair of this KEM (envelope.KEMMLKEM768X25519 or envelope.KEMX25519)
	// whose public half anyone with an API token can fetch
	// (GET /v1/keys/{name}/public) to encrypt files to the key without the
	// owner's token. Empty: a symmetric key. Not for rotate: a key keeps
	// its kind.
	Recipient string `json:"recipient,omitempty"`
}

func (r *CreateKeyRequest) Check() error {
	if err := envelope.CheckKeyName(r.Name); err != nil {
		return err
	}
	switch r.Recipient {
	case "", envelope.KEMMLKEM768X25519, envelope.KEMX25519:
	default:
		return fmt.Errorf("recipient %q: want %s or %s (or nothing for a symmetric key)", r.Recipient, envelope.KEMMLKEM768X25519, envelope.KEMX25519)
	}
	return nil
}

// Key describes a primary key; its material never leaves the server.
type Key struct {
	Name      string       `json:"name"`
	Tenant    string       `json:"tenant"`
	Recipient string       `json:"recipient,omitempty"` // KEM of a recipient key
	Version   uint32       `json:"version"`             // newest
	Versions  []KeyVersion `json:"versions"`
	Policy    bool         `json:"policy"` // whether a release policy is set
	Created   time.Time    `json:"created"`
}

// PublicKey is the answer of GET /v1/keys/{name}/public[?version=N]: the
// public half of a recipient key's version (the newest by default), in the
// text form of docs/formats/envelope.md section 5.2.
//
// A data key wrapped for a recipient key is uint32-BE(Version) followed by
// the envelope's recipient wrapping (section 4.3) under this public key,
// with the envelope header's wrap associated data as HPKE aad; the service
// unwraps it with the version's private half (POST /v1/decrypt, releases).
type PublicKey struct {
	Key       string `json:"key"`
	Version   uint32 `json:"version"`
	Recipient string `json:"recipient"` // the KEM
	KeyID     string `json:"key_id"`    // the public key's fingerprint
	PublicKey string `json:"public_key"`
}

// MaxWrappedSize bounds a wrapped data key in requests: a recipient key's
// is 1172 bytes (ML-KEM-768 + X25519), a symmetric key's 64.
const MaxWrappedSize = 4096

// KeyVersion is one version of a primary key.
type KeyVersion struct {
	Version uint32    `json:"version"`
	Created time.Time `json:"created"`
	// State is KeyEnabled, KeyDisabled or KeyDestroyed.
	State string `json:"state"`
	// Changed is when the version was last disabled, enabled or destroyed.
	Changed time.Time `json:"changed,omitzero"`
}

// Key version states. A disabled version unwraps, wraps and releases
// nothing until enabled again; a destroyed one has no key material left
// and its number is never reused.
const (
	KeyEnabled   = "enabled"
	KeyDisabled  = "disabled"
	KeyDestroyed = "destroyed"
)

// KeyVersionRequest is the body of POST /v1/keys/versions/{disable,enable,destroy} (owner).
type KeyVersionRequest struct {
	Key     string `json:"key"`
	Version uint32 `json:"version"`
}

func (r *KeyVersionRequest) Check() error {
	if err := envelope.CheckKeyName(r.Key); err != nil {
		return err
	}
	if r.Version == 0 {
		return errors.New("version is missing (versions count from 1)")
	}
	return nil
}

// KeyNameRequest is the body of POST /v1/keys (create) and POST /v1/keys/rotate (owner).
type KeyNameRequest = CreateKeyRequest

// GenerateDataKeyRequest is the body of POST /v1/datakey (owner).
// AAD is bound into the wrapping: the same AAD must be given to unwrap.
type GenerateDataKeyRequest struct {
	Key string `json:"key"`
	AAD []byte `json:"aad"`
}

func (r *GenerateDataKeyRequest) Check() error {
	if err := envelope.CheckKeyName(r.Key); err != nil {
		return err
	}
	if len(r.AAD) > 64<<10 {
		return errors.New("aad longer than 64 KiB")
	}
	return nil
}

// DataKey is a data key and its wrapped form.
type DataKey struct {
	Key     string `json:"key"`
	Version uint32 `json:"version"`
	DataKey []byte `json:"data_key,omitempty"`
	Wrapped []byte `json:"wrapped"`
}

// DecryptRequest is the body of POST /v1/decrypt (owner).
type DecryptRequest struct {
	Key     string `json:"key"`
	Wrapped []byte `json:"wrapped"`
	AAD     []byte `json:"aad"`
}

func (r *DecryptRequest) Check() error {
	if err := envelope.CheckKeyName(r.Key); err != nil {
		return err
	}
	if len(r.Wrapped) == 0 {
		return errors.New("wrapped is missing")
	}
	if len(r.Wrapped) > MaxWrappedSize || len(r.AAD) > 64<<10 {
		return errors.New("wrapped or aad too long")
	}
	return nil
}

// Challenge is the response to POST /v1/attest/challenge (runner).
type Challenge struct {
	Nonce   []byte    `json:"nonce"`
	Expires time.Time `json:"expires"`
}

// NonceSize is the size of a challenge nonce.
const NonceSize = 32

// HPKE KEM identifiers accepted for the ephemeral key (RFC 9180 and
// draft-ietf-hpke-pq): DHKEM(X25519, HKDF-SHA256) and ML-KEM-768+X25519.
// The KDF is always HKDF-SHA256 and the AEAD AES-256-GCM.
const (
	KEMX25519         uint16 = 0x0020
	KEMMLKEM768X25519 uint16 = 0x647a
)

// ReleaseRequest is the body of POST /v1/release (runner).
type ReleaseRequest struct {
	Nonce    []byte          `json:"nonce"`
	Evidence attest.Evidence `json:"evidence"`
	// KEM is the HPKE KEM id of PublicKey (0: KEMX25519).
	KEM       uint16 `json:"kem,omitempty"`
	PublicKey []byte `json:"public_key"`
	// Manifest is the job manifest as the TEE read it; the server parses it
	// and uses the SHA-256 of its canonical form (the job digest).
	Manifest []byte           `json:"manifest"`
	Keys     []ReleaseKeyItem `json:"keys"`
	// Outputs asks for fresh data keys for the job's outputs, policy-gated
	// like Keys and granted all or nothing together with them.
	Outputs []ReleaseOutputItem `json:"outputs,omitempty"`
}

// MaxReleaseKeys bounds the keys and outputs of one release together.
const MaxReleaseKeys = 64

// ReleaseKeyItem is one key the TEE asks for: what it found in an envelope header.
type ReleaseKeyItem struct {
	// Ref is the header's key reference (kms://HOST[:PORT]/KEY[@VERSION]) or a bare key name.
	Ref     string `json:"ref"`
	Wrapped []byte `json:"wrapped"`
	AAD     []byte `json:"aad"`
}

// ReleaseOutputItem asks for a fresh data key wrapped under a service key,
// for an output the job will write.
type ReleaseOutputItem struct {
	// Ref is kms://HOST[:PORT]/KEY or a bare key name. New data keys are
	// wrapped under the key's newest version; a ref naming @VERSION must name it.
	Ref string `json:"ref"`
	// AAD is the wrap associated data of the output envelope's header (its
	// 63-byte fixed part, envelope.Draft.WrapAAD), bound into the wrapping exactly as
	// POST /v1/datakey binds its aad, so the owner unwraps it with
	// POST /v1/decrypt and the same header.
	AAD []byte `json:"aad"`
}

func (r *ReleaseRequest) Check() error {
	if len(r.Nonce) != NonceSize {
		return fmt.Errorf("nonce is %d bytes, want %d", len(r.Nonce), NonceSize)
	}
	if r.Evidence.Platform == "" || len(r.Evidence.Data) == 0 {
		return errors.New("evidence is missing (platform and data)")
	}
	switch r.KEM {
	case 0, KEMX25519, KEMMLKEM768X25519:
	default:
		return fmt.Errorf("kem 0x%04x is not supported (want 0x0020 DHKEM-X25519 or 0x647a ML-KEM-768+X25519)", r.KEM)
	}
	if len(r.PublicKey) == 0 || len(r.PublicKey) > 4096 {
		return errors.New("public_key is missing or too long")
	}
	if len(r.Manifest) == 0 {
		return errors.New("manifest is missing")
	}
	if n := len(r.Keys) + len(r.Outputs); n == 0 || n > MaxReleaseKeys {
		return fmt.Errorf("keys and outputs: give 1 to %d together, got %d", MaxReleaseKeys, n)
	}
	for i, k := range r.Keys {
		if k.Ref == "" || len(k.Ref) > 1024 {
			return fmt.Errorf("keys[%d]: ref is missing or too long", i)
		}
		if len(k.Wrapped) == 0 || len(k.Wrapped) > MaxWrappedSize || len(k.AAD) > 64<<10 {
			return fmt.Errorf("keys[%d]: wrapped is missing, or wrapped or aad too long", i)
		}
	}
	for i, o := range r.Outputs {
		if o.Ref == "" || len(o.Ref) > 1024 {
			return fmt.Errorf("outputs[%d]: ref is missing or too long", i)
		}
		if len(o.AAD) > 64<<10 {
			return fmt.Errorf("outputs[%d]: aad longer than 64 KiB", i)
		}
	}
	return nil
}

// ReleaseResponse is the answer to an allowed release.
type ReleaseResponse struct {
	// Token is the signed attestation token (compact JWS, ES256), keys at /.well-known/jwks.json.
	Token string        `json:"token"`
	Keys  []ReleasedKey `json:"keys"`
	// Outputs answers ReleaseRequest.Outputs, in order.
	Outputs []ReleasedOutput `json:"outputs,omitempty"`
	Suite   ReleaseSuite     `json:"suite"`
	Job     attest.Hex       `json:"job_digest"`
	Claims  *attest.Claims   `json:"claims,omitempty"`
}

// ReleaseSuite names the HPKE suite the keys are sealed with.
type ReleaseSuite struct {
	KEM  uint16 `json:"kem"`
	KDF  uint16 `json:"kdf"`
	AEAD uint16 `json:"aead"`
}

// ReleasedKey is one data key sealed to the TEE's ephemeral key:
// Sealed = HPKE enc ‖ ciphertext (single-shot, no aad), info = ReleaseInfo(nonce, Ref).
type ReleasedKey struct {
	Ref     string `json:"ref"`
	Key     string `json:"key"`
	Version uint32 `json:"version"`
	Sealed  []byte `json:"sealed"`
}

// ReleasedOutput is a fresh data key for an output: Sealed is the data key
// sealed to the TEE's ephemeral key (HPKE enc ‖ ciphertext, single-shot, no
// aad, info = OutputInfo(nonce, index, Ref)); Wrapped is the same key wrapped
// under Key version Version with the request's AAD, for the envelope header.
type ReleasedOutput struct {
	Ref     string `json:"ref"`
	Key     string `json:"key"`
	Version uint32 `json:"version"`
	Sealed  []byte `json:"sealed"`
	Wrapped []byte `json:"wrapped"`
}

// OutputInfo is the HPKE info for the data key of outputs[index] in the
// release answering nonce: "ppml kms output v1" 0x00 nonce uint32-BE(index) ref.
// The index keeps two outputs under the same key from being swapped.
func OutputInfo(nonce []byte, index int, ref string) []byte {
	b := append([]byte("ppml kms output v1\x00"), nonce...)
	b = binary.BigEndian.AppendUint32(b, uint32(index))
	return append(b, ref...)
}

// ReportData is the value the TEE binds into its evidence:
// SHA-512(nonce ‖ jobDigest ‖ publicKey), with a 32-byte nonce, the 32-byte
// job digest (SHA-256 of the canonical manifest) and the serialized HPKE
// public key. The first two are fixed-size, so the concatenation is unambiguous.
func ReportData(nonce, jobDigest, publicKey []byte) [64]byte {
	h := sha512.New()
	h.Write(nonce)
	h.Write(jobDigest)
	h.Write(publicKey)
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// ReleaseInfo is the HPKE info for the key released for ref in the
// release answering nonce: "ppml kms release v1" 0x00 nonce 0x00 ref.
func ReleaseInfo(nonce []byte, ref string) []byte {
	b := append([]byte("ppml kms release v1\x00"), nonce...)
	b = append(b, 0)
	return append(b, ref...)
}

// Status is the response of GET /v1/sys/status and POST /v1/sys/unseal.
type Status struct {
	Sealed bool   `json:"sealed"`
	Seal   string `json:"seal"`
	// Threshold and SharesTotal are the Shamir split's K and N; Shares
	// counts the shares given so far while sealed.
	Threshold   int `json:"threshold,omitempty"`
	SharesTotal int `json:"shares_total,omitempty"`
	Shares      int `json:"shares_given,omitempty"`
	// Version is the server's build.
	Version string `json:"version,omitempty"`
	// Once unsealed: the store's id, its state version (write
	// transactions so far) and when it was last written, and the audit
	// log's size.
	StoreID      string    `json:"store_id,omitempty"`
	StateVersion uint64    `json:"state_version,omitempty"`
	StateTime    time.Time `json:"state_time,omitzero"`
	AuditSize    uint64    `json:"audit_size,omitempty"`
}

// UnsealRequest is the body of POST /v1/sys/unseal: one Shamir share as printed at init.
type UnsealRequest struct {
	Share string `json:"share"`
}

func (r *UnsealRequest) Check() error {
	if r.Share == "" || len(r.Share) > 4096 {
		return errors.New("share is missing or too long")
	}
	return nil
}

// InclusionProof is the answer of GET /v1/audit/proof?index=N: the entry
// exactly as hashed into the log, a signed tree head and the RFC 6962
// inclusion proof of the entry in that tree. It is a receipt: with the
// tree-head public key, anyone can check it without trusting the server.
type InclusionProof struct {
	Index    uint64          `json:"index"`
	Entry    json.RawMessage `json:"entry"`
	TreeHead json.RawMessage `json:"tree_head"`
	Proof    []attest.Hex    `json:"proof"`
}

// ConsistencyProof is the answer of GET /v1/audit/consistency?from=SIZE: a
// signed tree head of the current log and the proof that the tree of SIZE
// entries is a prefix of it.
type ConsistencyProof struct {
	From     uint64          `json:"from"`
	TreeHead json.RawMessage `json:"tree_head"`
	Proof    []attest.Hex    `json:"proof"`
}
