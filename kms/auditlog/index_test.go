package auditlog_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
)

// TestListByKeyChecksEntries: a per-key index row that points at an entry
// about another key (an index rewritten under a running server) is an
// error, not a silently wrong trail.
func TestListByKeyChecksEntries(t *testing.T) {
	f := newFixture(t, nil, 0)
	if err := f.db.Update(func(tx store.Tx) error {
		for _, k := range []string{"alice.a", "bob.b", "alice.a"} {
			tenant, _, _ := strings.Cut(k, ".")
			if _, err := f.log.Append(tx, audit.Entry{Type: audit.TypeRelease, Tenant: tenant, Key: k}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list := func() ([]audit.Entry, error) {
		var es []audit.Entry
		err := f.db.View(func(tx store.Tx) error {
			var err error
			es, err = f.log.ListByKey(tx, "alice", "alice.a", 0, 100)
			return err
		})
		return es, err
	}
	if es, err := list(); err != nil || len(es) != 2 || es[0].Index != 0 || es[1].Index != 2 {
		t.Fatalf("trail: %+v %v", es, err)
	}
	// An index row of alice.a pointing at bob's entry 1.
	if err := f.db.Update(func(tx store.Tx) error {
		row := append(f.db.Blind([]byte("alice\x00alice.a")), binary.BigEndian.AppendUint64(nil, 1)...)
		return store.Namespace(tx, "_audit").Put("bykey", row, nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := list(); err == nil || !strings.Contains(err.Error(), "points at entry 1, which is about another key") {
		t.Fatalf("index row pointing at another key's entry: %v", err)
	}
}
