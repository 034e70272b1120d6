package auditlog_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

type fixture struct {
	db     *store.DB
	log    *auditlog.Log
	signer crypto.Signer
	path   string
	root   []byte
}

func newFixture(t testing.TB, signer crypto.Signer, every uint64) *fixture {
	t.Helper()
	root := make([]byte, 32)
	rand.Read(root)
	path := filepath.Join(t.TempDir(), "ppml.db")
	db, err := openDB(t, path, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	lg := auditlog.New(auditlog.Config{Signer: signer, Blinder: db, CheckpointEvery: every, Now: func() time.Time {
		clock = clock.Add(time.Second)
		return clock
	}})
	return &fixture{db: db, log: lg, signer: signer, path: path, root: root}
}

func ecdsaKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleEntry(i int) audit.Entry {
	md := sha256.Sum256([]byte(fmt.Sprint("enclave", i%3)))
	job := sha256.Sum256([]byte(fmt.Sprint("job", i)))
	e := audit.Entry{
		Type: audit.TypeRelease, Tenant: "hospital-a", Actor: "tok_runner1",
		Key: fmt.Sprintf("key-%d", i%2), KeyVersion: 1, JobDigest: job[:],
		Platform: "sgx", Measurement: md[:], TCBStatus: "UpToDate",
		Decision: audit.Allow, RequestID: fmt.Sprintf("req-%d", i),
	}
	if i%4 == 3 {
		e.Type, e.Decision, e.Rule, e.Reason = audit.TypeDenial, audit.Deny, "tcb_status", `TCB status "OutOfDate" is not accepted <by policy>`
	}
	return e
}

func (f *fixture) appendN(t testing.TB, n int) {
	t.Helper()
	var start uint64
	f.db.View(func(tx store.Tx) error { start, _ = f.log.Size(tx); return nil })
	for i := int(start); i < int(start)+n; i++ {
		err := f.db.Update(func(tx store.Tx) error {
			idx, err := f.log.Append(tx, sampleEntry(i))
			if err == nil && idx != uint64(i) {
				err = fmt.Errorf("index %d, want %d", idx, i)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) export(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := f.db.View(func(tx store.Tx) error {
		_, err := f.log.Export(tx, &buf)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func lines(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") }

func join(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

// mth is RFC 6962 section 2.1's Merkle Tree Hash, written from the
// definition, as an independent check of the library-maintained roots.
func mth(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		s := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return s[:]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	s := sha256.Sum256(append(append([]byte{1}, mth(leaves[:k])...), mth(leaves[k:])...))
	return s[:]
}

func TestRootsAndProofs(t *testing.T) {
	f := newFixture(t, ecdsaKey(t), 0)
	const n = 21
	f.appendN(t, n)
	err := f.db.View(func(tx store.Tx) error {
		var leaves [][]byte
		for i := uint64(0); i < n; i++ {
			_, raw, err := f.log.Entry(tx, i)
			if err != nil {
				return err
			}
			leaves = append(leaves, raw)
		}
		logID, _ := f.log.LogID(tx)
		heads := map[uint64]*audit.TreeHead{}
		for size := uint64(0); size <= n; size++ {
			root, err := f.log.Root(tx, size)
			if err != nil {
				return err
			}
			if want := mth(leaves[:size]); !bytes.Equal(root, want) {
				return fmt.Errorf("root of size %d = %x, RFC 6962 MTH = %x", size, root, want)
			}
			heads[size], err = audit.SignTreeHead(f.signer, logID, size, root, time.Now())
			if err != nil {
				return err
			}
		}
		for size := uint64(1); size <= n; size++ {
			for i := uint64(0); i < size; i++ {
				p, err := f.log.InclusionProof(tx, i, size)
				if err != nil {
					return err
				}
				if err := audit.VerifyInclusion(leaves[i], i, p, heads[size]); err != nil {
					return err
				}
				if i > 0 {
					if err := audit.VerifyInclusion(leaves[i-1], i, p, heads[size]); err == nil {
						return fmt.Errorf("proof for %d accepted entry %d", i, i-1)
					}
				}
			}
			for s1 := uint64(1); s1 <= size; s1++ {
				p, err := f.log.ConsistencyProof(tx, s1, size)
				if err != nil {
					return err
				}
				if err := audit.VerifyConsistency(heads[s1], heads[size], p); err != nil {
					return fmt.Errorf("consistency %d->%d: %w", s1, size, err)
				}
			}
		}
		// A head with another root fails consistency.
		forged := *heads[7]
		forged.RootHash = heads[6].RootHash
		p, _ := f.log.ConsistencyProof(tx, 7, 15)
		if err := audit.VerifyConsistency(&forged, heads[15], p); err == nil {
			return errors.New("consistency accepted a forged older root")
		}
		if _, err := f.log.InclusionProof(tx, 3, n+1); err == nil {
			return errors.New("proof beyond the log's size")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAppendIsTransactional: an entry appended in a transaction that rolls
// back leaves no trace, so a state change and its entry go together.
func TestAppendIsTransactional(t *testing.T) {
	f := newFixture(t, ecdsaKey(t), 0)
	f.appendN(t, 3)
	boom := errors.New("state change failed")
	err := f.db.Update(func(tx store.Tx) error {
		if err := tx.Put("keys", []byte("k"), []byte("v")); err != nil {
			return err
		}
		if _, err := f.log.Append(tx, sampleEntry(9)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	f.db.View(func(tx store.Tx) error {
		if n, _ := f.log.Size(tx); n != 3 {
			t.Errorf("size %d after rollback, want 3", n)
		}
		if _, err := tx.Get("keys", []byte("k")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("state change survived rollback: %v", err)
		}
		return nil
	})
	if _, err := audit.VerifyExport(bytes.NewReader(f.export(t)), audit.VerifyOptions{PublicKey: f.signer.Public()}); err != nil {
		t.Fatal(err)
	}
}

func TestListByKey(t *testing.T) {
	f := newFixture(t, ecdsaKey(t), 0)
	f.appendN(t, 10)
	f.db.Update(func(tx store.Tx) error {
		_, err := f.log.Append(tx, audit.Entry{Type: audit.TypeKeyCreate, Tenant: "bank-b", Key: "key-0"})
		return err
	})
	f.db.View(func(tx store.Tx) error {
		es, err := f.log.ListByKey(tx, "hospital-a", "key-1", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var idx []uint64
		for _, e := range es {
			if e.Key != "key-1" || e.Tenant != "hospital-a" {
				t.Fatalf("got entry for %s/%s", e.Tenant, e.Key)
			}
			idx = append(idx, e.Index)
		}
		if fmt.Sprint(idx) != "[1 3 5 7 9]" {
			t.Fatalf("indices %v", idx)
		}
		page, _ := f.log.ListByKey(tx, "hospital-a", "key-1", 4, 2)
		if len(page) != 2 || page[0].Index != 5 || page[1].Index != 7 {
			t.Fatalf("page %+v", page)
		}
		other, _ := f.log.ListByKey(tx, "bank-b", "key-0", 0, 100)
		if len(other) != 1 || other[0].Index != 10 {
			t.Fatalf("bank-b key-0: %+v", other)
		}
		return nil
	})
	// Key names do not appear in the database file: entries are encrypted
	// and the index is blinded.
	f.db.Close()
	raw, _ := readFile(f.path)
	if bytes.Contains(raw, []byte("hospital-a")) || bytes.Contains(raw, []byte("key-1")) {
		t.Fatal("tenant or key name in clear in the database file")
	}
}

func TestEntryRejectsBadInput(t *testing.T) {
	f := newFixture(t, ecdsaKey(t), 0)
	for _, e := range []audit.Entry{{Type: ""}, {Type: "Release"}, {Type: "release", Decision: "maybe"}, {Type: "release", Reason: strings.Repeat("x", audit.MaxEntrySize)},
		{Type: "denial", Field: "platforms.sim.x\x1b[2J"}, {Type: "denial", Field: "jobs\n"}, {Type: "denial", Field: "Platforms.snp"}, {Type: "denial", Field: "a..b"},
		{Type: "denial", Field: "event_log[-1]"}, {Type: "denial", Field: strings.Repeat("a.", 70) + "a"}} {
		err := f.db.Update(func(tx store.Tx) error { _, err := f.log.Append(tx, e); return err })
		if err == nil {
			t.Errorf("Append(%.40q, field %q) succeeded", e.Type, e.Field)
		}
	}
	// Every field path policy.Evaluate names is accepted.
	for _, field := range []string{"jobs", "not_after", "platforms.snp.min_reported_tcb.microcode", "platforms.tdx.event_log[0].events[2]", "certificate.dns_names", "platforms.snp.guest_policy.min_abi", "platforms.snp.min_committed_firmware_version"} {
		err := f.db.Update(func(tx store.Tx) error {
			_, err := f.log.Append(tx, audit.Entry{Type: audit.TypeDenial, Decision: audit.Deny, Rule: "r", Field: field})
			return err
		})
		if err != nil {
			t.Errorf("field %s: %v", field, err)
		}
	}
}

// verify runs VerifyExport and returns the first problem (nil when it verifies).
func verify(t *testing.T, export []byte, pub crypto.PublicKey, trusted ...*audit.TreeHead) []audit.Problem {
	t.Helper()
	res, err := audit.VerifyExport(bytes.NewReader(export), audit.VerifyOptions{PublicKey: pub, Trusted: trusted})
	if err == nil {
		if !res.OK() {
			t.Fatal("nil error with problems")
		}
		return nil
	}
	var te *audit.TamperError
	if !errors.As(err, &te) {
		t.Fatalf("not a TamperError: %v", err)
	}
	return te.Problems
}

func expectProblem(t *testing.T, ps []audit.Problem, kind string, index int64) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatalf("tampered export verified; want %s at %d", kind, index)
	}
	if ps[0].Kind != kind || ps[0].Index != index {
		t.Fatalf("first problem %q; want %s at entry %d (all: %v)", ps[0], kind, index, ps)
	}
}

func editEntry(t *testing.T, line string, fn func(m map[string]any)) string {
	t.Helper()
	var e audit.Entry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	// Edit through the struct so the result stays canonical, as a careful forger's would.
	m := map[string]any{}
	json.Unmarshal([]byte(line), &m)
	fn(m)
	b, _ := json.Marshal(m)
	var e2 audit.Entry
	if err := json.Unmarshal(b, &e2); err != nil {
		t.Fatal(err)
	}
	out, err := e2.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestVerifyTamperCases(t *testing.T) {
	for _, signer := range []crypto.Signer{ecdsaKey(t), ed25519Key(t)} {
		t.Run(fmt.Sprintf("%T", signer.Public()), func(t *testing.T) { tamperCases(t, signer) })
	}
}

func ed25519Key(t testing.TB) crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tamperCases(t *testing.T, signer crypto.Signer) {
	const n = 10
	f := newFixture(t, signer, 0)
	f.appendN(t, n)
	good := f.export(t)
	pub := signer.Public()
	orig := lines(good) // orig[0] is the header, orig[i+1] entry i

	mutate := func(fn func(ls []string) []string) []byte {
		ls := append([]string(nil), orig...)
		return join(fn(ls))
	}

	t.Run("intact", func(t *testing.T) {
		if ps := verify(t, good, pub); ps != nil {
			t.Fatalf("intact export: %v", ps)
		}
		res, _ := audit.VerifyExport(bytes.NewReader(good), audit.VerifyOptions{PublicKey: pub})
		if res.Entries != n || res.TreeHead.Size != n {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("modified entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[1+4] = editEntry(t, ls[1+4], func(m map[string]any) { m["measurement"] = strings.Repeat("ab", 32) })
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemModifiedEntry, 4)
	})
	t.Run("modified entry decision", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[1+3] = strings.Replace(ls[1+3], `"decision":"deny"`, `"decision":"allow"`, 1)
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemModifiedEntry, 3)
	})
	t.Run("modified entry not canonical", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[1+2] = strings.Replace(ls[1+2], `","`, `", "`, 1)
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemModifiedEntry, 2)
	})
	t.Run("modified first entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[1] = editEntry(t, ls[1], func(m map[string]any) { m["tenant"] = "mallory" })
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemModifiedEntry, 0)
	})
	t.Run("modified last entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[n] = editEntry(t, ls[n], func(m map[string]any) { m["request_id"] = "forged" })
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemModifiedEntry, n-1)
	})
	t.Run("modified link", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[1+6] = editEntry(t, ls[1+6], func(m map[string]any) { m["prev"] = strings.Repeat("00", 32) })
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemModifiedEntry, 6)
	})
	t.Run("deleted entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string { return append(ls[:1+5], ls[1+6:]...) })
		expectProblem(t, verify(t, ex, pub), audit.ProblemDeletedEntry, 5)
	})
	t.Run("deleted first entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string { return append(ls[:1], ls[2:]...) })
		ps := verify(t, ex, pub)
		expectProblem(t, ps, audit.ProblemDeletedEntry, 0)
		if !strings.Contains(ps[0].Detail, "starts at entry 1") {
			t.Fatal(ps[0])
		}
	})
	t.Run("deleted entries", func(t *testing.T) {
		ex := mutate(func(ls []string) []string { return append(ls[:1+2], ls[1+5:]...) })
		ps := verify(t, ex, pub)
		expectProblem(t, ps, audit.ProblemDeletedEntry, 2)
		if !strings.Contains(ps[0].Detail, "entries 2 to 4 are missing") {
			t.Fatal(ps[0])
		}
	})
	t.Run("inserted entry, rest renumbered", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			forged := editEntry(t, ls[1+4], func(m map[string]any) {
				m["index"] = 5
				m["prev"] = fmt.Sprintf("%x", audit.LeafHash([]byte(ls[1+4])))
				m["reason"] = "forged release"
			})
			for i := 1 + 5; i < len(ls); i++ {
				ls[i] = editEntry(t, ls[i], func(m map[string]any) { m["index"] = m["index"].(float64) + 1 })
			}
			return append(ls[:1+5], append([]string{forged}, ls[1+5:]...)...)
		})
		ps := verify(t, ex, pub)
		expectProblem(t, ps, audit.ProblemExtraEntry, 5)
		if !strings.Contains(ps[0].Detail, "entries 5 to 5 were inserted") {
			t.Fatal(ps[0])
		}
	})
	t.Run("deleted entry, rest renumbered", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			for i := 1 + 6; i < len(ls); i++ {
				ls[i] = editEntry(t, ls[i], func(m map[string]any) { m["index"] = m["index"].(float64) - 1 })
			}
			return append(ls[:1+5], ls[1+6:]...)
		})
		ps := verify(t, ex, pub)
		expectProblem(t, ps, audit.ProblemModifiedEntry, 5)
		if !strings.Contains(ps[0].Detail, "an entry before it deleted") {
			t.Fatal(ps[0])
		}
	})
	t.Run("deleted entry and a later link skipping it", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			ls[1+6] = editEntry(t, ls[1+6], func(m map[string]any) { m["prev"] = fmt.Sprintf("%x", audit.LeafHash([]byte(ls[1+3]))) })
			return append(ls[:1+4], ls[1+5:]...)
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemDeletedEntry, 4)
	})
	t.Run("reordered", func(t *testing.T) {
		ex := mutate(func(ls []string) []string { ls[1+3], ls[1+4] = ls[1+4], ls[1+3]; return ls })
		ps := verify(t, ex, pub)
		expectProblem(t, ps, audit.ProblemReordered, 3)
		if len(ps) != 1 {
			t.Fatalf("a pure reorder should be the only problem: %v", ps)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		ex := mutate(func(ls []string) []string { return ls[:1+n-3] })
		ps := verify(t, ex, pub)
		expectProblem(t, ps, audit.ProblemTruncated, n-3)
		if !strings.Contains(ps[0].Detail, "ends after entry 6") {
			t.Fatal(ps[0])
		}
	})
	t.Run("truncated to nothing", func(t *testing.T) {
		expectProblem(t, verify(t, []byte(orig[0]+"\n"), pub), audit.ProblemTruncated, 0)
	})
	t.Run("extra entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			forged := editEntry(t, ls[n], func(m map[string]any) { m["index"] = n })
			return append(ls, forged)
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemExtraEntry, n)
	})
	t.Run("duplicated entry", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			return append(ls[:1+5], append([]string{ls[1+4]}, ls[1+5:]...)...)
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemExtraEntry, 4)
	})
	t.Run("malformed line", func(t *testing.T) {
		ex := mutate(func(ls []string) []string { ls[1+8] = "not json"; return ls })
		ps := verify(t, ex, pub)
		if ps[0].Kind != audit.ProblemMalformedEntry || ps[0].Line != 1+8+1 {
			t.Fatalf("%v", ps)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		ex := mutate(func(ls []string) []string {
			var h audit.ExportHeader
			json.Unmarshal([]byte(ls[0]), &h)
			h.TreeHead.Size = n + 1 // claim more than was signed
			b, _ := json.Marshal(h)
			ls[0] = string(b)
			return ls
		})
		expectProblem(t, verify(t, ex, pub), audit.ProblemBadSignature, -1)
	})
	t.Run("wrong public key", func(t *testing.T) {
		expectProblem(t, verify(t, good, ecdsaKey(t).Public()), audit.ProblemBadSignature, -1)
	})
	t.Run("not an export", func(t *testing.T) {
		expectProblem(t, verify(t, []byte("{}\n"), pub), audit.ProblemMalformedExport, -1)
		expectProblem(t, verify(t, nil, pub), audit.ProblemMalformedExport, -1)
	})
	t.Run("rolled back to an older tree head", func(t *testing.T) {
		// The verifier trusts today's head; an older (validly signed)
		// export is a rollback.
		var hdr audit.ExportHeader
		json.Unmarshal([]byte(orig[0]), &hdr)
		older := newFixtureExportPrefix(t, f, 4)
		ps := verify(t, older, pub, hdr.TreeHead)
		expectProblem(t, ps, audit.ProblemInconsistentHead, -1)
		if !strings.Contains(ps[0].Detail, "truncated or rolled back") {
			t.Fatal(ps[0])
		}
	})
}

// newFixtureExportPrefix re-exports the first size entries of f under a
// tree head the same key signs, as a server rolled back to that size would.
func newFixtureExportPrefix(t *testing.T, f *fixture, size int) []byte {
	ls := lines(f.export(t))
	var hdr audit.ExportHeader
	json.Unmarshal([]byte(ls[0]), &hdr)
	var root []byte
	f.db.View(func(tx store.Tx) error {
		var err error
		root, err = f.log.Root(tx, uint64(size))
		return err
	})
	h, err := audit.SignTreeHead(f.signer, hdr.TreeHead.LogID, uint64(size), root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hdr.TreeHead = h
	b, _ := json.Marshal(hdr)
	out := append([]string{string(b)}, ls[1:1+size]...)
	if ps := verify(t, join(out), f.signer.Public()); ps != nil {
		t.Fatalf("prefix export itself should verify: %v", ps)
	}
	return join(out)
}

// TestForkAgainstTrustedHead: a server restored from an old backup that
// appends different entries signs a second history. An owner who kept a tree
// head of the first history detects it.
func TestForkAgainstTrustedHead(t *testing.T) {
	signer := ecdsaKey(t)
	f := newFixture(t, signer, 0)
	f.appendN(t, 5)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := f.db.BackupFile(backup); err != nil {
		t.Fatal(err)
	}
	f.appendN(t, 5) // indices 5..9
	var trusted *audit.TreeHead
	f.db.View(func(tx store.Tx) error {
		var err error
		trusted, err = f.log.SignTreeHead(tx)
		return err
	})

	db2, err := openDB(t, backup, f.root)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	lg2 := auditlog.New(auditlog.Config{Signer: signer, Blinder: db2})
	for i := 5; i < 10; i++ {
		e := sampleEntry(i)
		e.Reason = "a different history"
		if err := db2.Update(func(tx store.Tx) error { _, err := lg2.Append(tx, e); return err }); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	db2.View(func(tx store.Tx) error { _, err := lg2.Export(tx, &buf); return err })
	if ps := verify(t, buf.Bytes(), signer.Public()); ps != nil {
		t.Fatalf("the fork verifies on its own: %v", ps)
	}
	ps := verify(t, buf.Bytes(), signer.Public(), trusted)
	expectProblem(t, ps, audit.ProblemInconsistentHead, -1)
	if !strings.Contains(ps[0].Detail, "rewritten before entry 10") {
		t.Fatal(ps[0])
	}
}

// TestRewriteLocalizedByCheckpoints: a forger who recomputes every link after
// the entry they changed defeats the links; signed checkpoints bound where.
func TestRewriteLocalizedByCheckpoints(t *testing.T) {
	signer := ed25519Key(t)
	f := newFixture(t, signer, 4)
	f.appendN(t, 12)
	ls := lines(f.export(t))
	var hdr audit.ExportHeader
	json.Unmarshal([]byte(ls[0]), &hdr)
	if len(hdr.Checkpoints) != 3 {
		t.Fatalf("%d checkpoints, want 3 (sizes 4, 8, 12)", len(hdr.Checkpoints))
	}
	relink := func(ls []string, from int) {
		for i := from; i < len(ls)-1; i++ {
			prev := audit.LeafHash([]byte(ls[i]))
			ls[i+1] = editEntry(t, ls[i+1], func(m map[string]any) { m["prev"] = fmt.Sprintf("%x", prev) })
		}
	}
	t.Run("rewrite from entry 9", func(t *testing.T) {
		c := append([]string(nil), ls...)
		c[1+9] = editEntry(t, c[1+9], func(m map[string]any) { m["reason"] = "forged" })
		relink(c, 1+9)
		ps := verify(t, join(c), signer.Public())
		expectProblem(t, ps, audit.ProblemModifiedEntry, 11)
		if !strings.Contains(ps[0].Detail, "entries 8 to 11 were rewritten") {
			t.Fatal(ps[0])
		}
	})
	t.Run("rewrite of entry 8 alone, checkpoint after it", func(t *testing.T) {
		f2 := newFixture(t, signer, 4)
		f2.appendN(t, 9)
		c := lines(f2.export(t))
		c[1+8] = editEntry(t, c[1+8], func(m map[string]any) { m["reason"] = "forged" })
		expectProblem(t, verify(t, join(c), signer.Public()), audit.ProblemModifiedEntry, 8)
	})
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

// The server's store blinds the log's per-key index.
var _ auditlog.Blinder = (*store.DB)(nil)

// openDB opens an encrypted store in a bbolt file, as the key service does.
func openDB(t testing.TB, path string, root []byte) (*store.DB, error) {
	b, err := boltstore.Open(path, nil)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(b, root, nil)
	if err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}
