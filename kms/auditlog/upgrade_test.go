package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// appendFormat1 appends e as a key service before format 2 did: main tree,
// per-key index of keyed entries only, no chain fields, no chain table.
func appendFormat1(tx store.Tx, l *Log, e audit.Entry, now time.Time) error {
	t := ns(tx)
	if id, _ := get(t, bktMeta, []byte("log_id")); id == nil {
		put(t, bktMeta, []byte("log_id"), bytes.Repeat([]byte{7}, 16))
		put(t, bktMeta, []byte("size"), u64(0))
	}
	n, err := size(t)
	if err != nil {
		return err
	}
	e.Index, e.Time = n, now
	if n > 0 {
		if e.Prev, err = node(t, compact.NewNodeID(0, n-1)); err != nil {
			return err
		}
	}
	enc, err := e.Encode()
	if err != nil {
		return err
	}
	r, err := rangeAt(t, n)
	if err != nil {
		return err
	}
	if err := r.Append(audit.LeafHash(enc), func(id compact.NodeID, h []byte) { put(t, bktNodes, nodeKey(id), h) }); err != nil {
		return err
	}
	put(t, bktEntries, u64(n), enc)
	if e.Key != "" {
		put(t, bktByKey, append(l.blind(e.Tenant, e.Key), u64(n)...), nil)
	}
	return put(t, bktMeta, []byte("size"), u64(n+1))
}

// A log written before format 2 is upgraded at Init: its trails get chains
// that cover their old entries, old exports and checkpoints still verify,
// and an owner's trail export proves the old entries complete too.
func TestUpgradeFromFormat1(t *testing.T) {
	root := make([]byte, 32)
	rand.Read(root)
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "ppml.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(b, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old := []audit.Entry{
		{Type: audit.TypeTenant, Tenant: "alice", Actor: "admin", Reason: "created tenant alice (owner)"},
		{Type: audit.TypeTokenIssue, Tenant: "alice", Actor: "admin", Reason: "token 1 (owner)"},
		{Type: audit.TypeKeyCreate, Tenant: "alice", Actor: "1", Key: "alice.sales", KeyVersion: 1},
		{Type: audit.TypeDenial, Key: "kms://x/\x1b[31mred", Decision: audit.Deny, Rule: "unknown_key"},
		{Type: audit.TypeRelease, Tenant: "alice", Actor: "2", Key: "alice.sales", KeyVersion: 1, Decision: audit.Allow},
	}
	var v1head *audit.TreeHead
	l := New(Config{Signer: signer, Blinder: db, Now: func() time.Time { return clock }})
	err = db.Update(func(tx store.Tx) error {
		for _, e := range old {
			if err := appendFormat1(tx, l, e, clock); err != nil {
				return err
			}
		}
		r, _ := rangeAt(ns(tx), uint64(len(old)))
		rh, _ := r.GetRootHash(nil)
		v1head, err = audit.SignTreeHead(signer, bytes.Repeat([]byte{7}, 16), uint64(len(old)), rh, clock)
		if err != nil {
			return err
		}
		j, _ := json.Marshal(v1head)
		return put(ns(tx), bktCheckpoints, u64(v1head.Size), j) // a format 1 checkpoint
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := db.Update(l.Init); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(l.Init); err != nil { // idempotent
		t.Fatal(err)
	}
	err = db.Update(func(tx store.Tx) error {
		_, err := l.Append(tx, audit.Entry{Type: audit.TypeDecrypt, Tenant: "alice", Actor: "1", Key: "alice.sales", KeyVersion: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var full, trail bytes.Buffer
	var list []audit.Entry
	err = db.View(func(tx store.Tx) error {
		if _, err := l.Export(tx, &full); err != nil {
			return err
		}
		if list, err = l.ListByKey(tx, "alice", "", 0, 100); err != nil {
			return err
		}
		_, err := l.ExportTrails(tx, &trail, []audit.TrailID{{Tenant: "alice", Key: "alice.sales"}, {Tenant: "alice"}}, []uint64{v1head.Size})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two trails (alice, alice.sales): two trail_upgrade entries, then the decrypt.
	ls := strings.Split(strings.TrimSpace(full.String()), "\n")
	if len(ls) != 1+len(old)+3 || !strings.Contains(ls[1+5], `"type":"trail_upgrade","tenant":"alice",`) ||
		!strings.Contains(ls[1+5], `"key_seq":3`) || !strings.Contains(ls[1+7], `"key_seq":4,"key_slot":1,`) {
		t.Fatalf("upgraded log:\n%s", full.String())
	}
	if len(list) != 3 || list[2].Type != audit.TypeTrailUpgrade {
		t.Fatalf("tenant trail after the upgrade: %+v", list)
	}
	pub := signer.Public()
	if _, err := audit.VerifyExport(bytes.NewReader(full.Bytes()), audit.VerifyOptions{PublicKey: pub, Trusted: []*audit.TreeHead{v1head}}); err != nil {
		t.Fatalf("upgraded log with its format 1 checkpoint: %v", err)
	}
	res, err := audit.VerifyTrail(bytes.NewReader(trail.Bytes()), audit.TrailOptions{PublicKey: pub, Trusted: []*audit.TreeHead{v1head}, Keys: []string{"alice.sales"}, Tenant: "alice"})
	if err != nil {
		t.Fatalf("trail across the upgrade: %v", err)
	}
	if res.Trails[0].Count != 4 || res.Trails[1].Count != 3 {
		t.Fatalf("trails %+v", res.Trails)
	}
	// An old entry changed in the export is caught, though not located.
	tl := strings.Split(strings.TrimSpace(trail.String()), "\n")
	tl[3] = strings.Replace(tl[3], `"key_version":1`, `"key_version":2`, 1) // alice.sales's key_create
	_, err = audit.VerifyTrail(strings.NewReader(strings.Join(tl, "\n")+"\n"), audit.TrailOptions{PublicKey: pub})
	var te *audit.TamperError
	if !errors.As(err, &te) || te.Problems[0].Kind != audit.ProblemModifiedEntry {
		t.Fatalf("old entry changed: %v", err)
	}
}
