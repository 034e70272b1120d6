// Package auditlog is the key service's storage of its audit log: entries,
// the Merkle tree's nodes, a per-key index and signed checkpoints, kept in
// the service's store (package store) and written inside the caller's
// transaction, so that a state change and the entry that records it commit
// together or not at all:
//
//	err := db.Update(func(tx store.Tx) error {
//		// ... create the key ...
//		_, err := log.Append(tx, audit.Entry{Type: audit.TypeKeyCreate, ...})
//		return err
//	})
//
// What the log's readers need (entries, tree heads, proofs, verification of
// exports) is package audit, which links no storage. The log keeps every
// perfect-subtree hash, so it maintains its root with a compact range
// (transparency-dev/merkle/compact) without rereading entries, and serves
// inclusion and consistency proofs for any earlier size.
//
// Every entry about a tenant is also on a trail (the tenant's key, or the
// tenant itself): Append chains it to the trail's previous entries and
// keeps the trail's chain head in the chain table, a second Merkle tree
// whose root signed tree heads commit to (format 2 of
// docs/formats/audit-log.md), so that an owner's trail export proves it
// holds every entry about the owner's keys. Init upgrades a log written
// before format 2.
//
// Its records live under the store namespace "_audit" (store.Namespace):
//
//	_audit/entries      index (uint64 BE) -> encoded entry
//	_audit/nodes        level (1 byte) | index (uint64 BE) -> hash
//	_audit/bykey        Blind(tenant 0x00 key) | index (uint64 BE) -> empty
//	_audit/chains       Blind(tenant 0x00 key) -> trail state (slot, count, newest index, chain hash)
//	_audit/chainnodes   level (1 byte) | index (uint64 BE) -> chain table hash
//	_audit/checkpoints  size (uint64 BE) -> tree head JSON
//	_audit/meta         "size", "chains" -> uint64 BE, "log_id" -> 16 random bytes, "format" -> 1 byte
package auditlog

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
)

// Namespace is the store namespace of the log's buckets.
const Namespace = "_audit"

const (
	bktEntries     = "entries"
	bktNodes       = "nodes"
	bktByKey       = "bykey"
	bktCheckpoints = "checkpoints"
	bktMeta        = "meta"
	bktChains      = "chains"
	bktChainNodes  = "chainnodes"
)

// Format is the log format Init brings a store to.
const Format = 2

var rf = &compact.RangeFactory{Hash: audit.HashChildren}

// ErrNotInitialized means the store holds no audit log yet.
var ErrNotInitialized = errors.New("audit: log not initialized")

// Blinder maps a key name to a fixed-size index key that does not reveal
// it (store.DB implements it).
type Blinder interface {
	Blind(name []byte) []byte
}

// Config configures a Log.
type Config struct {
	// Signer signs tree heads (ECDSA P-256 or Ed25519). Without one the log
	// still appends, but SignTreeHead, Export and checkpoints fail.
	Signer crypto.Signer
	// Blinder makes the per-key index keys (nil: plain SHA-256, which
	// hides nothing from someone who can guess names).
	Blinder Blinder
	// CheckpointEvery makes Append sign and keep a tree head whenever the
	// size reaches a multiple of it (0: never). Exports carry the kept
	// tree heads, which lets the verifier localize a rewritten stretch.
	CheckpointEvery uint64
	// Now is the clock for entries and tree heads (time.Now when nil).
	Now func() time.Time
}

// Log is an audit log in a store. It holds no state between transactions,
// so one Log serves many concurrent transactions.
type Log struct{ cfg Config }

// New returns a log with the given configuration.
func New(cfg Config) *Log { return &Log{cfg: cfg} }

func (l *Log) now() time.Time {
	if l.cfg.Now != nil {
		return l.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func nodeKey(id compact.NodeID) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(id.Level)}, id.Index)
}

// ns is the log's view of tx.
func ns(tx store.Tx) store.Tx { return store.Namespace(tx, Namespace) }

// get returns the value, or nil when absent.
func get(tx store.Tx, bucket string, key []byte) ([]byte, error) {
	v, err := tx.Get(bucket, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func put(tx store.Tx, bucket string, key, value []byte) error {
	if err := tx.Put(bucket, key, value); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Init creates the log (its random log id) if missing, and upgrades a log
// written before format 2 (see upgrade). Append calls it, so calling it is
// only needed to create an empty log or to upgrade one at start.
func (l *Log) Init(tx store.Tx) error {
	t := ns(tx)
	f, err := get(t, bktMeta, []byte("format"))
	if err != nil {
		return err
	}
	switch {
	case len(f) == 1 && f[0] == Format:
		return nil
	case f != nil:
		return fmt.Errorf("audit: the log is in format %x, this key service reads format %d: run the newer key service that wrote it", f, Format)
	}
	id, err := get(t, bktMeta, []byte("log_id"))
	if err != nil {
		return err
	}
	if id != nil {
		return l.upgrade(tx)
	}
	id = make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("audit: log id: %w", err)
	}
	if err := put(t, bktMeta, []byte("log_id"), id); err != nil {
		return err
	}
	if err := put(t, bktMeta, []byte("size"), u64(0)); err != nil {
		return err
	}
	if err := put(t, bktMeta, []byte("chains"), u64(0)); err != nil {
		return err
	}
	return put(t, bktMeta, []byte("format"), []byte{Format})
}

func size(t store.Tx) (uint64, error) {
	v, err := get(t, bktMeta, []byte("size"))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, ErrNotInitialized
	}
	if len(v) != 8 {
		return 0, errors.New("audit: stored size is corrupt")
	}
	return binary.BigEndian.Uint64(v), nil
}

// Size returns the number of entries.
func (l *Log) Size(tx store.Tx) (uint64, error) { return size(ns(tx)) }

// LogID returns the log's random identifier, which every tree head names.
func (l *Log) LogID(tx store.Tx) ([]byte, error) {
	id, err := get(ns(tx), bktMeta, []byte("log_id"))
	if err != nil {
		return nil, err
	}
	if len(id) == 0 {
		return nil, ErrNotInitialized
	}
	return id, nil
}

func node(t store.Tx, id compact.NodeID) ([]byte, error) { return nodeIn(t, bktNodes, id) }

// nodeIn reads a tree node of the log (bktNodes) or of the chain table
// (bktChainNodes).
func nodeIn(t store.Tx, bucket string, id compact.NodeID) ([]byte, error) {
	h, err := get(t, bucket, nodeKey(id))
	if err != nil {
		return nil, err
	}
	if len(h) != sha256.Size {
		what := "tree"
		if bucket == bktChainNodes {
			what = "chain table"
		}
		return nil, fmt.Errorf("audit: %s node (level %d, index %d) is missing or corrupt", what, id.Level, id.Index)
	}
	return h, nil
}

// rangeAt rebuilds the log's compact range [0, size) from stored subtree roots.
func rangeAt(t store.Tx, size uint64) (*compact.Range, error) { return rangeIn(t, bktNodes, size) }

func rangeIn(t store.Tx, bucket string, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := nodeIn(t, bucket, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return rf.NewRange(0, size, hashes)
}

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// fieldRE is a policy field path (policy.Decision.Field): names and
// indexes, nothing a terminal or a log line could take for anything else.
var fieldRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\[[0-9]{1,4}\])?(\.[a-z][a-z0-9_]*(\[[0-9]{1,4}\])?){0,7}$`)

// Append adds e to the log inside tx and returns its index. It sets
// e.Index and e.Prev, and e.Time when zero. It must run in a writable
// transaction; the entry is visible only if tx commits.
func (l *Log) Append(tx store.Tx, e audit.Entry) (uint64, error) {
	if !typeRE.MatchString(string(e.Type)) {
		return 0, fmt.Errorf("audit: entry type %q: want lower-case letters, digits and _", e.Type)
	}
	if e.Decision != "" && e.Decision != audit.Allow && e.Decision != audit.Deny {
		return 0, fmt.Errorf("audit: decision %q: want %q or %q", e.Decision, audit.Allow, audit.Deny)
	}
	if e.Field != "" && (len(e.Field) > 128 || !fieldRE.MatchString(e.Field)) {
		return 0, fmt.Errorf("audit: field %q: want a policy field path", e.Field)
	}
	if err := l.Init(tx); err != nil {
		return 0, err
	}
	t := ns(tx)
	n, err := size(t)
	if err != nil {
		return 0, err
	}
	e.Index = n
	e.Prev = nil
	if n > 0 {
		if e.Prev, err = node(t, compact.NewNodeID(0, n-1)); err != nil {
			return 0, err
		}
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	var tr *trail
	e.KeySeq, e.KeySlot, e.KeyChain = 0, 0, nil
	if id, ok := e.Trail(); ok {
		if tr, err = l.loadTrail(t, id); err != nil {
			return 0, err
		}
		e.KeySeq, e.KeySlot, e.KeyChain = tr.count+1, tr.slot, tr.chain
	}
	enc, err := e.Encode()
	if err != nil {
		return 0, err
	}
	r, err := rangeAt(t, n)
	if err != nil {
		return 0, err
	}
	var visitErr error
	if err := r.Append(audit.LeafHash(enc), func(id compact.NodeID, h []byte) {
		if visitErr == nil {
			visitErr = put(t, bktNodes, nodeKey(id), h)
		}
	}); err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	if visitErr != nil {
		return 0, visitErr
	}
	if err := put(t, bktEntries, u64(n), enc); err != nil {
		return 0, err
	}
	if e.Key != "" || e.Tenant != "" {
		if err := put(t, bktByKey, append(l.blind(e.Tenant, e.Key), u64(n)...), nil); err != nil {
			return 0, err
		}
	}
	if tr != nil {
		if err := l.extendTrail(t, tr, n, audit.LeafHash(enc)); err != nil {
			return 0, err
		}
	}
	if err := put(t, bktMeta, []byte("size"), u64(n+1)); err != nil {
		return 0, err
	}
	if every := l.cfg.CheckpointEvery; every > 0 && (n+1)%every == 0 && l.cfg.Signer != nil {
		if _, err := l.Checkpoint(tx); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (l *Log) blind(tenant, key string) []byte {
	name := []byte(tenant + "\x00" + key)
	if l.cfg.Blinder != nil {
		return l.cfg.Blinder.Blind(name)
	}
	s := sha256.Sum256(name)
	return s[:]
}

// Entry returns entry i and its encoded (leaf) bytes.
func (l *Log) Entry(tx store.Tx, i uint64) (*audit.Entry, []byte, error) {
	raw, err := get(ns(tx), bktEntries, u64(i))
	if err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return nil, nil, fmt.Errorf("audit: no entry %d", i)
	}
	var e audit.Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, nil, fmt.Errorf("audit: entry %d is corrupt: %w", i, err)
	}
	return &e, raw, nil
}

// List returns up to limit entries starting at index from.
func (l *Log) List(tx store.Tx, from uint64, limit int) ([]audit.Entry, error) {
	n, err := l.Size(tx)
	if err != nil {
		return nil, err
	}
	var out []audit.Entry
	for i := from; i < n && len(out) < limit; i++ {
		e, _, err := l.Entry(tx, i)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, nil
}

// ListByKey returns, in log order, up to limit entries about key of tenant
// with an index of at least from (pass the last index seen + 1 to page).
func (l *Log) ListByKey(tx store.Tx, tenant, key string, from uint64, limit int) ([]audit.Entry, error) {
	if _, err := l.Size(tx); err != nil {
		return nil, err
	}
	prefix := l.blind(tenant, key)
	start := append(append([]byte(nil), prefix...), u64(from)...)
	var out []audit.Entry
	err := ns(tx).Keys(bktByKey, prefix, start, func(k []byte) error {
		if len(out) >= limit {
			return store.ErrStop
		}
		if len(k) != len(prefix)+8 {
			return nil
		}
		i := binary.BigEndian.Uint64(k[len(prefix):])
		e, _, err := l.Entry(tx, i)
		if err != nil {
			return fmt.Errorf("audit: the per-key index of key %s points at entry %d: %w", key, i, err)
		}
		// The index is keyed by a blinded name; the entry must be about
		// the key it is listed under, or the index was tampered with.
		if e.Tenant != tenant || e.Key != key {
			return fmt.Errorf("audit: the per-key index of key %s points at entry %d, which is about another key: the index was tampered with", key, i)
		}
		out = append(out, *e)
		return nil
	})
	return out, err
}

// Root returns the root hash of the tree of the first size entries.
func (l *Log) Root(tx store.Tx, size uint64) ([]byte, error) {
	cur, err := l.Size(tx)
	if err != nil {
		return nil, err
	}
	if size > cur {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size, cur)
	}
	if size == 0 {
		return audit.EmptyRoot(), nil
	}
	r, err := rangeAt(ns(tx), size)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// SignTreeHead signs the current size, root and chain table (a format 2
// tree head). It only reads, so it works in a View transaction.
func (l *Log) SignTreeHead(tx store.Tx) (*audit.TreeHead, error) {
	n, err := l.Size(tx)
	if err != nil {
		return nil, err
	}
	root, err := l.Root(tx, n)
	if err != nil {
		return nil, err
	}
	id, err := l.LogID(tx)
	if err != nil {
		return nil, err
	}
	chains, croot, err := chainTable(ns(tx))
	if err != nil {
		return nil, err
	}
	h := &audit.TreeHead{LogID: id, Size: n, RootHash: root, Chains: chains, ChainRoot: croot, Timestamp: l.now()}
	if err := h.Sign(l.cfg.Signer); err != nil {
		return nil, err
	}
	return h, nil
}

// Checkpoint signs the current tree head and keeps it; exports carry kept
// tree heads. It needs a writable transaction.
func (l *Log) Checkpoint(tx store.Tx) (*audit.TreeHead, error) {
	h, err := l.SignTreeHead(tx)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if err := put(ns(tx), bktCheckpoints, u64(h.Size), j); err != nil {
		return nil, err
	}
	return h, nil
}

// Checkpoints returns the kept tree heads in size order.
func (l *Log) Checkpoints(tx store.Tx) ([]*audit.TreeHead, error) {
	if _, err := l.Size(tx); err != nil {
		return nil, err
	}
	var out []*audit.TreeHead
	err := ns(tx).Scan(bktCheckpoints, nil, nil, func(_, v []byte) error {
		var h audit.TreeHead
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("audit: checkpoint is corrupt: %w", err)
		}
		out = append(out, &h)
		return nil
	})
	return out, err
}

// proofHashes reads the hashes of the given nodes of the log and rehashes
// ephemeral ones.
func proofHashes(t store.Tx, nodes proof.Nodes) ([][]byte, error) {
	return proofHashesIn(t, bktNodes, nodes)
}

func proofHashesIn(t store.Tx, bucket string, nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := nodeIn(t, bucket, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return nodes.Rehash(hashes, audit.HashChildren)
}

// InclusionProof proves that entry index is in the tree of the given size.
func (l *Log) InclusionProof(tx store.Tx, index, size uint64) ([][]byte, error) {
	if cur, err := l.Size(tx); err != nil {
		return nil, err
	} else if size > cur {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size, cur)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return proofHashes(ns(tx), nodes)
}

// ConsistencyProof proves that the tree of size1 is a prefix of the tree of size2.
func (l *Log) ConsistencyProof(tx store.Tx, size1, size2 uint64) ([][]byte, error) {
	if cur, err := l.Size(tx); err != nil {
		return nil, err
	} else if size2 > cur {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size2, cur)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return proofHashes(ns(tx), nodes)
}
