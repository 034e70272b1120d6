package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppml/ppml/atomicfile"
)

// DB is a Store whose values are encrypted and whose state as a whole is
// authenticated, on top of any backend Store (docs/formats/key-service-store.md).
//
// Values are sealed with AES-256-GCM under a key derived from the root key,
// one random nonce per write, with the bucket name, the key and the state
// version of the write as associated data, so a value copied to another key
// or bucket fails to open. Sealed value layout (format 2):
//
//	0x02 | written version (uint64 BE) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// with associated data "ppml-store-v2" 0x00 | written version | uint32 len(bucket) | bucket | key.
//
// Single values could still be deleted, or replaced by an older copy of
// themselves (which authenticates), so every write transaction also updates
// the state head (_store/head): a version counter and, per bucket, the
// number of rows and two set digests (XORs of HMACs of each row's key, and
// of each row's bucket, key and sealed bytes), MACed under a key derived
// from the root key. Open checks every row against the head, so a deleted,
// added, replaced, rolled-back or swapped row makes Open fail with a
// *StateError that names the bucket (and the row, where it can be told).
// Replacing the whole database with an older copy of itself is not
// detectable from the database alone.
//
// Random 96-bit nonces are safe for about 2^32 writes under one root key;
// a key service writes orders of magnitude less than that in its lifetime.
//
// Bucket names whose first segment starts with "_" are reserved: "_store"
// holds DB's own records, and a subsystem that keeps records in the same
// transactions as the state (the audit log, "_audit") writes them through
// Namespace. Put and Delete refuse reserved names otherwise.
type DB struct {
	inner    Store
	aead     cipher.AEAD
	aeadV1   cipher.AEAD // format 1 values, read by the migration only
	blind    []byte
	stateKey []byte
	opts     Options

	// version is the highest state version written or verified: no row
	// may claim a later one.
	version atomic.Uint64

	mu        sync.Mutex // guards the cached head (writers are serialized by the backend)
	cachedRaw []byte
	cached    *head

	migrated int // rows migrated from format 1 by Open
}

const (
	valueVersionV1 = 0x01
	valueVersion   = 0x02
	nonceSize      = 12
	sealedHeader   = 1 + 8 + nonceSize
	metaBucket     = "_store"
	canaryKey      = "canary"
	headKey        = "head"
	canaryText     = "ppml store canary v1"
)

// Options tune Open.
type Options struct {
	// Existing says the database must already hold a state: an empty one
	// (a missing or replaced file) is refused instead of initialised. The
	// key service sets it for every start but the first.
	Existing bool
	// Now is the clock recorded in the state head (default time.Now).
	Now func() time.Time
	// Describe names a bucket for operators ("API tokens") in StateError.
	Describe func(bucket string) string
	// Explain names what is missing or wrong in a bucket that failed the
	// state check, in words an operator understands (for example "the
	// bootstrap marker meta/bootstrapped was deleted"). tx reads the
	// database (values that fail authentication return errors); present
	// reports whether a row exists at all, without reading it.
	Explain func(db *DB, tx Tx, bucket string, present func(key []byte) bool) []string
}

// Open returns the encrypted store over backend, whose values are sealed
// under keys derived from rootKey (32 bytes), after checking the whole
// state against its authenticated head. A database written by the
// previous format (values of format 1, no head) is migrated in one
// transaction (Migrated says how many rows). A database written under
// another root key is refused with ErrWrongRootKey; one whose rows do not
// match the head with a *StateError. Closing the DB closes the backend; on
// error the backend is left open.
func Open(backend Store, rootKey []byte, opts *Options) (*DB, error) {
	if len(rootKey) != 32 {
		return nil, fmt.Errorf("store: root key is %d bytes, want 32", len(rootKey))
	}
	db := &DB{inner: backend}
	if opts != nil {
		db.opts = *opts
	}
	if db.opts.Now == nil {
		db.opts.Now = time.Now
	}
	var err error
	if db.aead, err = deriveAEAD(rootKey, "ppml store value key v2"); err != nil {
		return nil, err
	}
	if db.aeadV1, err = deriveAEAD(rootKey, "ppml store value key v1"); err != nil {
		return nil, err
	}
	if db.blind, err = hkdf.Key(sha256.New, rootKey, nil, "ppml store blind index key v1", 32); err != nil {
		return nil, fmt.Errorf("store: derive index key: %w", err)
	}
	if db.stateKey, err = hkdf.Key(sha256.New, rootKey, nil, "ppml store state key v2", 32); err != nil {
		return nil, fmt.Errorf("store: derive state key: %w", err)
	}
	if err := db.load(); err != nil {
		return nil, err
	}
	return db, nil
}

func deriveAEAD(rootKey []byte, label string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, rootKey, nil, label, 32)
	if err != nil {
		return nil, fmt.Errorf("store: derive value key: %w", err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Migrated is the number of rows Open migrated from the previous format
// (0 when the database was already current).
func (db *DB) Migrated() int { return db.migrated }

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(Tx) error) error {
	return db.inner.View(func(t Tx) error { return fn(&encTx{inner: t, db: db}) })
}

// Update runs fn in a read-write transaction (see Store.Update). The state
// head is updated in the same transaction when fn wrote anything.
func (db *DB) Update(fn func(Tx) error) error {
	return db.inner.Update(db.writeFn(fn))
}

// Batch runs fn in a possibly shared read-write transaction (see
// Store.Batch). Each fn of a shared transaction advances the state version
// by one, so the head is right whichever of them commit.
func (db *DB) Batch(fn func(Tx) error) error {
	return db.inner.Batch(db.writeFn(fn))
}

func (db *DB) writeFn(fn func(Tx) error) func(Tx) error {
	return func(t Tx) error {
		tx := &encTx{inner: t, db: db}
		if err := fn(tx); err != nil {
			return err
		}
		return tx.commitHead()
	}
}

// Backup writes a consistent copy of the whole database to w. The copy is
// as encrypted as the database, carries its own state head, and opens
// only with the same root key.
func (db *DB) Backup(w io.Writer) (int64, error) {
	n, err := db.inner.Backup(w)
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// BackupFile writes a backup to path atomically (package atomicfile: temp
// file, fsync, rename), replacing an existing regular file.
func (db *DB) BackupFile(path string) error {
	f, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: true})
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer f.Abort()
	if _, err := db.Backup(f); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// Compact rewrites the backend's file with only the live rows, when the
// backend can (Compacter), so that overwritten and deleted values (such as
// destroyed key material) no longer exist in the file or in backups taken
// afterwards. It reports whether the backend compacted.
func (db *DB) Compact() (bool, error) {
	c, ok := db.inner.(Compacter)
	if !ok {
		return false, nil
	}
	if err := c.Compact(); err != nil {
		return false, fmt.Errorf("store: compact: %w", err)
	}
	return true, nil
}

// Close closes the backend.
func (db *DB) Close() error { return db.inner.Close() }

// Blind maps a sensitive name to a fixed-size, keyed, one-way index key
// (HMAC-SHA256 under a key derived from the root key), for indexes whose
// keys would otherwise reveal names at rest.
func (db *DB) Blind(name []byte) []byte {
	m := hmac.New(sha256.New, db.blind)
	m.Write(name)
	return m.Sum(nil)
}

func (db *DB) seal(bucket string, key []byte, version uint64, plaintext []byte) ([]byte, error) {
	out := make([]byte, sealedHeader, sealedHeader+len(plaintext)+db.aead.Overhead())
	out[0] = valueVersion
	binary.BigEndian.PutUint64(out[1:9], version)
	if _, err := rand.Read(out[9:sealedHeader]); err != nil {
		return nil, fmt.Errorf("store: nonce: %w", err)
	}
	return db.aead.Seal(out, out[9:sealedHeader], plaintext, aad(bucket, key, version)), nil
}

// writtenVersion is the state version a sealed value claims (format 2).
func writtenVersion(sealed []byte) (uint64, bool) {
	if len(sealed) < sealedHeader || sealed[0] != valueVersion {
		return 0, false
	}
	return binary.BigEndian.Uint64(sealed[1:9]), true
}

// open decrypts a value sealed for bucket/key no later than state version
// max. The error names the bucket and key but never the value.
func (db *DB) open(bucket string, key, sealed []byte, max uint64) ([]byte, error) {
	where := bucket + "/" + Printable(key)
	if len(sealed) > 0 && sealed[0] == valueVersionV1 {
		return nil, fmt.Errorf("store: %s: value of format 1 (written by an earlier version of ppml) in a database of format 2: it was copied in from an older copy of the database", where)
	}
	v, ok := writtenVersion(sealed)
	if !ok || len(sealed) < sealedHeader+db.aead.Overhead() {
		return nil, fmt.Errorf("store: %s: not a sealed value of format %d (%d bytes)", where, valueVersion, len(sealed))
	}
	pt, err := db.aead.Open(nil, sealed[9:sealedHeader], sealed[sealedHeader:], aad(bucket, key, v))
	if err != nil {
		return nil, fmt.Errorf("store: %s: value failed authentication (tampered, moved from another row, or another root key)", where)
	}
	if v > max {
		clear(pt)
		return nil, fmt.Errorf("store: %s: value claims state version %d, later than the state (%d): it was copied in from a later copy of the database", where, v, max)
	}
	return pt, nil
}

func aad(bucket string, key []byte, version uint64) []byte {
	a := make([]byte, 0, 14+8+4+len(bucket)+len(key))
	a = append(a, "ppml-store-v2\x00"...)
	a = binary.BigEndian.AppendUint64(a, version)
	a = binary.BigEndian.AppendUint32(a, uint32(len(bucket)))
	a = append(a, bucket...)
	return append(a, key...)
}

// encTx is a transaction whose values are sealed and opened by db, and
// whose writes update the state head.
type encTx struct {
	inner Tx
	db    *DB
	st    *txState // set by the first write
}

func reserved(bucket string) bool { return strings.HasPrefix(bucket, "_") }

func (tx *encTx) Writable() bool { return tx.inner.Writable() }

// maxVersion is the latest state version a value read in tx may claim.
func (tx *encTx) maxVersion() uint64 {
	if tx.st != nil {
		return tx.st.next
	}
	return tx.db.version.Load()
}

// Get returns a copy of the decrypted value of bucket/key, or ErrNotFound.
func (tx *encTx) Get(bucket string, key []byte) ([]byte, error) {
	if err := CheckBucket(bucket); err != nil {
		return nil, err
	}
	v, err := tx.inner.Get(bucket, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, bucket, Printable(key))
		}
		return nil, err
	}
	return tx.db.open(bucket, key, v, tx.maxVersion())
}

// Put encrypts value and stores it at bucket/key.
func (tx *encTx) Put(bucket string, key, value []byte) error {
	if reserved(bucket) {
		return fmt.Errorf("store: bucket %q: names starting with _ are reserved", bucket)
	}
	return tx.put(bucket, key, value)
}

func (tx *encTx) put(bucket string, key, value []byte) error {
	if err := CheckBucket(bucket); err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("store: empty key")
	}
	if bucket == metaBucket && string(key) == headKey {
		return errors.New("store: the state head is written by the store only")
	}
	st, err := tx.state()
	if err != nil {
		return err
	}
	sealed, err := tx.db.seal(bucket, key, st.next, value)
	if err != nil {
		return err
	}
	old, err := tx.raw(bucket, key)
	if err != nil {
		return err
	}
	if err := tx.inner.Put(bucket, key, sealed); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", bucket, Printable(key), err)
	}
	st.replace(bucket, key, old, sealed)
	return nil
}

// looker is a backend transaction that finds a row without making an
// error for a missing one (boltstore's does).
type looker interface {
	Lookup(bucket string, key []byte) ([]byte, error)
}

// raw returns the stored (sealed) value of bucket/key, nil when absent.
func (tx *encTx) raw(bucket string, key []byte) ([]byte, error) {
	if l, ok := tx.inner.(looker); ok {
		return l.Lookup(bucket, key)
	}
	v, err := tx.inner.Get(bucket, key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func (tx *encTx) Delete(bucket string, key []byte) error {
	if reserved(bucket) {
		return fmt.Errorf("store: bucket %q: names starting with _ are reserved", bucket)
	}
	return tx.del(bucket, key)
}

func (tx *encTx) del(bucket string, key []byte) error {
	old, err := tx.raw(bucket, key)
	if err != nil || old == nil {
		return err
	}
	st, err := tx.state()
	if err != nil {
		return err
	}
	if err := tx.inner.Delete(bucket, key); err != nil {
		return err
	}
	st.replace(bucket, key, old, nil)
	return nil
}

// Scan calls fn with each key (a copy) and its decrypted value. A value
// that fails to decrypt stops the iteration with its error.
func (tx *encTx) Scan(bucket string, prefix, start []byte, fn func(key, value []byte) error) error {
	max := tx.maxVersion()
	return tx.inner.Scan(bucket, prefix, start, func(k, v []byte) error {
		pt, err := tx.db.open(bucket, k, v, max)
		if err != nil {
			return err
		}
		return fn(append([]byte(nil), k...), pt)
	})
}

// Keys calls fn with each key (a copy), without reading its value.
func (tx *encTx) Keys(bucket string, prefix, start []byte, fn func(key []byte) error) error {
	return tx.inner.Keys(bucket, prefix, start, func(k []byte) error { return fn(append([]byte(nil), k...)) })
}

// Buckets lists every bucket.
func (tx *encTx) Buckets(fn func(bucket string) error) error { return tx.inner.Buckets(fn) }

// Namespace returns tx confined to the buckets under name: bucket b of the
// returned transaction is bucket name+"/"+b of tx. name must start with "_"
// (and not be DB's own "_store"): that is how a subsystem keeping its own
// records in the same transactions as the state, such as the audit log,
// writes under a reserved name that no state bucket can collide with.
func Namespace(tx Tx, name string) Tx {
	return &nsTx{inner: tx, prefix: name + "/", name: name}
}

type nsTx struct {
	inner        Tx
	prefix, name string
}

func (n *nsTx) check() error {
	if !reserved(n.name) || n.name == metaBucket || strings.Contains(n.name, "/") {
		return fmt.Errorf("store: namespace %q: want a name starting with _ other than %s", n.name, metaBucket)
	}
	return nil
}

func (n *nsTx) Writable() bool { return n.inner.Writable() }

func (n *nsTx) Get(bucket string, key []byte) ([]byte, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	return n.inner.Get(n.prefix+bucket, key)
}

func (n *nsTx) Put(bucket string, key, value []byte) error {
	if err := n.check(); err != nil {
		return err
	}
	if e, ok := n.inner.(*encTx); ok {
		return e.put(n.prefix+bucket, key, value)
	}
	return n.inner.Put(n.prefix+bucket, key, value)
}

func (n *nsTx) Delete(bucket string, key []byte) error {
	if err := n.check(); err != nil {
		return err
	}
	if e, ok := n.inner.(*encTx); ok {
		return e.del(n.prefix+bucket, key)
	}
	return n.inner.Delete(n.prefix+bucket, key)
}

func (n *nsTx) Scan(bucket string, prefix, start []byte, fn func(key, value []byte) error) error {
	if err := n.check(); err != nil {
		return err
	}
	return n.inner.Scan(n.prefix+bucket, prefix, start, fn)
}

func (n *nsTx) Keys(bucket string, prefix, start []byte, fn func(key []byte) error) error {
	if err := n.check(); err != nil {
		return err
	}
	return n.inner.Keys(n.prefix+bucket, prefix, start, fn)
}

func (n *nsTx) Buckets(fn func(bucket string) error) error {
	if err := n.check(); err != nil {
		return err
	}
	return n.inner.Buckets(func(b string) error {
		if rest, ok := strings.CutPrefix(b, n.prefix); ok {
			return fn(rest)
		}
		return nil
	})
}
