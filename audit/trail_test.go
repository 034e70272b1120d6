package audit

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/ppml/ppml/attest"
)

// memLog is a format 2 log built in memory, as the key service's log
// would build it, so that this package tests exports without storage.
type memLog struct {
	signer  crypto.Signer
	lines   [][]byte
	leaves  [][]byte
	trails  map[TrailID]*memTrail
	slots   []TrailID
	clock   time.Time
	indices map[TrailID][]uint64
}

type memTrail struct {
	slot, count, last uint64
	chain             []byte
}

func newMemLog(signer crypto.Signer) *memLog {
	return &memLog{signer: signer, trails: map[TrailID]*memTrail{}, indices: map[TrailID][]uint64{}, clock: time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)}
}

func (m *memLog) add(t testing.TB, e Entry) {
	n := uint64(len(m.lines))
	e.Index, e.Time = n, m.clock.Add(time.Duration(n)*time.Second)
	if n > 0 {
		e.Prev = m.leaves[n-1]
	}
	id, ok := e.Trail()
	var tr *memTrail
	if ok {
		tr = m.trails[id]
		if tr == nil {
			tr = &memTrail{slot: uint64(len(m.slots))}
			m.trails[id] = tr
			m.slots = append(m.slots, id)
		}
		e.KeySeq, e.KeySlot, e.KeyChain = tr.count+1, tr.slot, tr.chain
	}
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	leaf := LeafHash(enc)
	m.lines, m.leaves = append(m.lines, enc), append(m.leaves, leaf)
	if tr != nil {
		tr.count++
		tr.last = n
		tr.chain = ChainStep(tr.chain, leaf)
		m.indices[id] = append(m.indices[id], n)
	}
}

func (m *memLog) table() [][]byte {
	var out [][]byte
	for _, id := range m.slots {
		tr := m.trails[id]
		out = append(out, (&ChainHead{TrailID: id, Count: tr.count, Last: tr.last, Chain: tr.chain}).LeafHash())
	}
	return out
}

func (m *memLog) head(t testing.TB) *TreeHead {
	tab := m.table()
	h := &TreeHead{LogID: bytes.Repeat([]byte{0x2d}, 16), Size: uint64(len(m.lines)), RootHash: ChainRoot(m.leaves),
		Chains: uint64(len(tab)), ChainRoot: ChainRoot(tab), Timestamp: m.clock.Add(time.Hour)}
	if err := h.Sign(m.signer); err != nil {
		t.Fatal(err)
	}
	return h
}

// inclusionProof is the RFC 6962 inclusion proof of leaf i among leaves.
func inclusionProof(leaves [][]byte, i uint64) []attest.Hex {
	nodes, _ := proof.Inclusion(i, uint64(len(leaves)))
	return rehash(leaves, nodes)
}

func rehash(leaves [][]byte, nodes proof.Nodes) []attest.Hex {
	hs := make([][]byte, len(nodes.IDs))
	for k, id := range nodes.IDs {
		hs[k] = subtree(leaves, id)
	}
	r, _ := nodes.Rehash(hs, HashChildren)
	out := make([]attest.Hex, len(r))
	for k, h := range r {
		out[k] = h
	}
	return out
}

func subtree(leaves [][]byte, id compact.NodeID) []byte {
	begin := id.Index << id.Level
	return ChainRoot(leaves[begin : begin+1<<id.Level])
}

func (m *memLog) fullExport(t testing.TB) []byte {
	j, _ := json.Marshal(ExportHeader{Format: ExportFormat, Version: ExportVersion, TreeHead: m.head(t)})
	return append(bytes.Join(append([][]byte{j}, m.lines...), []byte("\n")), '\n')
}

func (m *memLog) trailExport(t testing.TB, from []uint64, ids ...TrailID) []byte {
	head := m.head(t)
	hdr := TrailHeader{Format: TrailFormat, Version: TrailVersion, TreeHead: head}
	tab := m.table()
	var idx []uint64
	for _, id := range ids {
		tr := m.trails[id]
		hdr.Trails = append(hdr.Trails, &TrailProof{Tenant: id.Tenant, Key: id.Key, Slot: tr.slot, Count: tr.count, Last: tr.last, Chain: tr.chain,
			SlotProof: inclusionProof(tab, tr.slot), LastProof: inclusionProof(m.leaves, tr.last)})
		idx = append(idx, m.indices[id]...)
	}
	for _, f := range from {
		nodes, _ := proof.Consistency(f, head.Size)
		hdr.Consistency = append(hdr.Consistency, &ConsistencyItem{From: f, Proof: rehash(m.leaves, nodes)})
	}
	j, _ := json.Marshal(hdr)
	out := append(j, '\n')
	for i := range m.lines {
		for _, x := range idx {
			if x == uint64(i) {
				out = append(append(out, m.lines[i]...), '\n')
			}
		}
	}
	return out
}

func sampleLog(t testing.TB, n int) *memLog {
	m := newMemLog(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)))
	for i := range n {
		e := Entry{Type: TypeRelease, Actor: "0123456789abcdef", Decision: Allow}
		switch i % 5 {
		case 0, 3:
			e.Tenant, e.Key = "alice", "alice/a"
		case 1:
			e.Type, e.Tenant, e.Reason = TypeTokenIssue, "alice", fmt.Sprintf("token %d <&>", i)
		case 2:
			e.Tenant, e.Key = "bob", "bob/x"
		case 4:
			e.Type, e.Key, e.Decision, e.Rule = TypeDenial, "nobody/k", Deny, "unknown_key"
		}
		m.add(t, e)
	}
	return m
}

var aliceTrails = []TrailID{{Tenant: "alice", Key: "alice/a"}, {Tenant: "alice"}}

func TestVerifyBuiltTrail(t *testing.T) {
	m := sampleLog(t, 23)
	pub := m.signer.Public()
	if _, err := VerifyExport(bytes.NewReader(m.fullExport(t)), VerifyOptions{PublicKey: pub}); err != nil {
		t.Fatalf("full export of a format 2 log: %v", err)
	}
	old := m.head(t)
	m.add(t, Entry{Type: TypeKeyRotate, Tenant: "alice", Key: "alice/a", KeyVersion: 2})
	data := m.trailExport(t, []uint64{old.Size}, aliceTrails...)
	res, err := VerifyTrail(bytes.NewReader(data), TrailOptions{PublicKey: pub, Trusted: []*TreeHead{old}, Keys: []string{"alice/a"}, Tenant: "alice"})
	if err != nil || len(res.Trails) != 2 || res.Trails[0].Count != 10 {
		t.Fatalf("%+v %v", res, err)
	}
	// The newest entry of alice/a dropped.
	ls := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	cut := []byte(strings.Join(ls[:len(ls)-1], "\n") + "\n")
	_, err = VerifyTrail(bytes.NewReader(cut), TrailOptions{PublicKey: pub})
	var te *TamperError
	if !errors.As(err, &te) || te.Problems[0].Kind != ProblemTruncated {
		t.Fatalf("dropped newest: %v", err)
	}
}

func FuzzVerifyTrail(f *testing.F) {
	m := sampleLog(f, 17)
	pub := m.signer.Public()
	old := m.head(f)
	m.add(f, Entry{Type: TypeKeyRotate, Tenant: "alice", Key: "alice/a", KeyVersion: 2})
	good := m.trailExport(f, []uint64{old.Size, 3}, aliceTrails...)
	f.Add(good)
	ls := strings.Split(strings.TrimSuffix(string(good), "\n"), "\n")
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	f.Add(join(ls[:len(ls)-1]))
	f.Add(join(append([]string{ls[0]}, ls[2:]...)))
	f.Add(join([]string{ls[0], ls[2], ls[1], ls[3]}))
	f.Add(m.trailExport(f, nil, TrailID{Tenant: "bob", Key: "bob/x"}))
	f.Add(m.fullExport(f))
	f.Add([]byte("{}"))
	opts := TrailOptions{PublicKey: pub, Trusted: []*TreeHead{old}}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := VerifyTrail(bytes.NewReader(data), opts)
		if res == nil {
			t.Fatal("nil result")
		}
		if err == nil {
			// Whatever verifies accounts for every entry line in complete trails.
			var n uint64
			for _, tr := range res.Trails {
				n += tr.Count
			}
			if res.TreeHead == nil || !res.TreeHead.V2() || n != res.Entries {
				t.Fatalf("verified %d lines for trails of %d entries under %v", res.Entries, n, res.TreeHead)
			}
			return
		}
		var te *TamperError
		if !errors.As(err, &te) || len(te.Problems) == 0 {
			t.Fatalf("error is not a TamperError with problems: %v", err)
		}
	})
}
