package auditlog

import (
	"encoding/binary"
	"fmt"

	"github.com/ppml/ppml/audit"
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
	case Namespace + "/" + bktChains:
		return "audit log trail chain states"
	case Namespace + "/" + bktChainNodes:
		return "audit log chain table nodes"
	case Namespace + "/" + bktCheckpoints:
		return "audit log signed checkpoints"
	case Namespace + "/" + bktMeta:
		return "audit log size, id, format and chain table size"
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
		for _, k := range []string{"size", "log_id", "format", "chains"} {
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
			if err != nil || e.Key == "" && e.Tenant == "" {
				continue
			}
			if present(append(l.blind(e.Tenant, e.Key), u64(i)...)) {
				continue
			}
			if e.Key == "" {
				add("the index row of audit entry %d (%s, on the trail of tenant %q) was deleted: `ppml audit list` by that tenant would not show that entry", i, e.Type, e.Tenant)
			} else {
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
	case Namespace + "/" + bktChains:
		// Every trail with a chained entry has a chain state row; a row
		// of no such trail was added.
		n, err := l.Size(tx)
		if err != nil {
			return nil
		}
		trails := map[string]audit.TrailID{}
		for i := range n {
			e, _, err := l.Entry(tx, i)
			if err != nil || !e.Chained() {
				continue
			}
			id, _ := e.Trail()
			trails[string(l.blind(id.Tenant, id.Key))] = id
		}
		for k, id := range trails {
			if !present([]byte(k)) {
				add("the chain state of the trail of %s was deleted: its trail can no longer be exported", trailName(id))
			}
		}
		ns(tx).Keys(bktChains, nil, nil, func(k []byte) error {
			if _, ok := trails[string(k)]; !ok {
				add("a chain state row %x belongs to no trail of the log", k)
			}
			return nil
		})
	}
	return out
}

func trailName(id audit.TrailID) string {
	if id.Key == "" {
		return fmt.Sprintf("tenant %q", id.Tenant)
	}
	return fmt.Sprintf("key %q of tenant %q", id.Key, id.Tenant)
}
