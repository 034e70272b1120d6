package audit

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Export format identifiers (docs/formats/audit-log.md).
const (
	ExportFormat = "ppml-audit-log"
	// ExportVersion is the version exports are written in: 2 since tree
	// heads commit to the chain table and entries carry chain fields.
	// VerifyExport reads versions 1 and 2.
	ExportVersion = 2
	// MaxHeaderSize bounds the header line (tree head and checkpoints).
	MaxHeaderSize = 16 << 20
)

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format      string      `json:"format"`
	Version     int         `json:"version"`
	TreeHead    *TreeHead   `json:"tree_head"`
	Checkpoints []*TreeHead `json:"checkpoints,omitempty"`
}

// Problem kinds: stable names a caller can match on.
const (
	ProblemMalformedExport  = "malformed_export"       // the header is missing or unreadable
	ProblemBadSignature     = "bad_signature"          // a tree head's signature does not verify
	ProblemMalformedEntry   = "malformed_entry"        // a line is not an entry at all
	ProblemModifiedEntry    = "modified_entry"         // an entry's content was changed
	ProblemDeletedEntry     = "deleted_entry"          // an entry inside the log is missing
	ProblemReordered        = "reordered"              // entries are out of order
	ProblemTruncated        = "truncated"              // entries at the end are missing
	ProblemExtraEntry       = "extra_entry"            // an entry the tree head does not cover
	ProblemInconsistentHead = "inconsistent_tree_head" // the log contradicts another signed tree head
	ProblemBrokenChain      = "broken_chain"           // an entry's chain fields contradict the entries before it
	ProblemMissingTrail     = "missing_trail"          // a trail export lacks a trail the verifier asked for
)

// Problem is one way in which an export fails to verify.
type Problem struct {
	Kind string `json:"kind"`
	// Index is the entry index concerned, -1 when the problem concerns no
	// single entry.
	Index int64 `json:"index"`
	// Line is the 1-based line of the export concerned (0: none).
	Line   int    `json:"line,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	if p.Index >= 0 {
		fmt.Fprintf(&b, " at entry %d", p.Index)
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	b.WriteString(": ")
	b.WriteString(p.Detail)
	return b.String()
}

// TamperError is returned by VerifyExport when the export does not verify.
type TamperError struct{ Problems []Problem }

func (e *TamperError) Error() string {
	if len(e.Problems) == 1 {
		return "audit log does not verify: " + e.Problems[0].String()
	}
	return fmt.Sprintf("audit log does not verify: %s (and %d more problems)", e.Problems[0], len(e.Problems)-1)
}

// VerifyOptions are the inputs of VerifyExport.
type VerifyOptions struct {
	// PublicKey verifies every tree head (ECDSA P-256 or Ed25519).
	PublicKey crypto.PublicKey
	// Trusted are tree heads obtained earlier (e.g. kept from a previous
	// verification); the export must extend each of them.
	Trusted []*TreeHead
}

// Result describes a verified (or rejected) export.
type Result struct {
	TreeHead *TreeHead
	Entries  uint64 // entry lines read
	Problems []Problem
	// Trails are the trails of a trail export (VerifyTrail) that verified:
	// complete up to TreeHead.
	Trails []ChainHead
}

// OK reports whether the export verified.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

type record struct {
	line   int
	index  uint64
	leaf   []byte
	prev   []byte // nil for entry 0 or when unreadable
	strict bool   // decoded strictly and canonical
	chain  *Entry // the fields the chain replay needs, when strict
}

// chainFields keeps of e what the chain replay reads.
func chainFields(e *Entry) *Entry {
	return &Entry{Tenant: e.Tenant, Key: e.Key, KeySeq: e.KeySeq, KeySlot: e.KeySlot, KeyChain: e.KeyChain}
}

type verifier struct {
	res  *Result
	seen map[string]bool
}

func (v *verifier) add(kind string, index int64, line int, format string, args ...any) {
	k := fmt.Sprintf("%s/%d", kind, index)
	if index >= 0 && v.seen[k] {
		return
	}
	v.seen[k] = true
	v.res.Problems = append(v.res.Problems, Problem{Kind: kind, Index: index, Line: line, Detail: fmt.Sprintf(format, args...)})
}

// readLine reads one line of at most max bytes (without the newline). A
// longer line is consumed and reported with tooLong.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			tooLong = true
		} else {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !(errors.Is(err, io.EOF) && (len(line) > 0 || tooLong)) {
			return nil, false, err
		}
		if tooLong {
			return nil, true, nil
		}
		return bytes.TrimSuffix(line, []byte("\n")), false, nil
	}
}

// VerifyExport checks an exported log against its signed tree head, its
// checkpoints and opts.Trusted, with opts.PublicKey. It returns a Result in
// every case; the error is a *TamperError listing every problem found
// (first the most fundamental), or an I/O error from r.
func VerifyExport(r io.Reader, opts VerifyOptions) (*Result, error) {
	v := &verifier{res: &Result{}, seen: map[string]bool{}}
	res := v.res
	br := bufio.NewReaderSize(r, 64<<10)
	hdrLine, tooLong, err := readLine(br, MaxHeaderSize)
	if errors.Is(err, io.EOF) {
		v.add(ProblemMalformedExport, -1, 1, "the export is empty")
		return res, &TamperError{res.Problems}
	}
	if err != nil {
		return res, fmt.Errorf("audit: read export: %w", err)
	}
	if tooLong {
		v.add(ProblemMalformedExport, -1, 1, "header line exceeds %d bytes", MaxHeaderSize)
		return res, &TamperError{res.Problems}
	}
	var hdr ExportHeader
	dec := json.NewDecoder(bytes.NewReader(hdrLine))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		v.add(ProblemMalformedExport, -1, 1, "header is not valid: %v", err)
		return res, &TamperError{res.Problems}
	}
	if hdr.Format != ExportFormat || hdr.Version < 1 || hdr.Version > ExportVersion {
		v.add(ProblemMalformedExport, -1, 1, "header says format %q version %d, want %q version 1 to %d", hdr.Format, hdr.Version, ExportFormat, ExportVersion)
		return res, &TamperError{res.Problems}
	}
	if hdr.TreeHead == nil {
		v.add(ProblemMalformedExport, -1, 1, "header has no tree head")
		return res, &TamperError{res.Problems}
	}
	head := hdr.TreeHead
	res.TreeHead = head
	if err := head.Verify(opts.PublicKey); err != nil {
		// Nothing in the file can be trusted without the tree head.
		v.add(ProblemBadSignature, -1, 1, "tree head (size %d): %v", head.Size, err)
		return res, &TamperError{res.Problems}
	}
	var checkpoints []*TreeHead
	for i, c := range hdr.Checkpoints {
		if c == nil {
			v.add(ProblemMalformedExport, -1, 1, "checkpoint %d is null", i+1)
			continue
		}
		if err := c.Verify(opts.PublicKey); err != nil {
			v.add(ProblemBadSignature, -1, 1, "checkpoint %d (size %d): %v", i+1, c.Size, err)
			continue
		}
		if string(c.LogID) != string(head.LogID) {
			v.add(ProblemInconsistentHead, -1, 1, "checkpoint %d is of log %x, the tree head of log %x", i+1, []byte(c.LogID), []byte(head.LogID))
			continue
		}
		if c.Size > head.Size {
			v.add(ProblemInconsistentHead, -1, 1, "checkpoint %d covers %d entries, more than the tree head's %d", i+1, c.Size, head.Size)
			continue
		}
		checkpoints = append(checkpoints, c)
	}

	// Read every entry line, keeping only what the checks need.
	var recs []record
	for line := 2; ; line++ {
		raw, tooLong, err := readLine(br, MaxEntrySize)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("audit: read export line %d: %w", line, err)
		}
		res.Entries++
		if tooLong {
			v.add(ProblemMalformedEntry, -1, line, "line exceeds %d bytes", MaxEntrySize)
			continue
		}
		var loose struct {
			Index *uint64 `json:"index"`
			Prev  string  `json:"prev"`
		}
		if err := json.Unmarshal(raw, &loose); err != nil || loose.Index == nil {
			v.add(ProblemMalformedEntry, -1, line, "line is not an audit entry (it has no index or is not JSON)")
			continue
		}
		rec := record{line: line, index: *loose.Index, leaf: LeafHash(raw)}
		rec.prev, _ = hex.DecodeString(loose.Prev)
		if e, err := DecodeEntry(raw); err != nil {
			v.add(ProblemModifiedEntry, int64(rec.index), line, "%v", err)
		} else {
			rec.strict = true
			rec.chain = chainFields(e)
		}
		recs = append(recs, rec)
	}

	// Structure: which indices are where.
	byIndex := make(map[uint64]*record, len(recs))
	var maxSeen uint64
	var anySeen bool
	for i := range recs {
		rec := &recs[i]
		switch {
		case rec.index >= head.Size:
			v.add(ProblemExtraEntry, int64(rec.index), rec.line, "entry %d is beyond the %d entries the signed tree head covers", rec.index, head.Size)
			continue
		case byIndex[rec.index] != nil:
			v.add(ProblemExtraEntry, int64(rec.index), rec.line, "a second entry %d (the first is on line %d)", rec.index, byIndex[rec.index].line)
			continue
		}
		if anySeen && rec.index < maxSeen {
			v.add(ProblemReordered, int64(rec.index), rec.line, "entry %d comes after entry %d", rec.index, maxSeen)
		}
		if !anySeen || rec.index > maxSeen {
			maxSeen = rec.index
		}
		anySeen = true
		byIndex[rec.index] = rec
	}
	firstMissing := head.Size
	for i := uint64(0); i < head.Size; {
		if byIndex[i] != nil {
			i++
			continue
		}
		j := i
		for j < head.Size && byIndex[j] == nil {
			j++
		}
		if i < firstMissing {
			firstMissing = i
		}
		if j == head.Size {
			last := "no entry"
			if i > 0 {
				last = fmt.Sprintf("entry %d", i-1)
			}
			v.add(ProblemTruncated, int64(i), 0, "the export ends after %s but the signed tree head covers %d entries: entries %d to %d are missing", last, head.Size, i, head.Size-1)
		} else if j == i+1 && i == 0 {
			v.add(ProblemDeletedEntry, 0, byIndex[j].line, "entry 0 is missing (the export starts at entry 1)")
		} else if j == i+1 {
			v.add(ProblemDeletedEntry, int64(i), byIndex[j].line, "entry %d is missing (entry %d follows entry %d)", i, j, i-1)
		} else {
			v.add(ProblemDeletedEntry, int64(i), byIndex[j].line, "entries %d to %d are missing", i, j-1)
		}
		i = j
	}

	// Links: each entry records the leaf hash of its predecessor.
	linkOK := func(i uint64) (ok, known bool) {
		rec := byIndex[i]
		if rec == nil {
			return false, false
		}
		if i == 0 {
			return len(rec.prev) == 0, true
		}
		p := byIndex[i-1]
		if p == nil {
			return false, false
		}
		return bytes.Equal(rec.prev, p.leaf), true
	}
	leafAt := make(map[string]uint64, len(byIndex))
	for i, rec := range byIndex {
		leafAt[string(rec.leaf)] = i
	}
	linkProblems := 0
	for i := uint64(0); i < head.Size; i++ {
		ok, known := linkOK(i)
		if !known || ok {
			continue
		}
		linkProblems++
		nextOK, nextKnown := linkOK(i + 1)
		k, linksEarlier := leafAt[string(byIndex[i].prev)]
		switch {
		case i == 0:
			v.add(ProblemModifiedEntry, 0, byIndex[0].line, "entry 0 was changed: the first entry records a predecessor")
		case linksEarlier && k+1 < i:
			// Entry i still links to entry k: what sits between was inserted
			// (and the entries after it renumbered).
			line := byIndex[i].line
			if r := byIndex[k+1]; r != nil {
				line = r.line
			}
			v.add(ProblemExtraEntry, int64(k+1), line, "entries %d to %d were inserted: entry %d links directly to entry %d", k+1, i-1, i, k)
		case nextKnown && !nextOK && !linksEarlier:
			v.add(ProblemModifiedEntry, int64(i), byIndex[i].line, "entry %d was changed, or an entry before it deleted and the rest renumbered: its link matches no entry of the export and entry %d's link to it does not match", i, i+1)
			i++ // entry i+1's broken link is explained by entry i
		case nextKnown && !nextOK:
			v.add(ProblemModifiedEntry, int64(i), byIndex[i].line, "entry %d was changed: its link to entry %d is wrong and entry %d's link to it does not match", i, i-1, i+1)
			i++ // entry i+1's broken link is explained by entry i
		default:
			v.add(ProblemModifiedEntry, int64(i-1), byIndex[i-1].line, "entry %d was changed: entry %d recorded a different hash for it", i-1, i)
		}
	}

	// Roots of every prefix that a tree head certifies.
	wanted := map[uint64]bool{head.Size: true}
	for _, c := range checkpoints {
		wanted[c.Size] = true
	}
	for _, t := range opts.Trusted {
		if t != nil {
			wanted[t.Size] = true
		}
	}
	roots := map[uint64][]byte{0: hasher.EmptyRoot()}
	rng := rf.NewEmptyRange(0)
	for i := uint64(0); i < firstMissing; i++ {
		if err := rng.Append(byIndex[i].leaf, nil); err != nil {
			return res, fmt.Errorf("audit: %w", err)
		}
		if wanted[i+1] {
			roots[i+1], _ = rng.GetRootHash(nil)
		}
	}

	// Checkpoints (sorted by size) localize a rewrite the links cannot see.
	sort.Slice(checkpoints, func(a, b int) bool { return checkpoints[a].Size < checkpoints[b].Size })
	lastGood := uint64(0)
	firstBad := head.Size
	for _, c := range checkpoints {
		root, ok := roots[c.Size]
		if !ok {
			continue
		}
		if bytes.Equal(root, c.RootHash) {
			if c.Size > lastGood && c.Size <= firstBad {
				lastGood = c.Size
			}
		} else if c.Size < firstBad {
			firstBad = c.Size
		}
	}
	headRoot, haveRoot := roots[head.Size]
	headOK := haveRoot && bytes.Equal(headRoot, head.RootHash)
	if haveRoot && !headOK && head.Size == 0 {
		v.add(ProblemInconsistentHead, -1, 1, "the tree head covers no entry but its root is not the empty tree's")
	}
	if haveRoot && !headOK && head.Size > 0 && linkProblems == 0 && firstMissing == head.Size {
		if lastGood >= firstBad {
			v.add(ProblemInconsistentHead, -1, 1, "the signing key certified two different roots for the first %d entries", firstBad)
		} else if firstBad-lastGood == 1 {
			i := lastGood
			v.add(ProblemModifiedEntry, int64(i), byIndex[i].line, "entry %d was changed: the entries up to it match a signed tree head, the ones up to and including it do not", i)
		} else {
			last := firstBad - 1
			v.add(ProblemModifiedEntry, int64(last), byIndex[last].line,
				"the entries do not hash to the signed root of size %d although every link between them holds: entry %d was changed, or entries %d to %d were rewritten together (entries before %d match a signed tree head)",
				firstBad, last, lastGood, last, lastGood)
		}
	}
	if headOK {
		for _, c := range checkpoints {
			if root, ok := roots[c.Size]; ok && !bytes.Equal(root, c.RootHash) {
				v.add(ProblemInconsistentHead, -1, 1, "the signing key certified two different histories: the checkpoint of size %d does not match the entries that the current tree head certifies", c.Size)
			}
		}
	}

	// Tree heads the verifier already trusted.
	for i, t := range opts.Trusted {
		if t == nil {
			continue
		}
		if err := t.Verify(opts.PublicKey); err != nil {
			v.add(ProblemBadSignature, -1, 0, "trusted tree head %d (size %d): %v", i+1, t.Size, err)
			continue
		}
		switch {
		case string(t.LogID) != string(head.LogID):
			v.add(ProblemInconsistentHead, -1, 0, "trusted tree head %d is of log %x, this export of log %x", i+1, []byte(t.LogID), []byte(head.LogID))
		case t.Size > head.Size:
			v.add(ProblemInconsistentHead, -1, 0, "trusted tree head %d covers %d entries but this export's tree head only %d: the log was truncated or rolled back (entries %d to %d are gone)", i+1, t.Size, head.Size, head.Size, t.Size-1)
		default:
			root, ok := roots[t.Size]
			if ok && !bytes.Equal(root, t.RootHash) {
				v.add(ProblemInconsistentHead, -1, 0, "the first %d entries do not match trusted tree head %d: the log was rewritten before entry %d", t.Size, i+1, t.Size)
			}
		}
	}

	// The chain table, once the log itself verified: every entry's chain
	// fields and every format 2 head's commitment to the table.
	if len(res.Problems) == 0 {
		heads := []*TreeHead{head}
		lines := []int{1}
		for _, c := range checkpoints {
			heads, lines = append(heads, c), append(lines, 1)
		}
		for _, t := range opts.Trusted {
			if t != nil {
				heads, lines = append(heads, t), append(lines, 0)
			}
		}
		verifyChains(v, byIndex, head.Size, heads, lines)
	}

	sortProblems(res.Problems)
	if len(res.Problems) > 0 {
		return res, &TamperError{res.Problems}
	}
	return res, nil
}

// verifyChains replays the chain table over entries 0 to size-1 and checks
// each entry's chain fields and the chain commitment of each format 2 head
// (reported on line lines[i] for heads[i]).
func verifyChains(v *verifier, byIndex map[uint64]*record, size uint64, heads []*TreeHead, lines []int) {
	at := map[uint64][]int{}
	for i, h := range heads {
		if h.V2() && h.Size <= size {
			at[h.Size] = append(at[h.Size], i)
		}
	}
	r := newChainReplay()
	check := func(n uint64) {
		if len(at[n]) == 0 {
			return
		}
		root, count := r.root()
		for _, i := range at[n] {
			h := heads[i]
			if h.Chains != count || !bytes.Equal(h.ChainRoot, root) {
				v.add(ProblemInconsistentHead, -1, lines[i], "the tree head of size %d commits to a chain table of %d trails (root %x) but its entries define %d trails (root %x): the server signed a wrong commitment to the trails' newest entries", n, h.Chains, []byte(h.ChainRoot), count, root)
			}
		}
	}
	check(0)
	for i := uint64(0); i < size; i++ {
		rec := byIndex[i]
		if why := r.add(i, rec.chain, rec.leaf); why != "" {
			v.add(ProblemBrokenChain, int64(i), rec.line, "%s", why)
		}
		check(i + 1)
	}
}
