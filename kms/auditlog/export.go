package auditlog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

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
