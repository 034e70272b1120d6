package envelope

import (
	"errors"
	"io"

	"github.com/ppml/ppml/atomicfile"
)

// FileWriter writes an envelope to a file atomically: nothing appears at the
// path until Close succeeds, and nothing is left behind on error or Abort.
type FileWriter struct {
	*Writer
	af *atomicfile.File
}

// CreateFile starts an envelope at path (mode 0600). Unless overwrite, an
// existing file at path is an error. Always defer Abort; call Close to commit.
func CreateFile(path string, kw KeyWrapper, opts *Options, overwrite bool) (*FileWriter, error) {
	if opts != nil && opts.SizeLater {
		return nil, errors.New("envelope options: SizeLater needs two-phase writing (NewDraft, then Draft.CreateFile with the size)")
	}
	d, err := NewDraft(opts)
	if err != nil {
		return nil, err
	}
	return d.CreateFile(path, kw, NoSize, overwrite)
}

// Close seals the final segment and commits the file.
func (fw *FileWriter) Close() error {
	if err := fw.Writer.Close(); err != nil {
		fw.af.Abort()
		return err
	}
	return fw.af.Commit()
}

// Abort discards the file; a no-op after a successful Close.
func (fw *FileWriter) Abort() error {
	fw.Writer.abort()
	return fw.af.Abort()
}

// ReadFromAt encrypts exactly size bytes of src (see Writer.ReadFromAt),
// sealing segments on several goroutines that each write their ciphertext
// straight to its place in the file: no ordering between them. Close then
// commits.
func (fw *FileWriter) ReadFromAt(src io.ReaderAt, size int64) (int64, error) {
	sealed, err := fw.Writer.sealAt(src, size, fw.af, int64(fw.hdr.Len()))
	return sealed, fw.Writer.finishAt(err)
}
