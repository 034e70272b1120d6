// Package audit is the key service's append-only audit log.
//
// Entries are canonical JSON records (Entry) and the leaves of an RFC 6962
// Merkle tree (SHA-256). The log lives in bbolt buckets of the server's
// database and is written inside the caller's transaction, so a state change
// and the entry that records it commit together or not at all:
//
//	err := db.Update(func(tx *store.Tx) error {
//		// ... create the key ...
//		_, err := log.Append(tx.Bolt(), audit.Entry{Type: audit.TypeKeyCreate, ...})
//		return err
//	})
//
// The log keeps every perfect-subtree hash, so it maintains its root with a
// compact range (transparency-dev/merkle/compact) without rereading entries,
// and serves inclusion and consistency proofs for any earlier size.
// Tree heads are signed by a crypto.Signer (ECDSA P-256 or Ed25519).
//
// Export writes the log in the format of docs/formats/audit-log.md, and
// VerifyExport checks such a copy offline, with nothing but the public key,
// and reports exactly where a tampered copy breaks.
package audit

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
	"github.com/transparency-dev/merkle/rfc6962"
	"go.etcd.io/bbolt"
)

// Bucket is the top-level bbolt bucket of the log. Its "_" prefix is
// reserved by package store, so no store bucket can collide with it.
const Bucket = "_audit"

var (
	bktEntries     = []byte("entries")     // index (uint64 BE) -> entry
	bktNodes       = []byte("nodes")       // level (1) | index (uint64 BE) -> hash
	bktByKey       = []byte("bykey")       // blind(tenant 0x00 key) | index -> empty
	bktCheckpoints = []byte("checkpoints") // size (uint64 BE) -> tree head JSON
	bktMeta        = []byte("meta")        // "size", "log_id"
)

var hasher = rfc6962.DefaultHasher

var rf = &compact.RangeFactory{Hash: hasher.HashChildren}

// ErrNotInitialized means the database has no audit log yet.
var ErrNotInitialized = errors.New("audit: log not initialized")

// Cipher encrypts the log's stored values. store.DB implements it; nil
// stores values in the clear. Exports are always plain: verifying one needs
// no key but the tree head public key.
type Cipher interface {
	SealValue(bucket string, key, plaintext []byte) ([]byte, error)
	OpenValue(bucket string, key, sealed []byte) ([]byte, error)
	// Blind maps a key name to a fixed-size index key that does not reveal it.
	Blind(name []byte) []byte
}

// Config configures a Log.
type Config struct {
	// Signer signs tree heads (ECDSA P-256 or Ed25519). Without one the log
	// still appends, but SignTreeHead, Export and checkpoints fail.
	Signer crypto.Signer
	// Cipher encrypts stored values (nil: plain).
	Cipher Cipher
	// CheckpointEvery makes Append sign and keep a tree head whenever the
	// size reaches a multiple of it (0: never). Exports carry the kept
	// tree heads, which lets the verifier localize a rewritten stretch.
	CheckpointEvery uint64
	// Now is the clock for entries and tree heads (time.Now when nil).
	Now func() time.Time
}

// Log is an audit log inside a bbolt database. It holds no state between
// transactions, so one Log may serve many concurrent transactions.
type Log struct{ cfg Config }

// New returns a log with the given configuration.
func New(cfg Config) *Log { return &Log{cfg: cfg} }

func (l *Log) now() time.Time {
	if l.cfg.Now != nil {
		return l.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

// Init creates the log's buckets and its random log id if missing.
// Append calls it, so calling it is only needed to create an empty log.
func (l *Log) Init(tx *bbolt.Tx) error {
	top, err := tx.CreateBucketIfNotExists([]byte(Bucket))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	for _, n := range [][]byte{bktEntries, bktNodes, bktByKey, bktCheckpoints, bktMeta} {
		if _, err := top.CreateBucketIfNotExists(n); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	if top.Bucket(bktMeta).Get([]byte("log_id")) == nil {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return fmt.Errorf("audit: log id: %w", err)
		}
		if err := l.put(top.Bucket(bktMeta), "meta", []byte("log_id"), id); err != nil {
			return err
		}
		if err := l.put(top.Bucket(bktMeta), "meta", []byte("size"), u64(0)); err != nil {
			return err
		}
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func nodeKey(id compact.NodeID) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(id.Level)}, id.Index)
}

func (l *Log) put(b *bbolt.Bucket, name string, key, value []byte) error {
	if l.cfg.Cipher != nil {
		var err error
		if value, err = l.cfg.Cipher.SealValue(Bucket+"/"+name, key, value); err != nil {
			return err
		}
	}
	if err := b.Put(key, value); err != nil {
		return fmt.Errorf("audit: put %s: %w", name, err)
	}
	return nil
}

// get returns a copy of the (decrypted) value, or nil when absent.
func (l *Log) get(b *bbolt.Bucket, name string, key []byte) ([]byte, error) {
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	if l.cfg.Cipher != nil {
		return l.cfg.Cipher.OpenValue(Bucket+"/"+name, key, v)
	}
	return append([]byte(nil), v...), nil
}

type buckets struct{ top, entries, nodes, byKey, checkpoints, meta *bbolt.Bucket }

func open(tx *bbolt.Tx) (*buckets, error) {
	top := tx.Bucket([]byte(Bucket))
	if top == nil {
		return nil, ErrNotInitialized
	}
	b := &buckets{top: top, entries: top.Bucket(bktEntries), nodes: top.Bucket(bktNodes),
		byKey: top.Bucket(bktByKey), checkpoints: top.Bucket(bktCheckpoints), meta: top.Bucket(bktMeta)}
	if b.entries == nil || b.nodes == nil || b.byKey == nil || b.checkpoints == nil || b.meta == nil {
		return nil, errors.New("audit: log buckets are incomplete")
	}
	return b, nil
}

func (l *Log) size(b *buckets) (uint64, error) {
	v, err := l.get(b.meta, "meta", []byte("size"))
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, errors.New("audit: stored size is corrupt")
	}
	return binary.BigEndian.Uint64(v), nil
}

// Size returns the number of entries.
func (l *Log) Size(tx *bbolt.Tx) (uint64, error) {
	b, err := open(tx)
	if err != nil {
		return 0, err
	}
	return l.size(b)
}

// LogID returns the log's random identifier, which every tree head names.
func (l *Log) LogID(tx *bbolt.Tx) ([]byte, error) {
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	id, err := l.get(b.meta, "meta", []byte("log_id"))
	if err != nil {
		return nil, err
	}
	if len(id) == 0 {
		return nil, errors.New("audit: log id missing")
	}
	return id, nil
}

func (l *Log) node(b *buckets, id compact.NodeID) ([]byte, error) {
	h, err := l.get(b.nodes, "nodes", nodeKey(id))
	if err != nil {
		return nil, err
	}
	if len(h) != sha256.Size {
		return nil, fmt.Errorf("audit: tree node (level %d, index %d) is missing or corrupt", id.Level, id.Index)
	}
	return h, nil
}

// rangeAt rebuilds the compact range [0, size) from stored subtree roots.
func (l *Log) rangeAt(b *buckets, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := l.node(b, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return rf.NewRange(0, size, hashes)
}

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Append adds e to the log inside tx and returns its index. It sets
// e.Index and e.Prev, and e.Time when zero. It must run in a writable
// transaction; the entry is visible only if tx commits.
func (l *Log) Append(tx *bbolt.Tx, e Entry) (uint64, error) {
	if !typeRE.MatchString(string(e.Type)) {
		return 0, fmt.Errorf("audit: entry type %q: want lower-case letters, digits and _", e.Type)
	}
	if e.Decision != "" && e.Decision != Allow && e.Decision != Deny {
		return 0, fmt.Errorf("audit: decision %q: want %q or %q", e.Decision, Allow, Deny)
	}
	if err := l.Init(tx); err != nil {
		return 0, err
	}
	b, err := open(tx)
	if err != nil {
		return 0, err
	}
	size, err := l.size(b)
	if err != nil {
		return 0, err
	}
	e.Index = size
	e.Prev = nil
	if size > 0 {
		if e.Prev, err = l.node(b, compact.NewNodeID(0, size-1)); err != nil {
			return 0, err
		}
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	enc, err := e.Encode()
	if err != nil {
		return 0, err
	}
	r, err := l.rangeAt(b, size)
	if err != nil {
		return 0, err
	}
	var visitErr error
	if err := r.Append(hasher.HashLeaf(enc), func(id compact.NodeID, h []byte) {
		if visitErr == nil {
			visitErr = l.put(b.nodes, "nodes", nodeKey(id), h)
		}
	}); err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	if visitErr != nil {
		return 0, visitErr
	}
	if err := l.put(b.entries, "entries", u64(size), enc); err != nil {
		return 0, err
	}
	if e.Key != "" {
		if err := b.byKey.Put(append(l.blind(e.Tenant, e.Key), u64(size)...), []byte{}); err != nil {
			return 0, fmt.Errorf("audit: index: %w", err)
		}
	}
	if err := l.put(b.meta, "meta", []byte("size"), u64(size+1)); err != nil {
		return 0, err
	}
	if n := l.cfg.CheckpointEvery; n > 0 && (size+1)%n == 0 && l.cfg.Signer != nil {
		if _, err := l.Checkpoint(tx); err != nil {
			return 0, err
		}
	}
	return size, nil
}

func (l *Log) blind(tenant, key string) []byte {
	name := []byte(tenant + "\x00" + key)
	if l.cfg.Cipher != nil {
		return l.cfg.Cipher.Blind(name)
	}
	s := sha256.Sum256(name)
	return s[:]
}

// Entry returns entry i and its encoded (leaf) bytes.
func (l *Log) Entry(tx *bbolt.Tx, i uint64) (*Entry, []byte, error) {
	b, err := open(tx)
	if err != nil {
		return nil, nil, err
	}
	raw, err := l.get(b.entries, "entries", u64(i))
	if err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return nil, nil, fmt.Errorf("audit: no entry %d", i)
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, nil, fmt.Errorf("audit: entry %d is corrupt: %w", i, err)
	}
	return &e, raw, nil
}

// List returns up to limit entries starting at index from.
func (l *Log) List(tx *bbolt.Tx, from uint64, limit int) ([]Entry, error) {
	size, err := l.Size(tx)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for i := from; i < size && len(out) < limit; i++ {
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
func (l *Log) ListByKey(tx *bbolt.Tx, tenant, key string, from uint64, limit int) ([]Entry, error) {
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	prefix := l.blind(tenant, key)
	c := b.byKey.Cursor()
	var out []Entry
	for k, _ := c.Seek(append(append([]byte(nil), prefix...), u64(from)...)); k != nil && len(out) < limit; k, _ = c.Next() {
		if len(k) != len(prefix)+8 || string(k[:len(prefix)]) != string(prefix) {
			break
		}
		e, _, err := l.Entry(tx, binary.BigEndian.Uint64(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, nil
}

// Root returns the root hash of the tree of the first size entries.
func (l *Log) Root(tx *bbolt.Tx, size uint64) ([]byte, error) {
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	cur, err := l.size(b)
	if err != nil {
		return nil, err
	}
	if size > cur {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size, cur)
	}
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := l.rangeAt(b, size)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// SignTreeHead signs the current size and root. It only reads, so it works
// in a View transaction.
func (l *Log) SignTreeHead(tx *bbolt.Tx) (*TreeHead, error) {
	size, err := l.Size(tx)
	if err != nil {
		return nil, err
	}
	root, err := l.Root(tx, size)
	if err != nil {
		return nil, err
	}
	id, err := l.LogID(tx)
	if err != nil {
		return nil, err
	}
	return SignTreeHead(l.cfg.Signer, id, size, root, l.now())
}

// Checkpoint signs the current tree head and keeps it; exports carry kept
// tree heads. It needs a writable transaction.
func (l *Log) Checkpoint(tx *bbolt.Tx) (*TreeHead, error) {
	h, err := l.SignTreeHead(tx)
	if err != nil {
		return nil, err
	}
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if err := l.put(b.checkpoints, "checkpoints", u64(h.Size), j); err != nil {
		return nil, err
	}
	return h, nil
}

// Checkpoints returns the kept tree heads in size order.
func (l *Log) Checkpoints(tx *bbolt.Tx) ([]*TreeHead, error) {
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	var out []*TreeHead
	err = b.checkpoints.ForEach(func(k, _ []byte) error {
		v, err := l.get(b.checkpoints, "checkpoints", k)
		if err != nil {
			return err
		}
		var h TreeHead
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("audit: checkpoint is corrupt: %w", err)
		}
		out = append(out, &h)
		return nil
	})
	return out, err
}

// hashesFor reads the hashes of the given nodes and rehashes ephemeral ones.
func (l *Log) proofHashes(b *buckets, nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := l.node(b, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// InclusionProof proves that entry index is in the tree of the given size.
func (l *Log) InclusionProof(tx *bbolt.Tx, index, size uint64) ([][]byte, error) {
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	if cur, err := l.size(b); err != nil {
		return nil, err
	} else if size > cur {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size, cur)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return l.proofHashes(b, nodes)
}

// ConsistencyProof proves that the tree of size1 is a prefix of the tree of size2.
func (l *Log) ConsistencyProof(tx *bbolt.Tx, size1, size2 uint64) ([][]byte, error) {
	b, err := open(tx)
	if err != nil {
		return nil, err
	}
	if cur, err := l.size(b); err != nil {
		return nil, err
	} else if size2 > cur {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size2, cur)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return l.proofHashes(b, nodes)
}

// LeafHash returns the RFC 6962 leaf hash of an encoded entry.
func LeafHash(encoded []byte) []byte { return hasher.HashLeaf(encoded) }

// VerifyInclusion checks that the encoded entry is at index in the tree of head.
func VerifyInclusion(encoded []byte, index uint64, p [][]byte, head *TreeHead) error {
	if err := proof.VerifyInclusion(hasher, index, head.Size, LeafHash(encoded), p, head.RootHash); err != nil {
		return fmt.Errorf("audit: entry %d is not in the tree of size %d: %w", index, head.Size, err)
	}
	return nil
}

// VerifyConsistency checks that older is a prefix of newer. Both heads'
// signatures must be checked separately.
func VerifyConsistency(older, newer *TreeHead, p [][]byte) error {
	if string(older.LogID) != string(newer.LogID) {
		return errors.New("audit: tree heads are of different logs")
	}
	if older.Size > newer.Size {
		return fmt.Errorf("audit: tree head of size %d is newer than the one of size %d", older.Size, newer.Size)
	}
	if err := proof.VerifyConsistency(hasher, older.Size, newer.Size, p, older.RootHash, newer.RootHash); err != nil {
		return fmt.Errorf("audit: tree of size %d is not a prefix of the tree of size %d: %w", older.Size, newer.Size, err)
	}
	return nil
}
