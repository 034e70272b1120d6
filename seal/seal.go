// Package seal protects the key service's root key at rest.
//
// The root key encrypts everything in the server's store. A Sealer creates a
// root key and its protected form (Init), and recovers it (Unseal):
//
//   - File: the key sits in a 0600 file (development only).
//   - Shamir: the key is split into N shares, K of which recover it; the
//     server starts sealed until an operator supplies K shares.
//   - TEE: the key is derived from the TEE's sealing key (Gramine's
//     /dev/attestation/keys/_sgx_mrenclave), so only the same enclave on the
//     same CPU can recover it.
//
// Whatever the type, the data directory holds a sealed-state record,
// seal.json, that names the seal type and holds a verifier of the root key.
// Every recovered key is checked against the verifier, so wrong or too few
// shares, another machine's sealing key or a replaced key file fail with a
// clear error instead of yielding a wrong key. Boot creates a new root only
// in a directory that holds neither a seal state nor data: a missing key
// file is an error, never a reason to start over.
package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/seal/shamir"
)

// KeySize is the size of the root key in bytes (AES-256).
const KeySize = 32

// StateFile is the name of the sealed-state record in the data directory.
const StateFile = "seal.json"

// Type names a seal.
type Type string

const (
	TypeFile   Type = "file"
	TypeShamir Type = "shamir"
	TypeTEE    Type = "tee"
)

// State is the sealed-state record. It holds nothing secret: the verifier is
// a MAC under a key derived from the root key, which says whether a
// candidate root key is the right one and nothing else.
type State struct {
	Version int       `json:"version"`
	Type    Type      `json:"type"`
	Created time.Time `json:"created"`
	// Verifier is HMAC-SHA256(HKDF(root, "ppml seal verifier v1"), "ppml root key check v1").
	Verifier []byte `json:"verifier"`

	// File seal: the key file's path.
	KeyFile string `json:"key_file,omitempty"`
	// Shamir seal: K and N.
	Threshold int `json:"threshold,omitempty"`
	Shares    int `json:"shares,omitempty"`
	// Shamir seal, version 2: the split's id (hex) and a commitment to
	// each of its N shares (hex SHA-256 of "ppml share commitment v1" 0x00
	// and the share's binary form, share x at index x-1). The sealed
	// server checks every share it is given against them and keeps only
	// genuine ones, so forged shares are refused at once and never spoil
	// the operators' shares. The shares themselves cannot be derived from
	// them. Version 1 states (no commitments) are upgraded after the first
	// unseal, from the shares that unsealed.
	SplitID          string   `json:"split_id,omitempty"`
	ShareCommitments []string `json:"share_commitments,omitempty"`
	// TEE seal: the sealing key file's name under the attestation key
	// directory and the HKDF salt.
	SealingKey string `json:"sealing_key,omitempty"`
	Salt       []byte `json:"salt,omitempty"`
}

// InitResult is what Init produces.
type InitResult struct {
	RootKey []byte
	State   *State
	// Shares are the Shamir shares (nil for other seals). They exist only
	// here: show them to the operators once and drop them.
	Shares []shamir.Share
}

// Sealer creates and recovers a root key.
type Sealer interface {
	Type() Type
	// Init creates a new root key and its protected form. It must not
	// overwrite an existing protected key.
	Init() (*InitResult, error)
	// Unseal recovers the root key that st describes and checks it against
	// st's verifier.
	Unseal(st *State) ([]byte, error)
}

var (
	// ErrNoState means the data directory has no seal.json.
	ErrNoState = errors.New("seal: no sealed state")
	// ErrWrongKey means a recovered key does not match the verifier.
	ErrWrongKey = errors.New("seal: recovered key does not match the sealed state's verifier")
)

// SealedError says the root key cannot be recovered yet because an operator
// has to supply shares; the server should start sealed.
type SealedError struct {
	Threshold int // K
	Have      int // shares given so far
}

func (e *SealedError) Error() string {
	return fmt.Sprintf("seal: sealed: %d of %d unseal shares given; supply %d more (ppml server unseal)", e.Have, e.Threshold, e.Threshold-e.Have)
}

// Verifier computes the verifier of a root key.
func Verifier(root []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, root, nil, "ppml seal verifier v1", 32)
	if err != nil {
		return nil, fmt.Errorf("seal: derive verifier key: %w", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("ppml root key check v1"))
	clear(k)
	return m.Sum(nil), nil
}

// Check reports whether root matches st's verifier, in constant time.
func (st *State) Check(root []byte) error {
	if len(root) != KeySize {
		return fmt.Errorf("%w: key is %d bytes, want %d", ErrWrongKey, len(root), KeySize)
	}
	v, err := Verifier(root)
	if err != nil {
		return err
	}
	if len(st.Verifier) == 0 || !hmac.Equal(v, st.Verifier) {
		return ErrWrongKey
	}
	return nil
}

func newState(t Type, root []byte) (*State, error) {
	v, err := Verifier(root)
	if err != nil {
		return nil, err
	}
	return &State{Version: 1, Type: t, Created: time.Now().UTC().Truncate(time.Second), Verifier: v}, nil
}

func newRootKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("seal: random root key: %w", err)
	}
	return k, nil
}

// LoadState reads dataDir/seal.json. It returns ErrNoState when the file
// does not exist.
func LoadState(dataDir string) (*State, error) {
	p := filepath.Join(dataDir, StateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read %s: %w", p, err)
	}
	st, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", p, err)
	}
	return st, nil
}

// ParseState parses a sealed-state record strictly: unknown fields, an
// unknown version or seal type, a verifier of the wrong size and malformed
// share commitments are errors.
func ParseState(b []byte) (*State, error) {
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if st.Version != 1 && st.Version != 2 {
		return nil, fmt.Errorf("version %d is not supported", st.Version)
	}
	switch st.Type {
	case TypeFile, TypeShamir, TypeTEE:
	default:
		return nil, fmt.Errorf("unknown seal type %q", st.Type)
	}
	if len(st.Verifier) != sha256.Size {
		return nil, fmt.Errorf("verifier is %d bytes, want %d", len(st.Verifier), sha256.Size)
	}
	if err := st.checkCommitments(); err != nil {
		return nil, err
	}
	return &st, nil
}

func (st *State) checkCommitments() error {
	if st.SplitID == "" && len(st.ShareCommitments) == 0 {
		return nil
	}
	if st.Type != TypeShamir {
		return fmt.Errorf("split_id and share_commitments belong to a shamir seal, not %s", st.Type)
	}
	if id, err := hex.DecodeString(st.SplitID); err != nil || len(id) != 4 {
		return fmt.Errorf("split_id %q: want 8 hex digits", st.SplitID)
	}
	if len(st.ShareCommitments) != st.Shares {
		return fmt.Errorf("share_commitments: %d, want one per share (%d)", len(st.ShareCommitments), st.Shares)
	}
	for i, c := range st.ShareCommitments {
		if b, err := hex.DecodeString(c); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("share_commitments[%d]: want 64 hex digits", i)
		}
	}
	return nil
}

// ShareCommitment is the commitment to a share that seal.json keeps.
func ShareCommitment(sh shamir.Share) string {
	h := sha256.New()
	h.Write([]byte("ppml share commitment v1\x00"))
	h.Write(sh.Bytes())
	return hex.EncodeToString(h.Sum(nil))
}

// CheckShare says why sh is not one of this server's shares, as far as
// the sealed state can tell without the root key: another split's id, or
// (version 2) a share that does not match its commitment. A sealed server
// calls it before keeping a share.
func (st *State) CheckShare(sh shamir.Share) error {
	if st.Type != TypeShamir {
		return errors.New("this key service is not Shamir-sealed")
	}
	if sh.Threshold != st.Threshold {
		return fmt.Errorf("the share is from a %d-of-N split; this server needs %d-of-%d shares: it belongs to another server", sh.Threshold, st.Threshold, st.Shares)
	}
	if st.SplitID == "" {
		return nil // version 1: nothing to check against
	}
	if id := hex.EncodeToString(sh.SetID[:]); id != st.SplitID {
		return fmt.Errorf("the share belongs to split %s; this server's shares are of split %s: it belongs to another server or an earlier split", id, st.SplitID)
	}
	if int(sh.X) > len(st.ShareCommitments) || !hmac.Equal([]byte(ShareCommitment(sh)), []byte(st.ShareCommitments[sh.X-1])) {
		return fmt.Errorf("share %d of split %s does not match the commitment in %s: it is forged or damaged (a mistyped share fails its check bytes instead)", sh.X, st.SplitID, StateFile)
	}
	return nil
}

// UpgradeShamir turns a version 1 Shamir state into version 2 once
// operators have unsealed it with shares, which it uses to recompute every
// share of the split and commit to each: from then on the sealed server
// refuses forged shares. It replaces dataDir/seal.json atomically and
// returns the new state. shares must have unsealed st.
func UpgradeShamir(dataDir string, st *State, shares []shamir.Share) (*State, error) {
	if st.Type != TypeShamir || st.SplitID != "" {
		return st, nil
	}
	all, err := shamir.Reconstruct(shares, st.Shares)
	if err != nil {
		return nil, fmt.Errorf("seal: upgrade %s: %w", StateFile, err)
	}
	up := *st
	up.Version = 2
	up.SplitID = hex.EncodeToString(all[0].SetID[:])
	up.ShareCommitments = make([]string, len(all))
	for i, sh := range all {
		up.ShareCommitments[i] = ShareCommitment(sh)
		clear(sh.Y)
	}
	b, err := json.MarshalIndent(&up, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dataDir, StateFile), append(b, '\n'), atomicfile.Options{Perm: 0o600, Overwrite: true}); err != nil {
		return nil, fmt.Errorf("seal: upgrade %s: %w", StateFile, err)
	}
	return &up, nil
}

// SaveState writes dataDir/seal.json atomically and refuses to replace an
// existing one.
func SaveState(dataDir string, st *State) error {
	p := filepath.Join(dataDir, StateFile)
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("seal: %s already exists: refusing to replace the sealed state of existing data", p)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, append(b, '\n'), atomicfile.Options{Perm: 0o600}); err != nil {
		return fmt.Errorf("seal: write %s: %w", p, err)
	}
	return nil
}

// Boot recovers the root key of dataDir with s, or creates a new one when
// the directory is fresh: no seal.json and none of dataFiles (names relative
// to dataDir, e.g. the database file) present. created is non-nil only when
// a new root was made; for a Shamir seal it carries the shares to show once.
//
// When seal.json exists, its type must be s's type, and the key recovered
// must match its verifier. When it does not exist but data does, Boot
// fails: a new root key would make the data unreadable.
func Boot(dataDir string, s Sealer, dataFiles ...string) (root []byte, created *InitResult, err error) {
	st, err := LoadState(dataDir)
	switch {
	case err == nil:
		if st.Type != s.Type() {
			return nil, nil, fmt.Errorf("seal: %s is sealed with %q, not %q: start with --seal %s", dataDir, st.Type, s.Type(), st.Type)
		}
		root, err := s.Unseal(st)
		if err != nil {
			return nil, nil, err
		}
		return root, nil, nil
	case !errors.Is(err, ErrNoState):
		return nil, nil, err
	}
	for _, f := range dataFiles {
		p := filepath.Join(dataDir, f)
		if _, err := os.Lstat(p); err == nil {
			return nil, nil, fmt.Errorf("seal: %s holds data (%s) but no %s: refusing to create a new root key over existing data; restore %s from your backup", dataDir, f, StateFile, StateFile)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("seal: check %s: %w", p, err)
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("seal: create data dir: %w", err)
	}
	res, err := s.Init()
	if err != nil {
		return nil, nil, err
	}
	if err := SaveState(dataDir, res.State); err != nil {
		clear(res.RootKey)
		return nil, nil, err
	}
	return res.RootKey, res, nil
}
