package auditlog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
)

// Export writes the whole log in the export format (docs/formats/audit-log.md):
// a header line with a freshly signed tree head and the kept checkpoints,
// then one line per entry, in index order, exactly as hashed into the tree.
// Run in a View transaction, the copy is consistent while the log keeps
// growing. audit.VerifyExport checks it.
func (l *Log) Export(tx store.Tx, w io.Writer) (*audit.TreeHead, error) {
	head, err := l.SignTreeHead(tx)
	if err != nil {
		return nil, err
	}
	cps, err := l.Checkpoints(tx)
	if err != nil {
		return nil, err
	}
	hdr := audit.ExportHeader{Format: audit.ExportFormat, Version: audit.ExportVersion, TreeHead: head}
	for _, c := range cps {
		if c.Size <= head.Size {
			hdr.Checkpoints = append(hdr.Checkpoints, c)
		}
	}
	bw := bufio.NewWriter(w)
	j, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	bw.Write(j)
	bw.WriteByte('\n')
	for i := uint64(0); i < head.Size; i++ {
		_, raw, err := l.Entry(tx, i)
		if err != nil {
			return nil, err
		}
		bw.Write(raw)
		if err := bw.WriteByte('\n'); err != nil {
			return nil, fmt.Errorf("audit: export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("audit: export: %w", err)
	}
	return head, nil
}

// ExportTrails writes the trail export (docs/formats/audit-log.md, "Trail
// export") of the given trails: a header with a freshly signed tree head,
// each trail's chain head with its proofs, and a consistency proof from
// each size in from (the sizes of tree heads the requester trusts) that is
// not beyond the log; then every entry of the trails, in index order,
// exactly as hashed into the tree. Run it in a View transaction.
// audit.VerifyTrail checks it.
func (l *Log) ExportTrails(tx store.Tx, w io.Writer, ids []audit.TrailID, from []uint64) (*audit.TreeHead, error) {
	head, err := l.SignTreeHead(tx)
	if err != nil {
		return nil, err
	}
	hdr := audit.TrailHeader{Format: audit.TrailFormat, Version: audit.TrailVersion, TreeHead: head}
	var idx []uint64
	seen := map[audit.TrailID]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		p, err := l.TrailProof(tx, id, head.Size)
		if err != nil {
			return nil, err
		}
		is, err := l.TrailIndices(tx, id)
		if err != nil {
			return nil, err
		}
		hdr.Trails = append(hdr.Trails, p)
		idx = append(idx, is...)
	}
	done := map[uint64]bool{}
	for _, f := range from {
		if f > head.Size || done[f] {
			continue // a rolled-back log has no proof to give; the verifier says so
		}
		done[f] = true
		p, err := l.ConsistencyProof(tx, f, head.Size)
		if err != nil {
			return nil, err
		}
		hdr.Consistency = append(hdr.Consistency, &audit.ConsistencyItem{From: f, Proof: hexList(p)})
	}
	slices.Sort(idx)
	bw := bufio.NewWriter(w)
	j, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	bw.Write(j)
	bw.WriteByte('\n')
	for _, i := range idx {
		_, raw, err := l.Entry(tx, i)
		if err != nil {
			return nil, err
		}
		bw.Write(raw)
		if err := bw.WriteByte('\n'); err != nil {
			return nil, fmt.Errorf("audit: export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("audit: export: %w", err)
	}
	return head, nil
}
