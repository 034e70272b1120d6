// Package store is the key service's embedded database: bbolt with every
// value encrypted under a key derived from the root key.
//
// Values are sealed with AES-256-GCM, one random nonce per write, and the
// bucket name and key as associated data, so a value copied to another key
// or bucket fails to open. Bucket names and keys are stored in the clear:
// callers must not put secrets in them (use Blind for an index keyed by a
// sensitive name). Sealed value layout:
//
//	version (1 byte, 0x01) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// with associated data "ppml-store-v1" 0x00 | version | uint32 len(bucket) | bucket | key.
//
// Transactions are bbolt's: Update commits with fsync (a crash loses no
// acknowledged write and shows no half-written one), and a *Tx exposes the
// underlying *bbolt.Tx so that other packages (the audit log) can write in
// the same transaction as the state change they record.
//
// Random 96-bit nonces are safe for about 2^32 writes under one root key;
// a key service writes orders of magnitude less than that in its lifetime.
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
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ppml/ppml/atomicfile"
)

const (
	valueVersion = 0x01
	nonceSize    = 12
	// metaBucket holds the store's own records. Names starting with "_" are
	// reserved for the store and for packages that keep their own buckets in
	// the same database (the audit log's "_audit"); Put refuses them.
	metaBucket = "_store"
	canaryKey  = "canary"
	canaryText = "ppml store canary v1"
)

var (
	// ErrNotFound is returned by Get for a missing bucket or key.
	ErrNotFound = errors.New("store: not found")
	// ErrWrongRootKey means the database was created under another root key.
	ErrWrongRootKey = errors.New("store: the database was encrypted under a different root key")
)

// Options tune Open.
type Options struct {
	// Timeout for acquiring the database file lock (another process holds
	// it while it runs). Default 5 s.
	Timeout time.Duration
}

// DB is an open store.
type DB struct {
	bolt  *bbolt.DB
	aead  cipher.AEAD
	blind []byte
}

// Open opens or creates the database at path with the given root key.
// A database created under another root key is refused with ErrWrongRootKey.
func Open(path string, rootKey []byte, opts *Options) (*DB, error) {
	if len(rootKey) != 32 {
		return nil, fmt.Errorf("store: root key is %d bytes, want 32", len(rootKey))
	}
	timeout := 5 * time.Second
	if opts != nil && opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	encKey, err := hkdf.Key(sha256.New, rootKey, nil, "ppml store value key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("store: derive value key: %w", err)
	}
	defer clear(encKey)
	blindKey, err := hkdf.Key(sha256.New, rootKey, nil, "ppml store blind index key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("store: derive index key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{bolt: b, aead: aead, blind: blindKey}
	if err := db.checkCanary(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// checkCanary writes a known value on first open and checks it afterwards,
// so a wrong root key is reported at open and not as scattered decryption
// failures later.
func (db *DB) checkCanary() error {
	return db.bolt.Update(func(btx *bbolt.Tx) error {
		tx := &Tx{b: btx, db: db}
		got, err := tx.Get(metaBucket, []byte(canaryKey))
		switch {
		case errors.Is(err, ErrNotFound):
			return tx.put(metaBucket, []byte(canaryKey), []byte(canaryText))
		case err != nil:
			return fmt.Errorf("%w (%v)", ErrWrongRootKey, err)
		case string(got) != canaryText:
			return ErrWrongRootKey
		}
		return nil
	})
}

// Close closes the database.
func (db *DB) Close() error { return db.bolt.Close() }

// Bolt returns the underlying database, for read-only inspection and for
// packages that manage their own buckets (the audit log).
func (db *DB) Bolt() *bbolt.DB { return db.bolt }

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(b *bbolt.Tx) error { return fn(&Tx{b: b, db: db}) })
}

// Update runs fn in a read-write transaction; it commits (with fsync) when
// fn returns nil and rolls back otherwise. Only one Update runs at a time.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bolt.Update(func(b *bbolt.Tx) error { return fn(&Tx{b: b, db: db}) })
}

// Batch runs fn in a read-write transaction that may be shared with other
// concurrent Batch calls, so that many small writes share one commit and one
// fsync (bbolt's DB.Batch). It returns only after the shared transaction
// committed. fn may run more than once (when another function in the batch
// fails) and must therefore only act through tx.
func (db *DB) Batch(fn func(*Tx) error) error {
	return db.bolt.Batch(func(b *bbolt.Tx) error { return fn(&Tx{b: b, db: db}) })
}

// Backup writes a consistent copy of the whole database to w while the
// database stays online (bbolt's Tx.WriteTo in a read transaction). The copy
// is as encrypted as the database: restoring it needs the same root key.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
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

// SealValue encrypts a value for bucket/key. It is exported for packages that
// keep their own bbolt buckets in the same database (the audit log); the
// bucket name is only associated data and need not be a bbolt bucket name.
func (db *DB) SealValue(bucket string, key, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+db.aead.Overhead())
	out[0] = valueVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("store: nonce: %w", err)
	}
	return db.aead.Seal(out, out[1:1+nonceSize], plaintext, aad(bucket, key)), nil
}

// OpenValue decrypts a value sealed for bucket/key. The error names the bucket
// and key but never the value.
func (db *DB) OpenValue(bucket string, key, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+nonceSize+db.aead.Overhead() {
		return nil, fmt.Errorf("store: %s/%x: sealed value of %d bytes is too short", bucket, key, len(sealed))
	}
	if sealed[0] != valueVersion {
		return nil, fmt.Errorf("store: %s/%x: value format version %d is not supported", bucket, key, sealed[0])
	}
	pt, err := db.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], aad(bucket, key))
	if err != nil {
		return nil, fmt.Errorf("store: %s/%x: value failed authentication (tampered, moved from another key, or another root key)", bucket, key)
	}
	return pt, nil
}

// Blind maps a sensitive name to a fixed-size, keyed, one-way index key
// (HMAC-SHA256 under a key derived from the root key), for indexes whose
// keys would otherwise reveal names at rest.
func (db *DB) Blind(name []byte) []byte {
	m := hmac.New(sha256.New, db.blind)
	m.Write(name)
	return m.Sum(nil)
}

func aad(bucket string, key []byte) []byte {
	a := make([]byte, 0, 14+1+4+len(bucket)+len(key))
	a = append(a, "ppml-store-v1\x00"...)
	a = append(a, valueVersion)
	a = binary.BigEndian.AppendUint32(a, uint32(len(bucket)))
	a = append(a, bucket...)
	return append(a, key...)
}

// Tx is a transaction whose Get and Put encrypt and decrypt.
type Tx struct {
	b  *bbolt.Tx
	db *DB
}

// Bolt returns the underlying bbolt transaction, so other packages (the
// audit log) can write in this same transaction.
func (tx *Tx) Bolt() *bbolt.Tx { return tx.b }

// DB returns the store the transaction belongs to (for SealValue, OpenValue, Blind).
func (tx *Tx) DB() *DB { return tx.db }

// Writable reports whether this is an Update transaction.
func (tx *Tx) Writable() bool { return tx.b.Writable() }

func checkBucket(name string) error {
	if name == "" {
		return errors.New("store: empty bucket name")
	}
	return nil
}

// Get returns a copy of the decrypted value of bucket/key, or ErrNotFound.
func (tx *Tx) Get(bucket string, key []byte) ([]byte, error) {
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	b := tx.b.Bucket([]byte(bucket))
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %s", ErrNotFound, bucket)
	}
	v := b.Get(key)
	if v == nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, bucket, printable(key))
	}
	return tx.db.OpenValue(bucket, key, v)
}

// Put encrypts value and stores it at bucket/key, creating the bucket.
// Names starting with "_" are reserved for the store.
func (tx *Tx) Put(bucket string, key, value []byte) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("store: empty key")
	}
	if strings.HasPrefix(bucket, "_") {
		return fmt.Errorf("store: bucket %q: names starting with _ are reserved", bucket)
	}
	return tx.put(bucket, key, value)
}

func (tx *Tx) put(bucket string, key, value []byte) error {
	b, err := tx.b.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("store: bucket %s: %w", bucket, err)
	}
	sealed, err := tx.db.SealValue(bucket, key, value)
	if err != nil {
		return err
	}
	if err := b.Put(key, sealed); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", bucket, printable(key), err)
	}
	return nil
}

// Delete removes bucket/key; deleting what is not there is not an error.
func (tx *Tx) Delete(bucket string, key []byte) error {
	b := tx.b.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete(key)
}

// ForEach calls fn for every key of bucket in key order with the decrypted
// value. A value that fails to decrypt stops the iteration with its error.
func (tx *Tx) ForEach(bucket string, fn func(key, value []byte) error) error {
	return tx.Scan(bucket, nil, fn)
}

// Scan calls fn, in key order, for every key of bucket that starts with prefix.
func (tx *Tx) Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	b := tx.b.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if v == nil { // nested bucket
			continue
		}
		pt, err := tx.db.OpenValue(bucket, k, v)
		if err != nil {
			return err
		}
		if err := fn(append([]byte(nil), k...), pt); err != nil {
			return err
		}
	}
	return nil
}

func hasPrefix(k, p []byte) bool { return len(k) >= len(p) && string(k[:len(p)]) == string(p) }

// printable shows a key in an error: as text when it is printable ASCII, else hex.
func printable(k []byte) string {
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", k)
		}
	}
	return string(k)
}
