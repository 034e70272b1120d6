package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// TrailID names a trail: the entries about one key of a tenant, or, with
// Key empty, about the tenant itself (tokens, tenant changes, what an
// administrator did, refusal summaries).
type TrailID struct {
	Tenant string `json:"tenant"`
	Key    string `json:"key,omitempty"`
}

func (t TrailID) String() string {
	if t.Key == "" {
		return "tenant " + t.Tenant
	}
	return "key " + t.Key + " of tenant " + t.Tenant
}

// maxTrailName bounds a trail's tenant and key name in a chain head (they
// are length-prefixed with 16 bits).
const maxTrailName = 1024

// ChainStep returns the chain hash of a trail after appending the entry
// whose RFC 6962 leaf hash is leaf to a trail whose chain hash was prev
// (nil for an empty trail):
//
//	SHA-256(0x02 || prev || leaf), with prev = 32 zero bytes for the first entry.
func ChainStep(prev, leaf []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0x02})
	if prev == nil {
		h.Write(make([]byte, sha256.Size))
	} else {
		h.Write(prev)
	}
	h.Write(leaf)
	return h.Sum(nil)
}

// ChainHead is what the chain table holds for one trail at a tree size: how
// many entries it has, the index of the newest, and its chain hash. The
// signed tree head commits to the table (TreeHead.ChainRoot), so a trail
// exported with its chain head and the head's inclusion proof is provably
// complete up to the tree head.
type ChainHead struct {
	TrailID
	Count uint64 `json:"count"`
	Last  uint64 `json:"last"`
	Chain []byte `json:"-"`
}

// Leaf returns the bytes hashed (as an RFC 6962 leaf) into the chain table:
//
//	"ppml audit chain head v1" 0x00 | uint16 len(tenant) | tenant |
//	uint16 len(key) | key | uint64 count | uint64 last | chain (32 bytes)
//
// all integers big-endian.
func (h *ChainHead) Leaf() []byte {
	b := []byte("ppml audit chain head v1\x00")
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Tenant)))
	b = append(b, h.Tenant...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Key)))
	b = append(b, h.Key...)
	b = binary.BigEndian.AppendUint64(b, h.Count)
	b = binary.BigEndian.AppendUint64(b, h.Last)
	return append(b, h.Chain...)
}

// LeafHash is the RFC 6962 leaf hash of Leaf.
func (h *ChainHead) LeafHash() []byte { return LeafHash(h.Leaf()) }

// Check says why h cannot be a chain head.
func (h *ChainHead) Check() error {
	switch {
	case h.Tenant == "":
		return errors.New("chain head names no tenant")
	case len(h.Tenant) > maxTrailName || len(h.Key) > maxTrailName:
		return fmt.Errorf("chain head names longer than %d bytes", maxTrailName)
	case h.Count == 0:
		return errors.New("chain head of an empty trail")
	case h.Last+1 < h.Count:
		return fmt.Errorf("chain head says %d entries but the newest is entry %d", h.Count, h.Last)
	case len(h.Chain) != sha256.Size:
		return fmt.Errorf("chain hash is %d bytes, want %d", len(h.Chain), sha256.Size)
	}
	return nil
}

// ChainRoot is the root of the chain table whose slots hold the given leaf
// hashes (ChainHead.LeafHash), an RFC 6962 tree like the log's.
func ChainRoot(leaves [][]byte) []byte {
	rng := rf.NewEmptyRange(0)
	for _, l := range leaves {
		rng.Append(l, nil)
	}
	if len(leaves) == 0 {
		return EmptyRoot()
	}
	r, _ := rng.GetRootHash(nil)
	return r
}

// chainReplay rebuilds the chain table from a log's entries in index
// order, as the key service maintains it, and says where the entries'
// chain fields contradict it.
type chainReplay struct {
	trails   map[TrailID]*replayTrail
	slots    []*replayTrail
	upgraded int64 // index of the first chained entry, -1 before
}

type replayTrail struct {
	id    TrailID
	slot  int64 // -1 until a chained entry gives it one
	count uint64
	last  uint64
	chain []byte
}

func newChainReplay() *chainReplay {
	return &chainReplay{trails: map[TrailID]*replayTrail{}, upgraded: -1}
}

// add applies entry e (index i, leaf hash leaf) and returns why its chain
// fields are wrong, or "".
func (r *chainReplay) add(i uint64, e *Entry, leaf []byte) string {
	id, ok := e.Trail()
	if !ok {
		if e.KeySeq != 0 || e.KeySlot != 0 || len(e.KeyChain) != 0 {
			return fmt.Sprintf("entry %d is about no tenant but carries chain fields", i)
		}
		return ""
	}
	t := r.trails[id]
	if t == nil {
		t = &replayTrail{id: id, slot: -1}
		r.trails[id] = t
	}
	var why string
	if !e.Chained() {
		switch {
		case r.upgraded >= 0:
			why = fmt.Sprintf("entry %d about %s has no chain fields although the log chains every such entry since entry %d", i, id, r.upgraded)
		case e.KeySlot != 0 || len(e.KeyChain) != 0:
			why = fmt.Sprintf("entry %d about %s has chain fields but no key_seq", i, id)
		}
	} else {
		if r.upgraded < 0 {
			r.upgraded = int64(i)
		}
		wantSlot := t.slot
		if wantSlot < 0 {
			wantSlot = int64(len(r.slots))
		}
		switch {
		case e.KeySeq != t.count+1:
			why = fmt.Sprintf("entry %d says it is entry %d about %s, but it is the %s", i, e.KeySeq, id, ordinal(t.count+1))
		case !bytes.Equal(e.KeyChain, t.chain):
			why = fmt.Sprintf("entry %d records a chain hash of %s that the %d entries before it do not give", i, id, t.count)
		case int64(e.KeySlot) != wantSlot:
			why = fmt.Sprintf("entry %d puts %s at slot %d of the chain table, which holds it at slot %d", i, id, e.KeySlot, wantSlot)
		}
		if t.slot < 0 {
			t.slot = int64(len(r.slots))
			r.slots = append(r.slots, t)
		}
	}
	t.count++
	t.last = i
	t.chain = ChainStep(t.chain, leaf)
	return why
}

// root is the chain table's root and size now.
func (r *chainReplay) root() ([]byte, uint64) {
	leaves := make([][]byte, len(r.slots))
	for i, t := range r.slots {
		h := ChainHead{TrailID: t.id, Count: t.count, Last: t.last, Chain: t.chain}
		leaves[i] = h.LeafHash()
	}
	return ChainRoot(leaves), uint64(len(leaves))
}

func ordinal(n uint64) string {
	suf := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suf = "st"
	case n%10 == 2:
		suf = "nd"
	case n%10 == 3:
		suf = "rd"
	}
	return fmt.Sprintf("%d%s", n, suf)
}
