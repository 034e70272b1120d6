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

	"github.com/ppml/ppml/atomicfile"
)

// DB is a Store whose values are encrypted, on top of any backend Store.
//
// Values are sealed with AES-256-GCM under a key derived from the root key,
// one random nonce per write, with the bucket name and key as associated
// data, so a value copied to another key or bucket fails to open. Sealed
// value layout:
//
//	version (1 byte, 0x01) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// with associated data "ppml-store-v1" 0x00 | version | uint32 len(bucket) | bucket | key.
//
// Random 96-bit nonces are safe for about 2^32 writes under one root key;
// a key service writes orders of magnitude less than that in its lifetime.
//
// Bucket names whose first segment starts with "_" are reserved: "_store"
// holds DB's own records, and a subsystem that keeps records in the same
// transactions as the state (the audit log, "_audit") writes them through
// Namespace. Put and Delete refuse reserved names otherwise.
type DB struct {
	inner Store
	aead  cipher.AEAD
	blind []byte
}

const (
	valueVersion = 0x01
	nonceSize    = 12
	metaBucket   = "_store"
	canaryKey    = "canary"
	canaryText   = "ppml store canary v1"
)

// Open returns the encrypted store over backend, whose values are sealed
// under keys derived from rootKey (32 bytes). A database written under
// another root key is refused with ErrWrongRootKey. Closing the DB closes
// the backend; on error the backend is left open.
func Open(backend Store, rootKey []byte) (*DB, error) {
	if len(rootKey) != 32 {
		return nil, fmt.Errorf("store: root key is %d bytes, want 32", len(rootKey))
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
	db := &DB{inner: backend, aead: aead, blind: blindKey}
	if err := db.checkCanary(); err != nil {
		return nil, err
	}
	return db, nil
}

// checkCanary writes a known value on first open and checks it afterwards,
// so a wrong root key is reported at open and not as scattered decryption
// failures later.
func (db *DB) checkCanary() error {
	return db.Update(func(t Tx) error {
		tx := t.(*encTx)
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

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(Tx) error) error {
	return db.inner.View(func(t Tx) error { return fn(&encTx{inner: t, db: db}) })
}

// Update runs fn in a read-write transaction (see Store.Update).
func (db *DB) Update(fn func(Tx) error) error {
	return db.inner.Update(func(t Tx) error { return fn(&encTx{inner: t, db: db}) })
}

// Batch runs fn in a possibly shared read-write transaction (see Store.Batch).
func (db *DB) Batch(fn func(Tx) error) error {
	return db.inner.Batch(func(t Tx) error { return fn(&encTx{inner: t, db: db}) })
}

// Backup writes a consistent copy of the whole database to w. The copy is
// as encrypted as the database: restoring it needs the same root key.
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

func (db *DB) seal(bucket string, key, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+db.aead.Overhead())
	out[0] = valueVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("store: nonce: %w", err)
	}
	return db.aead.Seal(out, out[1:1+nonceSize], plaintext, aad(bucket, key)), nil
}

// open decrypts a value sealed for bucket/key. The error names the bucket
// and key but never the value.
func (db *DB) open(bucket string, key, sealed []byte) ([]byte, error) {
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

func aad(bucket string, key []byte) []byte {
	a := make([]byte, 0, 14+1+4+len(bucket)+len(key))
	a = append(a, "ppml-store-v1\x00"...)
	a = append(a, valueVersion)
	a = binary.BigEndian.AppendUint32(a, uint32(len(bucket)))
	a = append(a, bucket...)
	return append(a, key...)
}

// encTx is a transaction whose values are sealed and opened by db.
type encTx struct {
	inner Tx
	db    *DB
}

func reserved(bucket string) bool { return strings.HasPrefix(bucket, "_") }

func (tx *encTx) Writable() bool { return tx.inner.Writable() }

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
	return tx.db.open(bucket, key, v)
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
	sealed, err := tx.db.seal(bucket, key, value)
	if err != nil {
		return err
	}
	if err := tx.inner.Put(bucket, key, sealed); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", bucket, Printable(key), err)
	}
	return nil
}

func (tx *encTx) Delete(bucket string, key []byte) error {
	if reserved(bucket) {
		return fmt.Errorf("store: bucket %q: names starting with _ are reserved", bucket)
	}
	return tx.inner.Delete(bucket, key)
}

// Scan calls fn with each key (a copy) and its decrypted value. A value
// that fails to decrypt stops the iteration with its error.
func (tx *encTx) Scan(bucket string, prefix, start []byte, fn func(key, value []byte) error) error {
	return tx.inner.Scan(bucket, prefix, start, func(k, v []byte) error {
		pt, err := tx.db.open(bucket, k, v)
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
		return e.inner.Delete(n.prefix+bucket, key)
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
