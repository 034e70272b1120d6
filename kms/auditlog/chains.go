package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
)

// trail is the stored state of one trail: its slot in the chain table, its
// entry count, the index of its newest entry and its chain hash.
//
//	flags (1 byte, bit 0: has a slot) | slot | count | last (uint64 BE each) | chain (32 bytes, or absent when count is 0)
type trail struct {
	id      audit.TrailID
	key     []byte // the blinded store key
	hasSlot bool
	slot    uint64
	count   uint64
	last    uint64
	chain   []byte
}

func (tr *trail) encode() []byte {
	var f byte
	if tr.hasSlot {
		f = 1
	}
	b := []byte{f}
	b = binary.BigEndian.AppendUint64(b, tr.slot)
	b = binary.BigEndian.AppendUint64(b, tr.count)
	b = binary.BigEndian.AppendUint64(b, tr.last)
	return append(b, tr.chain...)
}

func decodeTrail(id audit.TrailID, key, b []byte) (*trail, error) {
	if len(b) != 25 && len(b) != 25+sha256.Size || b[0] > 1 {
		return nil, fmt.Errorf("audit: the chain state of %s is corrupt", id)
	}
	tr := &trail{id: id, key: key, hasSlot: b[0] == 1,
		slot: binary.BigEndian.Uint64(b[1:]), count: binary.BigEndian.Uint64(b[9:]), last: binary.BigEndian.Uint64(b[17:])}
	if len(b) > 25 {
		tr.chain = bytes.Clone(b[25:])
	}
	if (tr.count == 0) != (tr.chain == nil) {
		return nil, fmt.Errorf("audit: the chain state of %s is corrupt", id)
	}
	return tr, nil
}

func (tr *trail) head() *audit.ChainHead {
	return &audit.ChainHead{TrailID: tr.id, Count: tr.count, Last: tr.last, Chain: tr.chain}
}

// loadTrail returns the state of trail id (empty when it has no entry yet).
func (l *Log) loadTrail(t store.Tx, id audit.TrailID) (*trail, error) {
	if len(id.Tenant) > 1024 || len(id.Key) > 1024 {
		return nil, fmt.Errorf("audit: trail names longer than 1024 bytes")
	}
	k := l.blind(id.Tenant, id.Key)
	b, err := get(t, bktChains, k)
	if err != nil {
		return nil, err
	}
	if b == nil {
		n, err := chainCount(t)
		if err != nil {
			return nil, err
		}
		// A new trail takes the next slot of the chain table.
		return &trail{id: id, key: k, slot: n}, nil
	}
	tr, err := decodeTrail(id, k, b)
	if err != nil {
		return nil, err
	}
	if !tr.hasSlot {
		if tr.slot, err = chainCount(t); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

func chainCount(t store.Tx) (uint64, error) {
	v, err := get(t, bktMeta, []byte("chains"))
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, errors.New("audit: stored chain table size is missing or corrupt")
	}
	return binary.BigEndian.Uint64(v), nil
}

// extendTrail records entry n (leaf hash leaf) as the newest of tr and
// updates the chain table.
func (l *Log) extendTrail(t store.Tx, tr *trail, n uint64, leaf []byte) error {
	tr.count++
	tr.last = n
	tr.chain = audit.ChainStep(tr.chain, leaf)
	lh := tr.head().LeafHash()
	size, err := chainCount(t)
	if err != nil {
		return err
	}
	if !tr.hasSlot {
		if tr.slot != size {
			return fmt.Errorf("audit: a new trail takes slot %d of a chain table of %d", tr.slot, size)
		}
		r, err := rangeIn(t, bktChainNodes, size)
		if err != nil {
			return err
		}
		var visitErr error
		if err := r.Append(lh, func(id compact.NodeID, h []byte) {
			if visitErr == nil {
				visitErr = put(t, bktChainNodes, nodeKey(id), h)
			}
		}); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if visitErr != nil {
			return visitErr
		}
		if err := put(t, bktMeta, []byte("chains"), u64(size+1)); err != nil {
			return err
		}
		tr.hasSlot = true
	} else if err := setChainLeaf(t, tr.slot, size, lh); err != nil {
		return err
	}
	return put(t, bktChains, tr.key, tr.encode())
}

// setChainLeaf replaces the leaf at slot of a chain table of size slots
// and rehashes every perfect subtree above it.
func setChainLeaf(t store.Tx, slot, size uint64, h []byte) error {
	if slot >= size {
		return fmt.Errorf("audit: slot %d of a chain table of %d", slot, size)
	}
	if err := put(t, bktChainNodes, nodeKey(compact.NewNodeID(0, slot)), h); err != nil {
		return err
	}
	for level := uint(0); ; level++ {
		idx := slot >> level
		parent := idx >> 1
		if (parent+1)<<(level+1) > size {
			return nil
		}
		sib, err := nodeIn(t, bktChainNodes, compact.NewNodeID(level, idx^1))
		if err != nil {
			return err
		}
		if idx&1 == 0 {
			h = audit.HashChildren(h, sib)
		} else {
			h = audit.HashChildren(sib, h)
		}
		if err := put(t, bktChainNodes, nodeKey(compact.NewNodeID(level+1, parent)), h); err != nil {
			return err
		}
	}
}

// chainTable returns the chain table's size and root.
func chainTable(t store.Tx) (uint64, []byte, error) {
	n, err := chainCount(t)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, audit.EmptyRoot(), nil
	}
	r, err := rangeIn(t, bktChainNodes, n)
	if err != nil {
		return 0, nil, err
	}
	root, err := r.GetRootHash(nil)
	return n, root, err
}

func hexList(in [][]byte) []attest.Hex {
	out := make([]attest.Hex, len(in))
	for i, h := range in {
		out[i] = h
	}
	return out
}

// ErrNoTrail means a trail has no entry.
var ErrNoTrail = errors.New("audit: no such trail")

// TrailProof returns trail id's chain head in the current chain table, with
// its inclusion proof in the table and the inclusion proof of its newest
// entry in the log of headSize entries (the size of a tree head signed in
// the same transaction).
func (l *Log) TrailProof(tx store.Tx, id audit.TrailID, headSize uint64) (*audit.TrailProof, error) {
	t := ns(tx)
	tr, err := l.loadTrail(t, id)
	if err != nil {
		return nil, err
	}
	if tr.count == 0 || !tr.hasSlot {
		return nil, fmt.Errorf("%w: %s has no entry", ErrNoTrail, id)
	}
	size, err := chainCount(t)
	if err != nil {
		return nil, err
	}
	nodes, err := proof.Inclusion(tr.slot, size)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	sp, err := proofHashesIn(t, bktChainNodes, nodes)
	if err != nil {
		return nil, err
	}
	lp, err := l.InclusionProof(tx, tr.last, headSize)
	if err != nil {
		return nil, err
	}
	return &audit.TrailProof{Tenant: id.Tenant, Key: id.Key, Slot: tr.slot, Count: tr.count, Last: tr.last, Chain: tr.chain,
		SlotProof: hexList(sp), LastProof: hexList(lp)}, nil
}

// TrailIndices returns the indices of every entry of trail id, in order,
// from the per-key index, and checks them against the trail's chain state:
// a row deleted from or added to the index is an error, not a silently
// shorter trail.
func (l *Log) TrailIndices(tx store.Tx, id audit.TrailID) ([]uint64, error) {
	t := ns(tx)
	tr, err := l.loadTrail(t, id)
	if err != nil {
		return nil, err
	}
	prefix := l.blind(id.Tenant, id.Key)
	var out []uint64
	err = t.Keys(bktByKey, prefix, nil, func(k []byte) error {
		if len(k) == len(prefix)+8 {
			out = append(out, binary.BigEndian.Uint64(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != tr.count || (len(out) > 0 && out[len(out)-1] != tr.last) {
		return nil, fmt.Errorf("audit: the index of %s lists %d entries but its chain has %d: the store was tampered with", id, len(out), tr.count)
	}
	return out, nil
}

// upgrade brings a log written before format 2 to format 2: it replays
// every entry to compute each trail's count, newest entry and chain hash,
// indexes the tenant-level entries the old per-key index left out, and
// appends one trail_upgrade entry per trail, in the order the trails first
// appear, which gives each a slot in the chain table and chains it from
// there. Old entries stay as they are; the chain hashes cover them.
func (l *Log) upgrade(tx store.Tx) error {
	t := ns(tx)
	n, err := size(t)
	if err != nil {
		return err
	}
	var order []*trail
	first := map[audit.TrailID]uint64{}
	trails := map[audit.TrailID]*trail{}
	for i := uint64(0); i < n; i++ {
		raw, err := get(t, bktEntries, u64(i))
		if err != nil {
			return err
		}
		if raw == nil {
			return fmt.Errorf("audit: upgrade: entry %d is missing", i)
		}
		var e audit.Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("audit: upgrade: entry %d is corrupt: %w", i, err)
		}
		id, ok := e.Trail()
		if !ok {
			continue
		}
		tr := trails[id]
		if tr == nil {
			tr = &trail{id: id, key: l.blind(id.Tenant, id.Key)}
			trails[id], first[id] = tr, i
			order = append(order, tr)
		}
		tr.count++
		tr.last = i
		tr.chain = audit.ChainStep(tr.chain, audit.LeafHash(raw))
		if id.Key == "" {
			if err := put(t, bktByKey, append(bytes.Clone(tr.key), u64(i)...), nil); err != nil {
				return err
			}
		}
	}
	for _, tr := range order {
		if err := put(t, bktChains, tr.key, tr.encode()); err != nil {
			return err
		}
	}
	if err := put(t, bktMeta, []byte("chains"), u64(0)); err != nil {
		return err
	}
	if err := put(t, bktMeta, []byte("format"), []byte{Format}); err != nil {
		return err
	}
	for _, tr := range order {
		_, err := l.Append(tx, audit.Entry{Type: audit.TypeTrailUpgrade, Tenant: tr.id.Tenant, Key: tr.id.Key, Actor: "ppml",
			Reason: fmt.Sprintf("audit format %d: the %d earlier entries of this trail, from entry %d, are chained from here", Format, tr.count, first[tr.id])})
		if err != nil {
			return fmt.Errorf("audit: upgrade: %w", err)
		}
	}
	return nil
}
