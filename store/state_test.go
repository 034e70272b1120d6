package store_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// stateDB is an encrypted store in a file that the test closes, edits at
// the backend level (as someone holding the file but not the root key
// could) and opens again.
type stateDB struct {
	t    *testing.T
	path string
	key  []byte
	opts *store.Options
}

func newStateDB(t *testing.T, opts *store.Options) *stateDB {
	s := &stateDB{t: t, path: filepath.Join(t.TempDir(), "ppml.db"), key: newKey(), opts: opts}
	s.update(func(tx store.Tx) error { return nil })
	return s
}

// open opens the store; the caller closes it.
func (s *stateDB) open() (*store.DB, error) {
	b, err := boltstore.Open(s.path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	db, err := store.Open(b, s.key, s.opts)
	if err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (s *stateDB) update(fn func(tx store.Tx) error) {
	s.t.Helper()
	db, err := s.open()
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		s.t.Fatal(err)
	}
}

// raw edits the file with the backend alone: no root key, no head update.
func (s *stateDB) raw(fn func(tx store.Tx) error) {
	s.t.Helper()
	b, err := boltstore.Open(s.path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(fn); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stateDB) rawGet(bucket, key string) []byte {
	var v []byte
	s.raw(func(tx store.Tx) error {
		got, err := tx.Get(bucket, []byte(key))
		v = bytes.Clone(got)
		return err
	})
	return v
}

// copyFile copies the database (a backup taken while it is closed).
func (s *stateDB) copyFile() []byte {
	b, err := os.ReadFile(s.path)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// mustRefuse opens the store and expects a *StateError containing each want.
func (s *stateDB) mustRefuse(want ...string) *store.StateError {
	s.t.Helper()
	db, err := s.open()
	if err == nil {
		db.Close()
		s.t.Fatalf("opened a tampered database; want an error with %q", want)
	}
	var se *store.StateError
	if !errors.As(err, &se) {
		s.t.Fatalf("error is not a *StateError: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			s.t.Errorf("error %q\ndoes not say %q", err, w)
		}
	}
	return se
}

func putAll(kv map[string]string, bucket string) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		for k, v := range kv {
			if err := tx.Put(bucket, []byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}
}

var describe = &store.Options{Describe: func(b string) string {
	if b == "tokens" {
		return "API tokens"
	}
	return ""
}}

func TestStateDeletedRow(t *testing.T) {
	s := newStateDB(t, describe)
	s.update(putAll(map[string]string{"t1": "token one", "t2": "token two"}, "tokens"))
	s.raw(func(tx store.Tx) error { return tx.Delete("tokens", []byte("t2")) })
	s.mustRefuse("API tokens (bucket tokens)", "1 found, 2 expected: rows were deleted")
}

// TestStateAddedRow: a deleted row put back from a backup authenticates
// (same bucket, key and written version) but the state says it is gone.
func TestStateAddedRow(t *testing.T) {
	s := newStateDB(t, nil)
	s.update(putAll(map[string]string{"b": "1"}, "meta"))
	backup := s.copyFile()
	s.update(func(tx store.Tx) error { return tx.Delete("meta", []byte("b")) })
	sealed := bytesFromBackup(t, backup, "meta", "b")
	s.raw(func(tx store.Tx) error { return tx.Put("meta", []byte("b"), sealed) })
	s.mustRefuse("meta (bucket meta)", "1 rows were added")
}

// bytesFromBackup reads a raw (sealed) value from a copy of a database file.
func bytesFromBackup(t *testing.T, file []byte, bucket, key string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(p, file, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := boltstore.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v []byte
	if err := b.View(func(tx store.Tx) error {
		got, err := tx.Get(bucket, []byte(key))
		v = bytes.Clone(got)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestStateRolledBackValue: one value copied back from an older backup
// authenticates on its own (same bucket and key) but not as part of the state.
func TestStateRolledBackValue(t *testing.T) {
	s := newStateDB(t, describe)
	s.update(putAll(map[string]string{"t1": `{"revoked":false}`, "t2": "x"}, "tokens"))
	backup := s.copyFile()
	s.update(putAll(map[string]string{"t1": `{"revoked":true}`}, "tokens"))
	old := bytesFromBackup(t, backup, "tokens", "t1")
	s.raw(func(tx store.Tx) error { return tx.Put("tokens", []byte("t1"), old) })
	s.mustRefuse("API tokens", "values were replaced by other values of the same rows")
}

// TestStateSwappedValues: two values swapped between rows fail
// authentication where they are, and are named.
func TestStateSwappedValues(t *testing.T) {
	s := newStateDB(t, nil)
	s.update(putAll(map[string]string{"k1": "allow everything", "k2": "allow nothing"}, "keys"))
	v1, v2 := s.rawGet("keys", "k1"), s.rawGet("keys", "k2")
	s.raw(func(tx store.Tx) error {
		tx.Put("keys", []byte("k1"), v2)
		return tx.Put("keys", []byte("k2"), v1)
	})
	se := s.mustRefuse("keys/k1: value failed authentication", "keys/k2: value failed authentication")
	if strings.Contains(se.Error(), "allow") {
		t.Fatal("the error shows a value")
	}
}

func TestStateHeadTampering(t *testing.T) {
	s := newStateDB(t, nil)
	s.update(putAll(map[string]string{"a": "1"}, "b"))
	old := s.rawGet("_store", "head")
	s.update(putAll(map[string]string{"a": "2"}, "b"))
	// An older head with newer rows.
	s.raw(func(tx store.Tx) error { return tx.Put("_store", []byte("head"), old) })
	s.mustRefuse("b (bucket b)")
	// A deleted head.
	s.raw(func(tx store.Tx) error { return tx.Delete("_store", []byte("head")) })
	s.mustRefuse("the state head (_store/head) is missing")
	// A forged head.
	old[len(old)-40] ^= 1
	s.raw(func(tx store.Tx) error { return tx.Put("_store", []byte("head"), old) })
	s.mustRefuse("the state head (_store/head) failed authentication")
}

// TestStateWholeRollback documents the limit: an older copy of the whole
// database is a consistent state and opens. Owners detect it with signed
// audit tree heads they kept; the key service with its state witness.
func TestStateWholeRollback(t *testing.T) {
	s := newStateDB(t, nil)
	s.update(putAll(map[string]string{"a": "1"}, "b"))
	backup := s.copyFile()
	db, _ := s.open()
	h1, _ := db.Head()
	db.Close()
	s.update(putAll(map[string]string{"a": "2"}, "b"))
	if err := os.WriteFile(s.path, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := s.open()
	if err != nil {
		t.Fatalf("a whole older copy: %v", err)
	}
	h2, _ := db.Head()
	db.Close()
	if h1 != h2 {
		t.Fatalf("heads %+v %+v", h1, h2)
	}
}

func TestStateExplainAndEmpty(t *testing.T) {
	var sawTx bool
	opts := &store.Options{Explain: func(db *store.DB, tx store.Tx, bucket string, present func([]byte) bool) []string {
		if bucket != "meta" {
			return nil
		}
		if _, err := tx.Get("meta", []byte("kept")); err == nil {
			sawTx = true
		}
		if !present([]byte("bootstrapped")) {
			return []string{"the bootstrap marker meta/bootstrapped was deleted"}
		}
		return nil
	}}
	s := newStateDB(t, opts)
	s.update(putAll(map[string]string{"bootstrapped": "1", "kept": "x"}, "meta"))
	s.raw(func(tx store.Tx) error { return tx.Delete("meta", []byte("bootstrapped")) })
	s.mustRefuse("meta (bucket meta): 1 found, 2 expected: rows were deleted: the bootstrap marker meta/bootstrapped was deleted")
	if !sawTx {
		t.Error("Explain could not read the database")
	}

	// An empty file where a state is expected.
	p := filepath.Join(t.TempDir(), "empty.db")
	b, err := boltstore.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := store.Open(b, newKey(), &store.Options{Existing: true}); !errors.Is(err, store.ErrEmpty) {
		t.Fatalf("empty database with Existing: %v", err)
	}
}

// TestStateLaterRowAtRuntime: a row copied in from a later copy of the
// database while the store is open is refused when read.
func TestStateLaterRowAtRuntime(t *testing.T) {
	s := newStateDB(t, nil)
	s.update(putAll(map[string]string{"a": "1"}, "b"))
	early := s.copyFile()
	s.update(putAll(map[string]string{"a": "2"}, "b"))
	s.update(putAll(map[string]string{"a": "3"}, "b"))
	later := s.rawGet("b", "a")
	if err := os.WriteFile(s.path, early, 0o600); err != nil {
		t.Fatal(err)
	}
	bk, err := boltstore.Open(s.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(bk, s.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bk.Update(func(tx store.Tx) error { return tx.Put("b", []byte("a"), later) })
	err = db.View(func(tx store.Tx) error { _, err := tx.Get("b", []byte("a")); return err })
	if err == nil || !strings.Contains(err.Error(), "later than the state") {
		t.Fatalf("a later row read at runtime: %v", err)
	}
}

// TestStateBatchConcurrent: concurrent Batch writes, some failing (which
// makes bbolt rerun the others), leave a head that matches the rows.
func TestStateBatchConcurrent(t *testing.T) {
	s := newStateDB(t, nil)
	db, err := s.open()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			db.Batch(func(tx store.Tx) error {
				if err := tx.Put("b", []byte(fmt.Sprintf("k%02d", i%16)), []byte(fmt.Sprint(i))); err != nil {
					return err
				}
				if i%5 == 0 {
					tx.Delete("b", []byte(fmt.Sprintf("k%02d", (i+1)%16)))
				}
				if i%7 == 0 {
					return errors.New("fail this one")
				}
				return nil
			})
		})
	}
	wg.Wait()
	h, _ := db.Head()
	db.Close()
	db, err = s.open()
	if err != nil {
		t.Fatalf("after concurrent batches: %v", err)
	}
	defer db.Close()
	if h.Version < 2 {
		t.Fatalf("head version %d", h.Version)
	}
}

// TestMigrateFromFormat1 opens the database the key service wrote before
// the authenticated state (kms/testdata/store-v1, made by the previous
// code), migrates it, and checks that it reads and is then protected.
func TestMigrateFromFormat1(t *testing.T) {
	src := filepath.Join("..", "kms", "testdata", "store-v1", "data")
	file, err := os.ReadFile(filepath.Join(src, "ppml.db"))
	if err != nil {
		t.Fatal(err)
	}
	keyHex, err := os.ReadFile(filepath.Join(src, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	if err != nil {
		t.Fatal(err)
	}
	s := &stateDB{t: t, path: filepath.Join(t.TempDir(), "ppml.db"), key: key, opts: &store.Options{Existing: true}}
	os.WriteFile(s.path, file, 0o600)

	wrong := &stateDB{t: t, path: s.path, key: newKey()}
	if _, err := wrong.open(); !errors.Is(err, store.ErrWrongRootKey) {
		t.Fatalf("format 1 database under another root key: %v", err)
	}
	db, err := s.open()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if db.Migrated() < 10 {
		t.Fatalf("migrated %d rows", db.Migrated())
	}
	var size []byte
	if err := db.View(func(tx store.Tx) error {
		size, err = tx.Get("_audit/meta", []byte("size"))
		return err
	}); err != nil || len(size) != 8 {
		t.Fatalf("read after migration: %x %v", size, err)
	}
	db.Close()
	db, err = s.open()
	if err != nil || db.Migrated() != 0 {
		t.Fatalf("second open: migrated %v, %v", db, err)
	}
	db.Close()
	s.raw(func(tx store.Tx) error { return tx.Delete("meta", []byte("bootstrapped")) })
	s.mustRefuse("bucket meta", "rows were deleted")
}

// TestCompactDropsOldValues: after an overwrite, the old sealed bytes stay
// in the file's free pages until Compact.
func TestCompactDropsOldValues(t *testing.T) {
	s := newStateDB(t, nil)
	s.update(putAll(map[string]string{"k": "material version 1"}, "keys"))
	old := s.rawGet("keys", "k")
	s.update(putAll(map[string]string{"k": "destroyed"}, "keys"))
	if !bytes.Contains(s.copyFile(), old) {
		t.Skip("bbolt reused the page already; nothing to compact away")
	}
	db, err := s.open()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := db.Compact(); !ok || err != nil {
		t.Fatalf("compact: %v %v", ok, err)
	}
	if err := db.View(func(tx store.Tx) error {
		v, err := tx.Get("keys", []byte("k"))
		if string(v) != "destroyed" {
			return fmt.Errorf("after compact: %q %v", v, err)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := db.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if bytes.Contains(s.copyFile(), old) || bytes.Contains(buf.Bytes(), old) {
		t.Fatal("the old value survives compaction")
	}
	if db, err = s.open(); err != nil {
		t.Fatalf("reopen after compact: %v", err)
	}
	db.Close()
}
