// Package boltstore is the bbolt backend of package store: one file, B+tree
// buckets, serializable transactions. It is the only package of ppml that
// imports bbolt.
//
// A bucket path "a/b" is bucket b nested in bucket a, so the audit log's
// buckets ("_audit/entries", ...) sit under one top-level "_audit" bucket.
// Update and Batch commit with fsync: a crash loses no acknowledged write
// and shows no half-written one. Batch is bbolt's group commit.
package boltstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ppml/ppml/store"
)

// Options tune Open.
type Options struct {
	// Timeout for acquiring the database file lock (another process holds
	// it while it runs). Default 5 s.
	Timeout time.Duration
}

// Store is a bbolt database file.
type Store struct {
	path string
	// mu is held shared by every transaction and exclusively by Compact,
	// which replaces db.
	mu sync.RWMutex
	db *bbolt.DB
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database file at path (mode 0600, its
// directory 0700 when created).
func Open(path string, opts *Options) (*Store, error) {
	timeout := 5 * time.Second
	if opts != nil && opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: %w (another process, such as a running key service, holds it)", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Store{path: path, db: db}, nil
}

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("the database is locked")

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(store.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Update runs fn in a read-write transaction, committed with fsync.
func (s *Store) Update(fn func(store.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Update(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Batch runs fn in a transaction shared with concurrent Batch calls (bbolt's DB.Batch).
func (s *Store) Batch(fn func(store.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Batch(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Backup writes a consistent copy of the database file (bbolt's
// Tx.WriteTo in a read transaction); the copy opens with Open.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.View(func(t store.Tx) error {
		var err error
		n, err = t.(*tx).t.WriteTo(w)
		return err
	})
	return n, err
}

// Compact rewrites the file with the live data only (bbolt.Compact into a
// new file beside it, fsync, rename over the old one, fsync of the
// directory), so that free pages — which keep the bytes of overwritten
// and deleted values, and which backups copy — are gone. Transactions
// wait while it runs; on error the old file stays in use.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tmp := s.path + ".compact"
	os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := bbolt.Compact(dst, s.db, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	// From here the old handle is closed: reopen whichever file is in place.
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", err)
	}
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		renameErr = syncDir(filepath.Dir(s.path))
	} else {
		os.Remove(tmp)
	}
	db, err := bbolt.Open(s.path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("store: compact: reopen %s: %w", s.path, err)
	}
	s.db = db
	if renameErr != nil {
		return fmt.Errorf("store: compact: %w", renameErr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

type tx struct{ t *bbolt.Tx }

func (x *tx) Writable() bool { return x.t.Writable() }

// bucket resolves a bucket path; nil (and no error) when it does not exist
// and create is false.
func (x *tx) bucket(path string, create bool) (*bbolt.Bucket, error) {
	if err := store.CheckBucket(path); err != nil {
		return nil, err
	}
	var b *bbolt.Bucket
	rest := path
	for i := 0; rest != ""; i++ {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		name := []byte(seg)
		var err error
		switch {
		case create && i == 0:
			b, err = x.t.CreateBucketIfNotExists(name)
		case create:
			b, err = b.CreateBucketIfNotExists(name)
		case i == 0:
			b = x.t.Bucket(name)
		default:
			b = b.Bucket(name)
		}
		if err != nil {
			return nil, fmt.Errorf("store: bucket %s: %w", path, err)
		}
		if b == nil {
			return nil, nil
		}
	}
	return b, nil
}

func (x *tx) Get(bucket string, key []byte) ([]byte, error) {
	b, err := x.bucket(bucket, false)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %s", store.ErrNotFound, bucket)
	}
	v := b.Get(key)
	if v == nil {
		return nil, fmt.Errorf("%w: %s/%s", store.ErrNotFound, bucket, store.Printable(key))
	}
	return v, nil
}

// Lookup is Get without an error for a missing bucket or key (nil, nil):
// the encrypted store looks up the row a write replaces on every write.
func (x *tx) Lookup(bucket string, key []byte) ([]byte, error) {
	b, err := x.bucket(bucket, false)
	if err != nil || b == nil {
		return nil, err
	}
	return b.Get(key), nil
}

func (x *tx) Put(bucket string, key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("store: put in %s: empty key", bucket)
	}
	b, err := x.bucket(bucket, true)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{} // bbolt reads a nil value back as "no key"
	}
	return b.Put(key, value)
}

func (x *tx) Delete(bucket string, key []byte) error {
	b, err := x.bucket(bucket, false)
	if err != nil || b == nil {
		return err
	}
	return b.Delete(key)
}

func (x *tx) Scan(bucket string, prefix, start []byte, fn func(key, value []byte) error) error {
	b, err := x.bucket(bucket, false)
	if err != nil || b == nil {
		return err
	}
	seek := prefix
	if string(start) > string(prefix) {
		seek = start
	}
	c := b.Cursor()
	for k, v := c.Seek(seek); k != nil && store.HasPrefix(k, prefix); k, v = c.Next() {
		if v == nil { // a nested bucket
			continue
		}
		if err := fn(k, v); err != nil {
			if errors.Is(err, store.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (x *tx) Keys(bucket string, prefix, start []byte, fn func(key []byte) error) error {
	return x.Scan(bucket, prefix, start, func(k, _ []byte) error { return fn(k) })
}

// Buckets lists every bucket path, depth first in key order.
func (x *tx) Buckets(fn func(bucket string) error) error {
	var walk func(prefix string, b *bbolt.Bucket) error
	walk = func(prefix string, b *bbolt.Bucket) error {
		return b.ForEachBucket(func(k []byte) error {
			name := prefix + string(k)
			if err := fn(name); err != nil {
				return err
			}
			return walk(name+"/", b.Bucket(k))
		})
	}
	return x.t.ForEach(func(name []byte, b *bbolt.Bucket) error {
		if err := fn(string(name)); err != nil {
			return err
		}
		return walk(string(name)+"/", b)
	})
}
