package exec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/memfd"
)

// # The input stream
//
// Where the runtime cannot share an input's in-memory file with the
// program (Gramine: each process is an enclave with its own tmpfs, and the
// file is not a memfd), it streams the content to the shim over a pipe,
// which Gramine encrypts between the enclaves of one application. The
// shim writes each file into the child's own in-memory directory before it
// starts the program, so the program still opens its inputs by name, as
// ordinary read-only files it may seek in, map and reopen.
//
// The stream is a sequence of records, all integers big-endian:
//
//	'f' len:uint16 path[len] size:uint64 data[size]   a file
//	'd' len:uint16 path[len]                          a directory (possibly empty)
//	0                                                 the end; nothing follows
//
// path is relative to the shim's input directory, '/'-separated, clean,
// without "." or ".." elements; a file's parent directories are created
// as needed; no path may be written twice.

const (
	recordEnd  = 0
	recordFile = 'f'
	recordDir  = 'd'
	// maxStreamPath bounds a record's path (PATH_MAX).
	maxStreamPath = 4096
)

// streamEntry is one record to send: a directory or a file's content.
type streamEntry struct {
	rel  string
	file *memfd.File // nil for a directory
}

// writeStream sends the entries and the end record.
func writeStream(w io.Writer, entries []streamEntry) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, e := range entries {
		if !validStreamPath(e.rel) || len(e.rel) > maxStreamPath {
			return fmt.Errorf("input path %q cannot be handed to the program", e.rel)
		}
		kind := byte(recordDir)
		if e.file != nil {
			kind = recordFile
		}
		bw.WriteByte(kind)
		binary.Write(bw, binary.BigEndian, uint16(len(e.rel)))
		bw.WriteString(e.rel)
		if e.file == nil {
			continue
		}
		size, err := e.file.Size()
		if err != nil {
			return err
		}
		binary.Write(bw, binary.BigEndian, uint64(size))
		if _, err := io.Copy(bw, io.NewSectionReader(e.file.OSFile(), 0, size)); err != nil {
			return err
		}
	}
	bw.WriteByte(recordEnd)
	return bw.Flush()
}

// streamSink receives what readStream decodes.
type streamSink interface {
	Dir(rel string) error
	// File must consume exactly size bytes of r.
	File(rel string, size int64, r io.Reader) error
}

// errTruncated is a stream that ends before its end record.
var errTruncated = errors.New("input stream ends early (did the runtime stop?)")

// readStream decodes a stream into sink, up to and including the end record.
func readStream(r io.Reader, sink streamSink) error {
	br := bufio.NewReaderSize(r, 64<<10)
	seen := map[string]bool{}
	for {
		kind, err := br.ReadByte()
		if err != nil {
			return errTruncated
		}
		if kind == recordEnd {
			return nil
		}
		if kind != recordFile && kind != recordDir {
			return fmt.Errorf("input stream: unknown record kind %#x", kind)
		}
		var n uint16
		if err := binary.Read(br, binary.BigEndian, &n); err != nil {
			return errTruncated
		}
		if n == 0 || n > maxStreamPath {
			return fmt.Errorf("input stream: path length %d out of range", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return errTruncated
		}
		rel := string(p)
		if !validStreamPath(rel) {
			return fmt.Errorf("input stream: path %q is not a clean relative path", rel)
		}
		if seen[rel] {
			return fmt.Errorf("input stream: %q sent twice", rel)
		}
		seen[rel] = true
		if kind == recordDir {
			if err := sink.Dir(rel); err != nil {
				return err
			}
			continue
		}
		var size uint64
		if err := binary.Read(br, binary.BigEndian, &size); err != nil {
			return errTruncated
		}
		if size > 1<<62 {
			return fmt.Errorf("input stream: %q has an impossible size %d", rel, size)
		}
		lr := &io.LimitedReader{R: br, N: int64(size)}
		if err := sink.File(rel, int64(size), lr); err != nil {
			return err
		}
		if lr.N != 0 {
			return errTruncated
		}
	}
}

// validStreamPath: relative, '/'-separated, clean, no "." or "..".
func validStreamPath(rel string) bool {
	return rel != "." && path.Clean(rel) == rel && filepath.IsLocal(rel) && !strings.ContainsAny(rel, "\\\x00")
}

// dirSink writes the stream under root: directories 0700, files 0400 once
// written (read-only, as the sealed files of the other route).
type dirSink struct{ root string }

func (s dirSink) Dir(rel string) error {
	if err := os.MkdirAll(filepath.Join(s.root, filepath.FromSlash(rel)), 0o700); err != nil {
		return fmt.Errorf("input directory %s: %w", rel, err)
	}
	return nil
}

func (s dirSink) File(rel string, size int64, r io.Reader) error {
	dst := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("input %s: %w", rel, err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("input %s: %w", rel, err)
	}
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = errTruncated
	}
	if err == nil {
		err = f.Chmod(0o400)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("input %s: %w", rel, err)
	}
	return nil
}
