package envelope

import (
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
	af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: overwrite})
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(af, kw, opts)
	if err != nil {
		af.Abort()
		return nil, err
	}
	return &FileWriter{Writer: w, af: af}, nil
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
