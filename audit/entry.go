package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ppml/ppml/attest"
)

// Type is what an entry records.
type Type string

const (
	TypeRelease     Type = "release"      // a key was released to an attested TEE
	TypeDenial      Type = "denial"       // a release attempt was refused
	TypeKeyCreate   Type = "key_create"   // a primary key was created
	TypeKeyRotate   Type = "key_rotate"   // a primary key got a new version
	TypePolicySet   Type = "policy_set"   // a key's policy was set or replaced
	TypeTokenIssue  Type = "token_issue"  // an API or attestation token was issued
	TypeTokenRevoke Type = "token_revoke" // an API token was revoked
	TypeTenant      Type = "tenant"       // a tenant was created or changed
	TypeDecrypt     Type = "decrypt"      // an owner unwrapped a data key
	// TypeDataKey is a data key generated for an owner (POST /v1/datakey,
	// what ppml encrypt --key kms://... calls).
	TypeDataKey Type = "data_key"
	// TypeOutputKey is a fresh data key issued, inside a release, to an
	// attested TEE for a job output (an input key's release is
	// TypeRelease). Denials of either are TypeDenial; an output key's
	// denial reason starts with "output key: ".
	TypeOutputKey Type = "output_key"
	// TypeTokenRenew extends an API token's expiry.
	TypeTokenRenew Type = "token_renew"
	// TypeKeyDisable, TypeKeyEnable and TypeKeyDestroy change the state
	// of one key version (entry KeyVersion); destroying erases its material.
	TypeKeyDisable Type = "key_disable"
	TypeKeyEnable  Type = "key_enable"
	TypeKeyDestroy Type = "key_destroy"
	// TypeRestore records that an operator restored the database from a
	// backup (ppml server restore): it is the first entry after the
	// backup's last one, so a log that forked at a restore says so.
	TypeRestore Type = "restore"
	// TypeStoreMigrate records that the service migrated its store to a
	// new format at start.
	TypeStoreMigrate Type = "store_migrate"
	// TypeRefusals summarizes, on the caller's tenant trail, requests of
	// one API token refused before any key was looked at (no valid nonce
	// or evidence, a key name of another tenant) during an interval: such
	// requests write no entry each, so that they cannot flood the log.
	TypeRefusals Type = "refusals"
	// TypeKeyList records on a tenant's trail that an administrator read
	// the list of its keys.
	TypeKeyList Type = "key_list"
	// TypeBackup records on a tenant's trail that an administrator took a
	// backup of the database, which holds the tenant's keys.
	TypeBackup Type = "backup"
	// TypeTrailUpgrade starts the per-key chain of a trail whose earlier
	// entries were written before format 2 (docs/formats/audit-log.md).
	TypeTrailUpgrade Type = "trail_upgrade"
)

// Decision values.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Entry is one audit record. Its canonical JSON encoding (Encode) is the
// Merkle leaf: field order as declared, empty fields omitted, no white space,
// times in UTC, hex in lower case. Index and Prev are set by Append.
type Entry struct {
	// Index is the entry's position in the log, from 0.
	Index uint64 `json:"index"`
	// Prev is the RFC 6962 leaf hash of entry Index-1 (absent for entry 0).
	// It is redundant with the tree and exists so that a verifier can say
	// exactly which entry of a tampered copy was changed.
	Prev attest.Hex `json:"prev,omitempty"`
	Time time.Time  `json:"time"`
	Type Type       `json:"type"`
	// Tenant is the party whose key or account is concerned; Actor the token
	// (by id, never the token itself) or party that acted.
	Tenant      string     `json:"tenant,omitempty"`
	Actor       string     `json:"actor,omitempty"`
	Key         string     `json:"key,omitempty"`
	KeyVersion  uint32     `json:"key_version,omitempty"`
	JobDigest   attest.Hex `json:"job_digest,omitempty"`
	Platform    string     `json:"platform,omitempty"`
	Measurement attest.Hex `json:"measurement,omitempty"`
	Signer      attest.Hex `json:"signer,omitempty"`
	TCBStatus   string     `json:"tcb_status,omitempty"`
	Insecure    bool       `json:"insecure,omitempty"`
	Decision    string     `json:"decision,omitempty"`
	// Rule is the stable name of the policy rule or check that decided a denial.
	Rule string `json:"rule,omitempty"`
	// Field is the policy field that decided it, as a path into the
	// policy document (platforms.tdx.rtmr1), when one did.
	Field     string `json:"field,omitempty"`
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id,omitempty"`

	// The per-trail chain (format 2): every entry about a tenant (its key,
	// or with Key empty the tenant itself) is the KeySeq-th of its trail
	// (from 1), its trail sits at KeySlot in the chain table the signed
	// tree head commits to, and KeyChain is the trail's chain hash before
	// this entry (absent for the first). Set by the log's Append; all zero
	// on entries about no tenant and on entries written before format 2.
	KeySeq   uint64     `json:"key_seq,omitempty"`
	KeySlot  uint64     `json:"key_slot,omitempty"`
	KeyChain attest.Hex `json:"key_chain,omitempty"`
}

// Trail names the trail an entry is on: its Tenant and Key (Key empty: the
// tenant's own trail). ok is false for an entry about no tenant.
func (e *Entry) Trail() (t TrailID, ok bool) {
	return TrailID{Tenant: e.Tenant, Key: e.Key}, e.Tenant != ""
}

// Chained reports whether the entry carries format 2 chain fields.
func (e *Entry) Chained() bool { return e.KeySeq != 0 }

// MaxEntrySize bounds an encoded entry; Append refuses larger ones and the
// export parser refuses longer lines.
const MaxEntrySize = 64 << 10

// Encode returns the canonical encoding.
func (e *Entry) Encode() ([]byte, error) {
	c := *e
	c.Time = c.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("audit: encode entry: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("audit: entry of %d bytes exceeds %d", len(b), MaxEntrySize)
	}
	return b, nil
}

// DecodeEntry parses an encoded entry strictly: unknown fields, trailing
// data and non-canonical encodings are errors.
func DecodeEntry(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("entry of %d bytes exceeds %d", len(b), MaxEntrySize)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("not a valid entry: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a valid entry: data after the JSON object")
	}
	if e.Type == "" {
		return nil, errors.New("not a valid entry: no type")
	}
	again, err := e.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, errors.New("entry is not in canonical form (fields reordered, reformatted or re-encoded)")
	}
	return &e, nil
}
