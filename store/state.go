package store

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"time"
)

// The state head (_store/head) authenticates the database as a whole: a
// store id, a version counter that every write transaction advances, the
// time of that write, and per bucket the number of rows and two set
// digests, MACed under a key derived from the root key. Encoding (all
// integers big-endian):
//
//	"ppml-state-head" 0x02 | store id (16) | version (8) | time (8, Unix ns) | uint32 n |
//	n × (uint16 len(bucket) | bucket | count (8) | keys digest (32) | rows digest (32)) |
//	HMAC-SHA256(state key, "h" | all of the above)
//
// keys digest = XOR over the bucket's rows of HMAC(state key, "k" | uint32 len(bucket) | bucket | key)
// rows digest = XOR over the bucket's rows of HMAC(state key, "r" | uint32 len(bucket) | bucket | uint32 len(key) | key | sealed value)
//
// The digests are sets: a row's element depends only on the row, so a
// write updates them in constant time (XOR out the old row, XOR in the
// new) and Open recomputes them in one pass. Elements are keyed PRF
// outputs the attacker cannot compute, and every (bucket, key) occurs at
// most once, so no other set of rows has the same digest.
type head struct {
	storeID [16]byte
	version uint64
	time    int64
	buckets map[string]*bucketSum
}

type bucketSum struct {
	count uint64
	keys  [32]byte
	rows  [32]byte
}

const headMagic = "ppml-state-head\x02"

func (h *head) clone() *head {
	c := *h
	c.buckets = make(map[string]*bucketSum, len(h.buckets))
	for k, v := range h.buckets {
		b := *v
		c.buckets[k] = &b
	}
	return &c
}

// Head describes the authenticated state of a database.
type Head struct {
	// StoreID is random, chosen when the database was created (or
	// migrated); backups share it.
	StoreID string
	// Version counts write transactions.
	Version uint64
	// Time is when the last write transaction ran.
	Time time.Time
}

func (h *head) public() Head {
	return Head{StoreID: hex.EncodeToString(h.storeID[:]), Version: h.version, Time: time.Unix(0, h.time).UTC()}
}

// ReadHead reads and authenticates the state head of the database in
// backend without checking the rows or changing anything (no migration):
// enough to name a database that is about to be replaced.
func ReadHead(backend Store, rootKey []byte) (Head, error) {
	db := &DB{inner: backend}
	var err error
	if db.stateKey, err = hkdf.Key(sha256.New, rootKey, nil, "ppml store state key v2", 32); err != nil {
		return Head{}, err
	}
	return db.Head()
}

// Head returns the database's current state head.
func (db *DB) Head() (Head, error) {
	var out Head
	err := db.inner.View(func(t Tx) error {
		h, err := db.loadHead(t)
		if err != nil {
			return err
		}
		out = h.public()
		return nil
	})
	return out, err
}

func (db *DB) mac() hash.Hash { return hmac.New(sha256.New, db.stateKey) }

// WitnessMAC authenticates a record of a state head kept outside the
// database (the key service's state witness), under a key derived from the
// root key: HMAC(state key, "w" | store id | uint64 version).
func (db *DB) WitnessMAC(storeID string, version uint64) []byte {
	m := db.mac()
	m.Write([]byte{'w'})
	m.Write([]byte(storeID))
	m.Write(binary.BigEndian.AppendUint64(nil, version))
	return m.Sum(nil)
}

func (db *DB) encodeHead(h *head) []byte {
	names := slices.Sorted(maps.Keys(h.buckets))
	b := make([]byte, 0, len(headMagic)+16+8+8+4+len(names)*90+32)
	b = append(b, headMagic...)
	b = append(b, h.storeID[:]...)
	b = binary.BigEndian.AppendUint64(b, h.version)
	b = binary.BigEndian.AppendUint64(b, uint64(h.time))
	b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
	for _, n := range names {
		s := h.buckets[n]
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
		b = binary.BigEndian.AppendUint64(b, s.count)
		b = append(b, s.keys[:]...)
		b = append(b, s.rows[:]...)
	}
	m := db.mac()
	m.Write([]byte{'h'})
	m.Write(b)
	return m.Sum(b)
}

var errHeadMAC = errors.New("store: the state head failed authentication")

func (db *DB) decodeHead(raw []byte) (*head, error) {
	bad := func(what string) (*head, error) {
		return nil, fmt.Errorf("store: the state head (_store/head) is malformed: %s", what)
	}
	if len(raw) < len(headMagic)+16+8+8+4+32 || string(raw[:len(headMagic)]) != headMagic {
		return bad("wrong length or magic")
	}
	body, sum := raw[:len(raw)-32], raw[len(raw)-32:]
	m := db.mac()
	m.Write([]byte{'h'})
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), sum) {
		return nil, errHeadMAC
	}
	p := body[len(headMagic):]
	h := &head{buckets: map[string]*bucketSum{}}
	copy(h.storeID[:], p)
	h.version = binary.BigEndian.Uint64(p[16:])
	h.time = int64(binary.BigEndian.Uint64(p[24:]))
	n := binary.BigEndian.Uint32(p[32:])
	p = p[36:]
	for range n {
		if len(p) < 2 {
			return bad("truncated")
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l+8+64 {
			return bad("truncated")
		}
		s := &bucketSum{count: binary.BigEndian.Uint64(p[2+l:])}
		copy(s.keys[:], p[2+l+8:])
		copy(s.rows[:], p[2+l+8+32:])
		h.buckets[string(p[2:2+l])] = s
		p = p[2+l+8+64:]
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return h, nil
}

// loadHead reads and authenticates the head in t, reusing the decoded copy
// when the stored bytes are the ones last seen.
func (db *DB) loadHead(t Tx) (*head, error) {
	raw, err := t.Get(metaBucket, []byte(headKey))
	if errors.Is(err, ErrNotFound) {
		return nil, &StateError{Problems: []Problem{{Bucket: metaBucket, What: "the state head", Summary: "the state head (_store/head) is missing"}}}
	}
	if err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.cached != nil && bytes.Equal(raw, db.cachedRaw) {
		return db.cached.clone(), nil
	}
	h, err := db.decodeHead(raw)
	if err != nil {
		return nil, err
	}
	db.cachedRaw, db.cached = bytes.Clone(raw), h.clone()
	return h, nil
}

func xor32(dst *[32]byte, b []byte) {
	for i := range dst {
		dst[i] ^= b[i]
	}
}

// elements computes a row's key and row elements with m (reset here).
func elements(m hash.Hash, bucket string, key, sealed []byte, kbuf, rbuf []byte) (k, r []byte) {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(bucket)))
	m.Reset()
	m.Write([]byte{'k'})
	m.Write(l[:])
	m.Write([]byte(bucket))
	m.Write(key)
	k = m.Sum(kbuf[:0])
	m.Reset()
	m.Write([]byte{'r'})
	m.Write(l[:])
	m.Write([]byte(bucket))
	binary.BigEndian.PutUint32(l[:], uint32(len(key)))
	m.Write(l[:])
	m.Write(key)
	m.Write(sealed)
	r = m.Sum(rbuf[:0])
	return k, r
}

func (s *bucketSum) add(k, r []byte) {
	s.count++
	xor32(&s.keys, k)
	xor32(&s.rows, r)
}

// txState is a write transaction's view of the head it is updating.
type txState struct {
	db         *DB
	h          *head
	next       uint64 // the state version of this transaction's writes
	m          hash.Hash
	kbuf, rbuf [32]byte
	dirty      bool
}

func (tx *encTx) state() (*txState, error) {
	if tx.st != nil {
		return tx.st, nil
	}
	if !tx.inner.Writable() {
		return nil, errors.New("store: write in a read-only transaction")
	}
	h, err := tx.db.loadHead(tx.inner)
	if err != nil {
		return nil, err
	}
	tx.st = &txState{db: tx.db, h: h, next: h.version + 1, m: tx.db.mac()}
	return tx.st, nil
}

// replace records that bucket/key changed from old to new (nil: absent).
func (st *txState) replace(bucket string, key, old, new []byte) {
	s := st.h.buckets[bucket]
	if s == nil {
		s = &bucketSum{}
		st.h.buckets[bucket] = s
	}
	if old != nil {
		k, r := elements(st.m, bucket, key, old, st.kbuf[:], st.rbuf[:])
		xor32(&s.rows, r)
		if new == nil {
			s.count--
			xor32(&s.keys, k)
		}
	}
	if new != nil {
		k, r := elements(st.m, bucket, key, new, st.kbuf[:], st.rbuf[:])
		xor32(&s.rows, r)
		if old == nil {
			s.count++
			xor32(&s.keys, k)
		}
	}
	if s.count == 0 {
		delete(st.h.buckets, bucket)
	}
	st.dirty = true
}

// commitHead writes the advanced head when the transaction wrote anything.
func (tx *encTx) commitHead() error {
	st := tx.st
	if st == nil || !st.dirty {
		return nil
	}
	st.h.version = st.next
	st.h.time = tx.db.opts.Now().UnixNano()
	raw := tx.db.encodeHead(st.h)
	if err := tx.inner.Put(metaBucket, []byte(headKey), raw); err != nil {
		return fmt.Errorf("store: write the state head: %w", err)
	}
	tx.db.mu.Lock()
	tx.db.cachedRaw, tx.db.cached = raw, st.h.clone()
	tx.db.mu.Unlock()
	for {
		v := tx.db.version.Load()
		if v >= st.next || tx.db.version.CompareAndSwap(v, st.next) {
			break
		}
	}
	return nil
}

// StateError says that the rows of the database do not match its
// authenticated state head: something changed the file outside the key
// service (or restored parts of it from another copy).
type StateError struct {
	// Version is the state version of the head the rows were checked against.
	Version  uint64
	Problems []Problem
}

// Problem is what is wrong in one bucket.
type Problem struct {
	Bucket string
	// What names the bucket for operators ("API tokens").
	What string
	// Summary says what happened to the bucket's rows.
	Summary string
	// Rows names single rows found wrong, where they can be told.
	Rows []string
}

func (e *StateError) Error() string {
	var b strings.Builder
	if e.Version > 0 {
		fmt.Fprintf(&b, "the database does not match its authenticated state (state version %d): ", e.Version)
	} else {
		b.WriteString("the database does not match its authenticated state: ")
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Bucket != metaBucket || p.What != "the state head" {
			fmt.Fprintf(&b, "%s (bucket %s): ", p.What, p.Bucket)
		}
		b.WriteString(p.Summary)
		if len(p.Rows) > 0 {
			b.WriteString(": " + strings.Join(p.Rows, "; "))
		}
	}
	return b.String()
}

// ErrEmpty is returned by Open with Options.Existing for a database that
// holds no state at all (a new, emptied or replaced file).
var ErrEmpty = errors.New("store: the database is empty")

// load checks the state at Open, or initialises or migrates a database
// that has no head.
func (db *DB) load() error {
	var h *head
	noHead := false
	err := db.inner.View(func(t Tx) error {
		raw, err := t.Get(metaBucket, []byte(headKey))
		if errors.Is(err, ErrNotFound) {
			noHead = true
			return nil
		}
		if err != nil {
			return err
		}
		if h, err = db.decodeHead(raw); err != nil {
			if errors.Is(err, errHeadMAC) && !db.canaryOpens(t) {
				return ErrWrongRootKey
			}
			if errors.Is(err, errHeadMAC) {
				return &StateError{Problems: []Problem{{Bucket: metaBucket, What: "the state head", Summary: "the state head (_store/head) failed authentication: it was forged, damaged or copied from another database"}}}
			}
			return err
		}
		db.version.Store(h.version)
		return db.verify(t, h)
	})
	if err != nil {
		return err
	}
	if noHead {
		return db.initOrMigrate()
	}
	db.mu.Lock()
	db.cached = h
	db.cachedRaw = db.encodeHead(h)
	db.mu.Unlock()
	return nil
}

// canaryOpens reports whether the canary opens under this root key.
func (db *DB) canaryOpens(t Tx) bool {
	raw, err := t.Get(metaBucket, []byte(canaryKey))
	if err != nil {
		return false
	}
	v, ok := writtenVersion(raw)
	if !ok || len(raw) < sealedHeader+db.aead.Overhead() {
		return false
	}
	pt, err := db.aead.Open(nil, raw[9:sealedHeader], raw[sealedHeader:], aad(metaBucket, []byte(canaryKey), v))
	return err == nil && string(pt) == canaryText
}

// verify recomputes every bucket's count and digests and compares them
// with h; on a mismatch it works out what it can about the rows.
func (db *DB) verify(t Tx, h *head) error {
	found := map[string]*bucketSum{}
	m := db.mac()
	var kbuf, rbuf [32]byte
	err := t.Buckets(func(b string) error {
		return t.Scan(b, nil, nil, func(k, v []byte) error {
			if b == metaBucket && string(k) == headKey {
				return nil
			}
			s := found[b]
			if s == nil {
				s = &bucketSum{}
				found[b] = s
			}
			s.add(elements(m, b, k, v, kbuf[:], rbuf[:]))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store: read the database: %w", err)
	}
	var bad []string
	for b := range mergeKeys(found, h.buckets) {
		f, e := found[b], h.buckets[b]
		if f == nil || e == nil || *f != *e {
			bad = append(bad, b)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	se := &StateError{Version: h.version}
	for _, b := range bad {
		se.Problems = append(se.Problems, db.diagnose(t, b, found[b], h.buckets[b], h.version))
	}
	return se
}

func mergeKeys(a, b map[string]*bucketSum) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// maxRows bounds the rows a Problem names.
const maxRows = 20

// diagnose says what changed in bucket b: found and want are its sums in
// the file and in the head (nil: none).
func (db *DB) diagnose(t Tx, b string, found, want *bucketSum, version uint64) Problem {
	if found == nil {
		found = &bucketSum{}
	}
	if want == nil {
		want = &bucketSum{}
	}
	p := Problem{Bucket: b, What: b}
	if db.opts.Describe != nil {
		if w := db.opts.Describe(b); w != "" {
			p.What = w
		}
	}
	switch {
	case found.count == 0:
		p.Summary = fmt.Sprintf("all %d rows were deleted", want.count)
	case want.count == 0:
		p.Summary = fmt.Sprintf("%d rows were added to a bucket the key service never wrote", found.count)
	case found.count < want.count:
		p.Summary = fmt.Sprintf("%d found, %d expected: rows were deleted", found.count, want.count)
	case found.count > want.count:
		p.Summary = fmt.Sprintf("%d found, %d expected: rows were added", found.count, want.count)
	case found.keys == want.keys:
		p.Summary = "values were replaced by other values of the same rows: older copies (for example from a backup) or values swapped between rows"
	default:
		p.Summary = "rows were deleted and others added in their place"
	}
	// Rows that do not authenticate where they are, or claim a later
	// state, can be named.
	n := 0
	t.Scan(b, nil, nil, func(k, v []byte) error {
		if b == metaBucket && string(k) == headKey {
			return nil
		}
		if _, err := db.open(b, k, v, version); err != nil {
			n++
			if n <= maxRows {
				p.Rows = append(p.Rows, strings.TrimPrefix(err.Error(), "store: "))
			}
		}
		return nil
	})
	if n > maxRows {
		p.Rows = append(p.Rows, fmt.Sprintf("and %d more such rows", n-maxRows))
	}
	if db.opts.Explain != nil {
		present := func(key []byte) bool { _, err := t.Get(b, key); return err == nil }
		p.Rows = append(p.Rows, db.opts.Explain(db, &encTx{inner: t, db: db}, b, present)...)
	}
	return p
}

// initOrMigrate initialises a database without a head: a new one (no
// rows), or one written by the previous format (every value of format 1),
// which it migrates in one transaction.
func (db *DB) initOrMigrate() error {
	return db.inner.Update(func(t Tx) error {
		total, v1 := 0, 0
		if err := t.Buckets(func(b string) error {
			return t.Scan(b, nil, nil, func(k, v []byte) error {
				total++
				if len(v) > 0 && v[0] == valueVersionV1 {
					v1++
				}
				return nil
			})
		}); err != nil {
			return fmt.Errorf("store: read the database: %w", err)
		}
		switch {
		case total == 0 && db.opts.Existing:
			return ErrEmpty
		case total > 0 && v1 < total:
			return &StateError{Problems: []Problem{{Bucket: metaBucket, What: "the state head", Summary: "the state head (_store/head) is missing from a database that has rows of the current format: it was deleted"}}}
		}
		h := &head{buckets: map[string]*bucketSum{}}
		if _, err := rand.Read(h.storeID[:]); err != nil {
			return fmt.Errorf("store: random store id: %w", err)
		}
		tx := &encTx{inner: t, db: db, st: &txState{db: db, h: h, next: 1, m: db.mac()}}
		if total > 0 {
			n, err := db.migrateV1(tx)
			if err != nil {
				return err
			}
			db.migrated = n
		} else if err := tx.put(metaBucket, []byte(canaryKey), []byte(canaryText)); err != nil {
			return err
		}
		return tx.commitHead()
	})
}

// migrateV1 reseals every row of format 1 as format 2 at state version 1,
// after checking the format 1 canary (another root key is ErrWrongRootKey).
func (db *DB) migrateV1(tx *encTx) (int, error) {
	t := tx.inner
	if c, err := t.Get(metaBucket, []byte(canaryKey)); err != nil {
		return 0, fmt.Errorf("store: migrate from format 1: no canary: %w", err)
	} else if pt, err := db.openV1(metaBucket, []byte(canaryKey), c); err != nil || string(pt) != canaryText {
		return 0, ErrWrongRootKey
	}
	var buckets []string
	if err := t.Buckets(func(b string) error { buckets = append(buckets, b); return nil }); err != nil {
		return 0, err
	}
	n := 0
	for _, b := range buckets {
		type row struct{ k, v []byte }
		var rows []row
		if err := t.Scan(b, nil, nil, func(k, v []byte) error {
			pt, err := db.openV1(b, k, v)
			if err != nil {
				return err
			}
			rows = append(rows, row{bytes.Clone(k), pt})
			return nil
		}); err != nil {
			return n, fmt.Errorf("store: migrate from format 1: %w", err)
		}
		for _, r := range rows {
			// tx.put would add the format 1 value's element first: the
			// head starts empty, so the rows are put as new.
			sealed, err := db.seal(b, r.k, tx.st.next, r.v)
			clear(r.v)
			if err != nil {
				return n, err
			}
			if err := t.Put(b, r.k, sealed); err != nil {
				return n, fmt.Errorf("store: migrate %s/%s: %w", b, Printable(r.k), err)
			}
			tx.st.replace(b, r.k, nil, sealed)
			n++
		}
	}
	return n, nil
}

func (db *DB) openV1(bucket string, key, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+nonceSize+db.aeadV1.Overhead() || sealed[0] != valueVersionV1 {
		return nil, fmt.Errorf("%s/%s: not a value of format 1", bucket, Printable(key))
	}
	a := make([]byte, 0, 14+1+4+len(bucket)+len(key))
	a = append(a, "ppml-store-v1\x00"...)
	a = append(a, valueVersionV1)
	a = binary.BigEndian.AppendUint32(a, uint32(len(bucket)))
	a = append(a, bucket...)
	a = append(a, key...)
	pt, err := db.aeadV1.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], a)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: value of format 1 failed authentication", bucket, Printable(key))
	}
	return pt, nil
}
