package auditlog_test

import (
	"errors"
	"testing"

	"github.com/ppml/ppml/store"
)

// BenchmarkAppend measures one audit entry per committed transaction (one
// fsync each): the cost of recording a release on its own.
func BenchmarkAppend(b *testing.B) {
	f := newFixture(b, ecdsaKey(b), 0)
	e := sampleEntry(1)
	b.ResetTimer()
	for b.Loop() {
		if err := f.db.Update(func(tx store.Tx) error { _, err := f.log.Append(tx, e); return err }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendBatch measures concurrent appends that share commits
// (store.DB.Batch), as a server handling many releases at once would.
func BenchmarkAppendBatch(b *testing.B) {
	f := newFixture(b, ecdsaKey(b), 0)
	e := sampleEntry(1)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := f.db.Batch(func(tx store.Tx) error { _, err := f.log.Append(tx, e); return err }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendNoCommit measures the log's own work per entry (hashing,
// encryption, node writes) without the commit: every append runs in one
// transaction that is rolled back at the end.
func BenchmarkAppendNoCommit(b *testing.B) {
	f := newFixture(b, ecdsaKey(b), 0)
	e := sampleEntry(1)
	rollback := errors.New("rollback")
	err := f.db.Update(func(tx store.Tx) error {
		b.ResetTimer()
		for b.Loop() {
			if _, err := f.log.Append(tx, e); err != nil {
				return err
			}
		}
		return rollback
	})
	if err != rollback {
		b.Fatal(err)
	}
}
