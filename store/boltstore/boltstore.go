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
	"time"

	"go.etcd.io/bbolt"

	"github.com/ppml/ppml/store"
)

// Options tune Open.
type Options struct {
	// Timeout for acquiring the database file lock (another process holds
	// it while it runs). Default 5 s.
	Timeout time.Duration
}

// Store is a bbolt database file.
type Store struct{ db *bbolt.DB }

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
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(store.Tx) error) error {
	return s.db.View(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Update runs fn in a read-write transaction, committed with fsync.
func (s *Store) Update(fn func(store.Tx) error) error {
	return s.db.Update(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Batch runs fn in a transaction shared with concurrent Batch calls (bbolt's DB.Batch).
func (s *Store) Batch(fn func(store.Tx) error) error {
	return s.db.Batch(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Backup writes a consistent copy of the database file (bbolt's
// Tx.WriteTo in a read transaction); the copy opens with Open.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(t *bbolt.Tx) error {
		var err error
		n, err = t.WriteTo(w)
		return err
	})
	return n, err
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

type tx struct{ t *bbolt.Tx }

func (x *tx) Writable() bool { return x.t.Writable() }

// bucket resolves a bucket path; nil (and no error) when it does not exist
// and create is false.
func (x *tx) bucket(path string, create bool) (*bbolt.Bucket, error) {
	if err := store.CheckBucket(path); err != nil {
		return nil, err
	}
	var b *bbolt.Bucket
	for i, seg := range strings.Split(path, "/") {
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
