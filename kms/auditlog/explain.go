package auditlog

import (
	"encoding/binary"
	"fmt"

	"github.com/ppml/ppml/store"
)

// DescribeBucket names the log's buckets (full store paths) for operators;
// "" for others.
func DescribeBucket(bucket string) string {
	switch bucket {
	case Namespace + "/" + bktEntries:
		return "audit log entries"
	case Namespace + "/" + bktNodes:
		return "audit log Merkle tree nodes"
	case Namespace + "/" + bktByKey:
		return "audit log per-key index"
	case Namespace + "/" + bktCheckpoints:
		return "audit log signed checkpoints"
	case Namespace + "/" + bktMeta:
		return "audit log size and id"
	}
	return ""
}

// maxExplained bounds the rows Explain names per bucket.
const maxExplained = 20

// Explain names the rows of the log's bucket (a full store path) that are
// missing or point at the wrong entry, for a store whose state check
// failed (store.Options.Explain). tx reads the store; present reports
// whether a row exists.
func Explain(b Blinder, tx store.Tx, bucket string, present func(key []byte) bool) []string {
	l := New(Config{Blinder: b})
	var out []string
	add := func(format string, args ...any) {
		if len(out) < maxExplained {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	switch bucket {
	case Namespace + "/" + bktMeta:
		for _, k := range []string{"size", "log_id"} {
			if !present([]byte(k)) {
				add("the audit log's %s record (_audit/meta/%s) was deleted", k, k)
			}
		}
	case Namespace + "/" + bktEntries:
		n, err := l.Size(tx)
		if err != nil {
			return nil
		}
		for i := range n {
			if !present(u64(i)) {
				add("audit entry %d was deleted", i)
			}
		}
	case Namespace + "/" + bktByKey:
		n, err := l.Size(tx)
		if err != nil {
			return nil
		}
		for i := range n {
			e, _, err := l.Entry(tx, i)
			if err != nil || e.Key == "" {
				continue
			}
			if !present(append(l.blind(e.Tenant, e.Key), u64(i)...)) {
				add("the index row of audit entry %d (%s, key %q of tenant %q) was deleted: `ppml audit list --key %s` would not show that entry", i, e.Type, e.Key, e.Tenant, e.Key)
			}
		}
		ns(tx).Keys(bktByKey, nil, nil, func(k []byte) error {
			if len(k) < 8 {
				add("a per-key index row has a malformed key %x", k)
				return nil
			}
			i := binary.BigEndian.Uint64(k[len(k)-8:])
			if e, _, err := l.Entry(tx, i); err != nil || string(l.blind(e.Tenant, e.Key)) != string(k[:len(k)-8]) {
				add("a per-key index row points at audit entry %d, which is not about that key", i)
			}
			return nil
		})
	}
	return out
}
