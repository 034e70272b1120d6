// Package store is the key service's storage: Store, a small interface over
// a transactional, ordered key-value database of named buckets, and DB, the
// layer through which the key service uses any such database. DB encrypts
// every value under a key derived from the root key (see encrypted.go), so
// a backend only ever holds ciphertext and need not be trusted with
// confidentiality or integrity of single values.
//
// bbolt is the first backend (package store/boltstore); nothing else in
// ppml imports bbolt. A backend implements Store and Tx with opaque byte
// values; DB implements the same interfaces on top of it, like a
// decorator, and is what the key-service core and its audit log write to:
//
//	backend, err := boltstore.Open(path, nil)
//	db, err := store.Open(backend, rootKey, nil)
//	err = db.Update(func(tx store.Tx) error {
//		return tx.Put("keys", id, record)
//	})
//
// Bucket names are paths of one or more non-empty segments separated by
// "/" ("keys", "_audit/entries"); a backend may nest them (bbolt does) or
// flatten them. Bucket names and keys are stored in the clear: callers must
// not put secrets in them (DB.Blind makes index keys from sensitive names).
package store

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Store is a transactional, ordered key-value store of named buckets.
type Store interface {
	// View runs fn in a read-only transaction: a consistent snapshot.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction. It commits durably
	// (a crash afterwards loses nothing) when fn returns nil and rolls back
	// otherwise; a crash before the commit leaves no trace of it. Update
	// transactions are serialized.
	Update(fn func(Tx) error) error
	// Batch is Update whose commit may be shared with concurrent Batch
	// calls, so that many small writes pay for one durable commit. It
	// returns once the shared transaction committed. fn may run more than
	// once (when another function in the batch fails) and must act only
	// through its transaction.
	Batch(fn func(Tx) error) error
	// Backup writes a consistent copy of the whole database to w while it
	// stays online, in the backend's own file format.
	Backup(w io.Writer) (int64, error)
	// Close releases the database.
	Close() error
}

// Tx is a transaction of a Store. Keys and values passed to its callbacks
// and returned by Get are valid only until the transaction ends unless the
// implementation says otherwise (DB returns fresh copies).
type Tx interface {
	// Get returns the value of bucket/key, or an error wrapping
	// ErrNotFound when the bucket or the key does not exist.
	Get(bucket string, key []byte) ([]byte, error)
	// Put stores value at bucket/key, creating the bucket. The key must
	// not be empty.
	Put(bucket string, key, value []byte) error
	// Delete removes bucket/key; deleting what is not there is no error.
	Delete(bucket string, key []byte) error
	// Scan calls fn, in key order, for every key of bucket that starts with
	// prefix and is not before start (nil: from the first such key), with
	// its value. fn returning ErrStop ends the scan without an error; any
	// other error ends it with that error. A missing bucket has no keys.
	Scan(bucket string, prefix, start []byte, fn func(key, value []byte) error) error
	// Keys is Scan without the values, for indexes whose keys are the
	// data: DB does not decrypt (or authenticate) what it does not read.
	Keys(bucket string, prefix, start []byte, fn func(key []byte) error) error
	// Buckets calls fn with the name of every bucket, nested ones as
	// paths ("_audit/entries"), in order. DB uses it to check the whole
	// state against its authenticated head.
	Buckets(fn func(bucket string) error) error
	// Writable reports whether this is an Update or Batch transaction.
	Writable() bool
}

// Compacter is a Store that can rewrite its file with only the live data,
// so that nothing deleted or overwritten survives in free space (and in
// backups taken afterwards). The store stays usable; transactions wait
// while it runs.
type Compacter interface {
	Compact() error
}

var (
	// ErrNotFound is wrapped by Get for a missing bucket or key.
	ErrNotFound = errors.New("store: not found")
	// ErrStop ends a Scan or Keys iteration early, without an error.
	ErrStop = errors.New("store: stop iteration")
	// ErrWrongRootKey means the database was encrypted under another root key.
	ErrWrongRootKey = errors.New("store: the database was encrypted under a different root key")
)

// CheckBucket says why name is not a bucket name: empty, or with an empty
// path segment. Backends call it.
func CheckBucket(name string) error {
	if name == "" {
		return errors.New("store: empty bucket name")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" {
			return fmt.Errorf("store: bucket name %q has an empty segment", name)
		}
	}
	return nil
}

// HasPrefix reports whether key starts with prefix (for backends' scans).
func HasPrefix(key, prefix []byte) bool {
	return len(key) >= len(prefix) && string(key[:len(prefix)]) == string(prefix)
}

// Printable shows a key in an error: as text when it is printable ASCII,
// else as hex.
func Printable(k []byte) string {
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", k)
		}
	}
	return string(k)
}
