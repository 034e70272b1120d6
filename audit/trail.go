package audit

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/transparency-dev/merkle/proof"

	"github.com/ppml/ppml/attest"
)

// Trail export format identifiers (docs/formats/audit-log.md, "Trail
// export"): an owner's own entries, with the proofs that they are every
// entry about the owner's keys and tenant up to a signed tree head.
const (
	TrailFormat  = "ppml-audit-trail"
	TrailVersion = 1
)

// TrailHeader is the first line of a trail export.
type TrailHeader struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	TreeHead *TreeHead `json:"tree_head"`
	// Trails are the exported trails with the proof that the tree head
	// commits to each one's newest entry.
	Trails []*TrailProof `json:"trails"`
	// Consistency proves the tree head an extension of earlier tree heads
	// (those the requester trusts), by their sizes.
	Consistency []*ConsistencyItem `json:"consistency,omitempty"`
}

// TrailProof is one trail's chain head at the tree head (slot, count,
// newest index, chain hash), its RFC 6962 inclusion proof in the chain
// table (SlotProof, at index Slot in a table of TreeHead.Chains slots) and
// the inclusion proof of its newest entry in the log (LastProof).
type TrailProof struct {
	Tenant    string       `json:"tenant"`
	Key       string       `json:"key,omitempty"`
	Slot      uint64       `json:"slot"`
	Count     uint64       `json:"count"`
	Last      uint64       `json:"last"`
	Chain     attest.Hex   `json:"chain"`
	SlotProof []attest.Hex `json:"slot_proof"`
	LastProof []attest.Hex `json:"last_proof"`
}

// ID is the trail the proof is about.
func (p *TrailProof) ID() TrailID { return TrailID{Tenant: p.Tenant, Key: p.Key} }

// Head is the chain head the proof claims.
func (p *TrailProof) Head() *ChainHead {
	return &ChainHead{TrailID: p.ID(), Count: p.Count, Last: p.Last, Chain: p.Chain}
}

// ConsistencyItem is an RFC 6962 consistency proof from the tree of From
// entries to a tree head.
type ConsistencyItem struct {
	From  uint64       `json:"from"`
	Proof []attest.Hex `json:"proof"`
}

// TrailOptions are the inputs of VerifyTrail.
type TrailOptions struct {
	// PublicKey verifies the tree heads (ECDSA P-256 or Ed25519).
	PublicKey crypto.PublicKey
	// Trusted are tree heads kept earlier: the export's tree head must
	// extend each (its header carries the consistency proofs).
	Trusted []*TreeHead
	// Keys are key names whose trails the export must hold.
	Keys []string
	// Tenant, when set, is a tenant whose own trail the export must hold.
	Tenant string
}

func hashes(in []attest.Hex) [][]byte {
	out := make([][]byte, len(in))
	for i, h := range in {
		out[i] = h
	}
	return out
}

type trailLine struct {
	line  int
	index uint64
	leaf  []byte
	e     *Entry
}

// VerifyTrail checks a trail export with nothing but opts.PublicKey: the
// tree head's signature, each trail's chain head against the head's chain
// table, every entry line (canonical, about one of the trails, in order),
// each trail's chain of entries against its chain head (so no entry was
// changed, dropped, added or cut off at the end), the newest entry of each
// trail against the log's root, the trails opts asks for, and consistency
// with opts.Trusted. The error is a *TamperError listing every problem, or
// an I/O error from r.
func VerifyTrail(r io.Reader, opts TrailOptions) (*Result, error) {
	v := &verifier{res: &Result{}, seen: map[string]bool{}}
	res := v.res
	br := bufio.NewReaderSize(r, 64<<10)
	hdrLine, tooLong, err := readLine(br, MaxHeaderSize)
	if errors.Is(err, io.EOF) {
		v.add(ProblemMalformedExport, -1, 1, "the export is empty")
		return res, &TamperError{res.Problems}
	}
	if err != nil {
		return res, fmt.Errorf("audit: read trail export: %w", err)
	}
	if tooLong {
		v.add(ProblemMalformedExport, -1, 1, "header line exceeds %d bytes", MaxHeaderSize)
		return res, &TamperError{res.Problems}
	}
	var hdr TrailHeader
	dec := json.NewDecoder(bytes.NewReader(hdrLine))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		v.add(ProblemMalformedExport, -1, 1, "header is not valid: %v", err)
		return res, &TamperError{res.Problems}
	}
	if hdr.Format != TrailFormat || hdr.Version != TrailVersion {
		v.add(ProblemMalformedExport, -1, 1, "header says format %q version %d, want %q version %d", hdr.Format, hdr.Version, TrailFormat, TrailVersion)
		return res, &TamperError{res.Problems}
	}
	head := hdr.TreeHead
	if head == nil {
		v.add(ProblemMalformedExport, -1, 1, "header has no tree head")
		return res, &TamperError{res.Problems}
	}
	res.TreeHead = head
	if err := head.Verify(opts.PublicKey); err != nil {
		v.add(ProblemBadSignature, -1, 1, "tree head (size %d): %v", head.Size, err)
		return res, &TamperError{res.Problems}
	}
	if !head.V2() {
		v.add(ProblemMalformedExport, -1, 1, "the tree head (size %d) commits to no trails (it was signed by a key service older than audit format 2): it cannot prove a trail complete", head.Size)
		return res, &TamperError{res.Problems}
	}

	// Each trail's chain head must be in the signed chain table.
	trails := map[TrailID]*TrailProof{}
	for i, p := range hdr.Trails {
		if p == nil {
			v.add(ProblemMalformedExport, -1, 1, "trail %d is null", i+1)
			continue
		}
		ch := p.Head()
		if err := ch.Check(); err != nil {
			v.add(ProblemMalformedExport, -1, 1, "trail %d (%s): %v", i+1, p.ID(), err)
			continue
		}
		if trails[p.ID()] != nil {
			v.add(ProblemMalformedExport, -1, 1, "trail %d (%s) is listed twice", i+1, p.ID())
			continue
		}
		if p.Last >= head.Size {
			v.add(ProblemInconsistentHead, -1, 1, "trail %d (%s) ends at entry %d, beyond the %d entries of the tree head", i+1, p.ID(), p.Last, head.Size)
			continue
		}
		if p.Slot >= head.Chains {
			v.add(ProblemInconsistentHead, -1, 1, "trail %d (%s) is at slot %d of a chain table of %d slots", i+1, p.ID(), p.Slot, head.Chains)
			continue
		}
		if err := proof.VerifyInclusion(hasher, p.Slot, head.Chains, ch.LeafHash(), hashes(p.SlotProof), head.ChainRoot); err != nil {
			v.add(ProblemInconsistentHead, -1, 1, "the signed tree head does not commit to %s as exported (%d entries, the newest entry %d): %v", p.ID(), p.Count, p.Last, err)
			continue
		}
		trails[p.ID()] = p
	}

	// Entry lines: canonical, each about one of the trails, in log order.
	byTrail := map[TrailID][]trailLine{}
	var prevIndex uint64
	seen := map[uint64]int{}
	for line := 2; ; line++ {
		raw, tooLong, err := readLine(br, MaxEntrySize)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("audit: read trail export line %d: %w", line, err)
		}
		res.Entries++
		if tooLong {
			v.add(ProblemMalformedEntry, -1, line, "line exceeds %d bytes", MaxEntrySize)
			continue
		}
		var loose struct {
			Index *uint64 `json:"index"`
		}
		if err := json.Unmarshal(raw, &loose); err != nil || loose.Index == nil {
			v.add(ProblemMalformedEntry, -1, line, "line is not an audit entry (it has no index or is not JSON)")
			continue
		}
		idx := *loose.Index
		e, err := DecodeEntry(raw)
		if err != nil {
			v.add(ProblemModifiedEntry, int64(idx), line, "%v", err)
			continue
		}
		id, _ := e.Trail()
		switch {
		case idx >= head.Size:
			v.add(ProblemExtraEntry, int64(idx), line, "entry %d is beyond the %d entries the signed tree head covers", idx, head.Size)
			continue
		case seen[idx] != 0:
			v.add(ProblemExtraEntry, int64(idx), line, "a second entry %d (the first is on line %d)", idx, seen[idx])
			continue
		case trails[id] == nil:
			v.add(ProblemExtraEntry, int64(idx), line, "entry %d is about %s, which is not one of the export's trails", idx, trailName(e))
			continue
		}
		if len(seen) > 0 && idx < prevIndex {
			v.add(ProblemReordered, int64(idx), line, "entry %d comes after entry %d", idx, prevIndex)
		}
		seen[idx] = line
		prevIndex = max(prevIndex, idx)
		byTrail[id] = append(byTrail[id], trailLine{line: line, index: idx, leaf: LeafHash(raw), e: e})
	}

	for _, p := range hdr.Trails {
		if p == nil || trails[p.ID()] != p {
			continue
		}
		ls := byTrail[p.ID()]
		slices.SortFunc(ls, func(a, b trailLine) int { return cmpU64(a.index, b.index) })
		if ch, ok := verifyTrailChain(v, p, ls, head); ok {
			res.Trails = append(res.Trails, *ch)
		}
	}

	for _, k := range opts.Keys {
		found := false
		for id := range trails {
			if id.Key == k {
				found = true
			}
		}
		if !found {
			v.add(ProblemMissingTrail, -1, 1, "the export holds no trail of key %s", k)
		}
	}
	if opts.Tenant != "" && trails[TrailID{Tenant: opts.Tenant}] == nil {
		v.add(ProblemMissingTrail, -1, 1, "the export holds no trail of tenant %s", opts.Tenant)
	}
	verifyTrustedByProof(v, head, hdr.Consistency, opts)

	sortProblems(res.Problems)
	if len(res.Problems) > 0 {
		return res, &TamperError{res.Problems}
	}
	return res, nil
}

func trailName(e *Entry) string {
	if id, ok := e.Trail(); ok {
		return id.String()
	}
	if e.Key != "" {
		return "key " + e.Key + " of no tenant"
	}
	return "no tenant"
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// verifyTrailChain walks one trail's entries and checks them against its
// signed chain head; it reports the first problem of the trail only, since
// everything after a break in a chain is unverifiable.
func verifyTrailChain(v *verifier, p *TrailProof, ls []trailLine, head *TreeHead) (*ChainHead, bool) {
	id := p.ID()
	var chain []byte
	chained := false
	for j, l := range ls {
		e := l.e
		seq := uint64(j) + 1
		if !e.Chained() {
			if chained {
				v.add(ProblemBrokenChain, int64(l.index), l.line, "entry %d about %s has no chain fields although an earlier entry of the trail has", l.index, id)
				return nil, false
			}
		} else {
			chained = true
			switch {
			case e.KeySeq > seq:
				v.add(ProblemDeletedEntry, int64(l.index), l.line, "entries about %s are missing before entry %d: it is the %s of the trail, the export has %d before it", id, l.index, ordinal(e.KeySeq), j)
				return nil, false
			case e.KeySeq < seq:
				v.add(ProblemExtraEntry, int64(l.index), l.line, "entry %d says it is the %s about %s but the export has %d before it: entries were inserted", l.index, ordinal(e.KeySeq), id, j)
				return nil, false
			case !bytes.Equal(e.KeyChain, chain) && j == 0:
				v.add(ProblemBrokenChain, int64(l.index), l.line, "entry %d is the first about %s but records a chain hash", l.index, id)
				return nil, false
			case !bytes.Equal(e.KeyChain, chain):
				prev := ls[j-1]
				v.add(ProblemModifiedEntry, int64(prev.index), prev.line, "entry %d was changed: entry %d, the next about %s, recorded a different chain hash", prev.index, l.index, id)
				return nil, false
			case e.KeySlot != p.Slot:
				v.add(ProblemBrokenChain, int64(l.index), l.line, "entry %d puts %s at slot %d of the chain table, the export's proof at slot %d", l.index, id, e.KeySlot, p.Slot)
				return nil, false
			}
		}
		chain = ChainStep(chain, l.leaf)
	}
	n := uint64(len(ls))
	switch {
	case n < p.Count && (n == 0 || ls[n-1].index < p.Last):
		end := "no entry about it"
		if n > 0 {
			end = fmt.Sprintf("entry %d, the %s", ls[n-1].index, ordinal(n))
		}
		v.add(ProblemTruncated, int64(p.Last), 0, "the newest entries about %s are missing: the signed tree head says the trail has %d entries, the newest is entry %d; the export has %s", id, p.Count, p.Last, end)
		return nil, false
	case n < p.Count:
		v.add(ProblemDeletedEntry, -1, 0, "entries about %s are missing: the signed tree head says the trail has %d entries, the export has %d", id, p.Count, n)
		return nil, false
	case n > p.Count:
		l := ls[p.Count]
		v.add(ProblemExtraEntry, int64(l.index), l.line, "entry %d about %s is beyond the %d entries the signed tree head gives the trail", l.index, id, p.Count)
		return nil, false
	case !bytes.Equal(chain, p.Chain):
		l := ls[n-1]
		if chained {
			v.add(ProblemModifiedEntry, int64(l.index), l.line, "entry %d, the newest about %s, was changed: the trail's chain hash differs from the signed one", l.index, id)
		} else {
			v.add(ProblemModifiedEntry, int64(l.index), l.line, "an entry about %s up to entry %d was changed: the trail's chain hash differs from the signed one (entries written before format 2 carry no chain fields that could say which)", id, l.index)
		}
		return nil, false
	}
	last := ls[n-1]
	if last.index != p.Last {
		v.add(ProblemInconsistentHead, int64(last.index), last.line, "the newest entry about %s is entry %d, the signed chain head says entry %d", id, last.index, p.Last)
		return nil, false
	}
	if err := proof.VerifyInclusion(hasher, p.Last, head.Size, last.leaf, hashes(p.LastProof), head.RootHash); err != nil {
		v.add(ProblemInconsistentHead, int64(p.Last), last.line, "the newest entry about %s (entry %d) is not in the signed log: %v", id, p.Last, err)
		return nil, false
	}
	return p.Head(), true
}

// verifyTrustedByProof checks that head extends each trusted head, with
// the consistency proofs an export carries for their sizes.
func verifyTrustedByProof(v *verifier, head *TreeHead, items []*ConsistencyItem, opts TrailOptions) {
	for i, t := range opts.Trusted {
		if t == nil {
			continue
		}
		if err := t.Verify(opts.PublicKey); err != nil {
			v.add(ProblemBadSignature, -1, 0, "trusted tree head %d (size %d): %v", i+1, t.Size, err)
			continue
		}
		if string(t.LogID) != string(head.LogID) {
			v.add(ProblemInconsistentHead, -1, 0, "trusted tree head %d is of log %x, this export of log %x", i+1, []byte(t.LogID), []byte(head.LogID))
			continue
		}
		if t.Size > head.Size {
			v.add(ProblemInconsistentHead, -1, 0, "trusted tree head %d covers %d entries (signed %s) but this export's tree head only %d: the log is shorter than one you trusted, it was truncated or rolled back (entries %d to %d are gone)", i+1, t.Size, t.Timestamp.UTC().Format(timeFormat), head.Size, head.Size, t.Size-1)
			continue
		}
		if t.Size == head.Size {
			if !bytes.Equal(t.RootHash, head.RootHash) || (t.V2() && head.V2() && (!bytes.Equal(t.ChainRoot, head.ChainRoot) || t.Chains != head.Chains)) {
				v.add(ProblemInconsistentHead, -1, 0, "trusted tree head %d and this export's tree head both cover %d entries but differ: the log was forked", i+1, t.Size)
			}
			continue
		}
		var it *ConsistencyItem
		for _, c := range items {
			if c != nil && c.From == t.Size {
				it = c
			}
		}
		if it == nil {
			v.add(ProblemInconsistentHead, -1, 0, "the export holds no consistency proof from trusted tree head %d (size %d): export it again giving that head (--trusted-head)", i+1, t.Size)
			continue
		}
		if err := proof.VerifyConsistency(hasher, t.Size, head.Size, hashes(it.Proof), t.RootHash, head.RootHash); err != nil {
			v.add(ProblemInconsistentHead, -1, 0, "the log does not extend trusted tree head %d (size %d): it was forked or rewritten before entry %d (%v)", i+1, t.Size, t.Size, err)
		}
	}
}

const timeFormat = "2006-01-02T15:04:05Z07:00"

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
}
