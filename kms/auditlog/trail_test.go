package auditlog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/store"
)

func (f *fixture) add(t testing.TB, es ...audit.Entry) {
	t.Helper()
	for _, e := range es {
		if err := f.db.Update(func(tx store.Tx) error { _, err := f.log.Append(tx, e); return err }); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) trails(t testing.TB, from []uint64, ids ...audit.TrailID) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.db.View(func(tx store.Tx) error { _, err := f.log.ExportTrails(tx, &buf, ids, from); return err }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) head(t testing.TB) *audit.TreeHead {
	t.Helper()
	var h *audit.TreeHead
	if err := f.db.View(func(tx store.Tx) error { var err error; h, err = f.log.SignTreeHead(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return h
}

func verifyTrail(t *testing.T, data []byte, opts audit.TrailOptions) []audit.Problem {
	t.Helper()
	res, err := audit.VerifyTrail(bytes.NewReader(data), opts)
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

// mixedEntries appends entries about two tenants' keys, their tenant
// trails and no tenant at all.
func mixedEntries(f *fixture, t testing.TB, n int) {
	for i := range n {
		e := audit.Entry{Type: audit.TypeRelease, Actor: "tok", Decision: audit.Allow}
		switch i % 6 {
		case 0, 3:
			e.Tenant, e.Key = "alice", "alice/a"
		case 1:
			e.Tenant, e.Key = "alice", "alice/b"
		case 2:
			e.Type, e.Tenant, e.Reason = audit.TypeTokenIssue, "alice", fmt.Sprintf("token %d", i)
		case 4:
			e.Tenant, e.Key = "bob", "bob/x"
		case 5:
			e.Type, e.Key, e.Decision, e.Rule = audit.TypeDenial, "nobody/k", audit.Deny, "unknown_key"
		}
		f.add(t, e)
	}
}

func TestTrailExportProvesCompleteness(t *testing.T) {
	f := newFixture(t, ecdsaKey(t), 5)
	mixedEntries(f, t, 30)
	pub := f.signer.Public()
	if ps := verify(t, f.export(t), pub); ps != nil {
		t.Fatalf("full export with chains: %v", ps)
	}
	alice := []audit.TrailID{{Tenant: "alice", Key: "alice/a"}, {Tenant: "alice"}}
	data := f.trails(t, nil, alice...)
	opts := audit.TrailOptions{PublicKey: pub, Keys: []string{"alice/a"}, Tenant: "alice"}
	res, err := audit.VerifyTrail(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trails) != 2 || res.Trails[0].Count != 10 || res.Trails[1].Count != 5 || res.Entries != 15 {
		t.Fatalf("trails %+v, %d entries", res.Trails, res.Entries)
	}
	ls := lines(data)
	idx := func(l string) int64 {
		var m struct{ Index int64 }
		json.Unmarshal([]byte(l), &m)
		return m.Index
	}
	var bob string
	for _, l := range lines(f.export(t))[1:] {
		if strings.Contains(l, `"tenant":"bob"`) {
			bob = l
		}
	}
	lastA := 0 // the line of alice/a's newest entry
	for i, l := range ls[1:] {
		if strings.Contains(l, `"key":"alice/a"`) {
			lastA = i + 1
		}
	}
	var hdr audit.TrailHeader
	json.Unmarshal([]byte(ls[0]), &hdr)
	hdr.Trails[0].Count--
	badCount, _ := json.Marshal(hdr)
	hdr.Trails[0].Count++
	hdr.TreeHead.ChainRoot, hdr.TreeHead.Chains = nil, 0
	v1Head, _ := json.Marshal(hdr)
	drop := func(i int) []string { return append(append([]string(nil), ls[:i]...), ls[i+1:]...) }
	set := func(i int, v string) []string { c := append([]string(nil), ls...); c[i] = v; return c }
	cases := []struct {
		name  string
		data  []string
		opts  audit.TrailOptions
		kind  string
		index int64
	}{
		{"newest entry of a key dropped", drop(lastA), opts, audit.ProblemTruncated, idx(ls[lastA])},
		{"newest entry of the export dropped", ls[:len(ls)-1], opts, audit.ProblemTruncated, idx(ls[len(ls)-1])},
		{"middle entry dropped", drop(3), opts, audit.ProblemDeletedEntry, idx(ls[4])},
		{"entry changed", set(3, editEntry(t, ls[3], func(m map[string]any) { m["decision"] = "deny" })), opts, audit.ProblemModifiedEntry, idx(ls[3])},
		{"newest entry changed", set(lastA, editEntry(t, ls[lastA], func(m map[string]any) { m["actor"] = "forged" })), opts, audit.ProblemModifiedEntry, idx(ls[lastA])},
		{"another tenant's entry spliced in", append(append([]string(nil), ls...), bob), opts, audit.ProblemExtraEntry, idx(bob)},
		{"reordered", append([]string{ls[0], ls[2], ls[1]}, ls[3:]...), opts, audit.ProblemReordered, idx(ls[1])},
		{"chain head count edited", set(0, string(badCount)), opts, audit.ProblemInconsistentHead, -1},
		{"chain root stripped from the head", set(0, string(v1Head)), opts, audit.ProblemBadSignature, -1},
		{"key not exported", ls, audit.TrailOptions{PublicKey: pub, Keys: []string{"alice/b"}}, audit.ProblemMissingTrail, -1},
		{"tenant trail not exported", ls, audit.TrailOptions{PublicKey: pub, Tenant: "bob"}, audit.ProblemMissingTrail, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectProblem(t, verifyTrail(t, join(c.data), c.opts), c.kind, c.index)
		})
	}
}

func TestTrailAgainstTrustedHeads(t *testing.T) {
	f := newFixture(t, ed25519Key(t), 0)
	mixedEntries(f, t, 12)
	h1 := f.head(t)
	backup := f.backup(t) // the database as it is now, as a backup holds it
	f2 := f
	mixedEntries(f2, t, 12)
	h2 := f2.head(t)
	pub := f.signer.Public()
	id := audit.TrailID{Tenant: "alice", Key: "alice/a"}

	// The log grew: it extends both heads, given the proofs.
	ok := f2.trails(t, []uint64{h1.Size, h2.Size}, id)
	if ps := verifyTrail(t, ok, audit.TrailOptions{PublicKey: pub, Trusted: []*audit.TreeHead{h1, h2}}); ps != nil {
		t.Fatal(ps)
	}
	noProof := f2.trails(t, nil, id)
	expectProblem(t, verifyTrail(t, noProof, audit.TrailOptions{PublicKey: pub, Trusted: []*audit.TreeHead{h1}}), audit.ProblemInconsistentHead, -1)

	// Rollback: the backup, served again, is shorter than a head the owner kept.
	rolled := backup.trails(t, []uint64{h2.Size}, id)
	ps := verifyTrail(t, rolled, audit.TrailOptions{PublicKey: pub, Trusted: []*audit.TreeHead{h2}})
	expectProblem(t, ps, audit.ProblemInconsistentHead, -1)
	if !strings.Contains(ps[0].Detail, "shorter than one you trusted") {
		t.Fatal(ps[0].Detail)
	}
	// Fork: the restored server appends other entries past the kept head's size.
	for range 20 {
		backup.add(t, audit.Entry{Type: audit.TypeRelease, Tenant: "alice", Key: "alice/a", Reason: "another history"})
	}
	forked := backup.trails(t, []uint64{h2.Size}, id)
	ps = verifyTrail(t, forked, audit.TrailOptions{PublicKey: pub, Trusted: []*audit.TreeHead{h2}})
	expectProblem(t, ps, audit.ProblemInconsistentHead, -1)
	if !strings.Contains(ps[0].Detail, "forked") {
		t.Fatal(ps[0].Detail)
	}
	// The full export of the forked log fails against the kept head too.
	expectProblem(t, verify(t, backup.export(t), pub, h2), audit.ProblemInconsistentHead, -1)
}

// The chain table the server keeps must be exactly the one a verifier
// replays from the entries, at every checkpoint, whatever the order in
// which trails grow.
func TestChainTableMatchesReplay(t *testing.T) {
	f := newFixture(t, ed25519Key(t), 7)
	r := rand.New(rand.NewPCG(1, 2))
	var ids []audit.TrailID
	for i := range 37 {
		ids = append(ids, audit.TrailID{Tenant: fmt.Sprintf("t%d", i%5), Key: fmt.Sprintf("t%d/k%d", i%5, i)})
		if i%5 == 0 {
			ids = append(ids, audit.TrailID{Tenant: fmt.Sprintf("t%d", i%5)})
		}
	}
	err := f.db.Update(func(tx store.Tx) error {
		for range 400 {
			id := ids[r.IntN(len(ids))]
			if _, err := f.log.Append(tx, audit.Entry{Type: audit.TypeRelease, Tenant: id.Tenant, Key: id.Key}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := f.signer.Public()
	if ps := verify(t, f.export(t), pub); ps != nil {
		t.Fatal(ps)
	}
	for _, id := range ids[:10] {
		if ps := verifyTrail(t, f.trails(t, nil, id), audit.TrailOptions{PublicKey: pub}); ps != nil {
			t.Fatal(id, ps)
		}
	}
}

// A server that signs a chain table other than the one its entries define
// (here: one entry's chain fields rewritten and the trees recomputed, as a
// key service with the signing key could) is caught by the full verifier.
func TestFullVerifierChecksChainFields(t *testing.T) {
	f := newFixture(t, ed25519Key(t), 0)
	mixedEntries(f, t, 8)
	ls := lines(f.export(t))
	ls[4] = editEntry(t, ls[4], func(m map[string]any) { m["key_seq"] = 7 })
	// Re-sign a head over the rewritten entries, as the server itself could.
	var raws [][]byte
	for i, l := range ls[1:] {
		if i > 0 {
			ls[i+1] = editEntry(t, l, func(m map[string]any) { m["prev"] = fmt.Sprintf("%x", audit.LeafHash(raws[i-1])) })
		}
		raws = append(raws, []byte(ls[i+1]))
	}
	var hdr audit.ExportHeader
	json.Unmarshal([]byte(ls[0]), &hdr)
	hdr.TreeHead.RootHash = mth(raws)
	if err := hdr.TreeHead.Sign(f.signer); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(hdr)
	ls[0] = string(b)
	ps := verify(t, join(ls), f.signer.Public())
	found := false
	for _, p := range ps {
		found = found || p.Kind == audit.ProblemBrokenChain && p.Index == 3 && strings.Contains(p.Detail, "says it is entry 7")
	}
	if !found {
		t.Fatalf("want broken_chain at entry 3 among %v", ps)
	}
	// The head re-signed over them commits to the chain table the server
	// kept, which the rewritten entries no longer give.
	expectProblem(t, ps, audit.ProblemInconsistentHead, -1)
}

// backup copies the database and opens the copy as another fixture with
// the same root key and signer, as a server restored from a backup.
func (f *fixture) backup(t testing.TB) *fixture {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.db")
	if err := f.db.BackupFile(p); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(t, p, f.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{db: db, log: auditlog.New(auditlog.Config{Signer: f.signer, Blinder: db}), signer: f.signer, path: p, root: f.root}
}
