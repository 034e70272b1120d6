package record

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// FileMagic opens a record file: the records of one partition of one
// stream, in order, each prefixed by its length (4 bytes, big endian). The
// stream engine's bounded mode replays such files as a batch.
const FileMagic = "PPMLRECS\x01"

// FileWriter appends length-prefixed records after the file magic.
type FileWriter struct {
	w     *bufio.Writer
	begun bool
}

// NewFileWriter writes a record file to w; call Flush at the end.
func NewFileWriter(w io.Writer) *FileWriter { return &FileWriter{w: bufio.NewWriter(w)} }

// Write appends one record.
func (f *FileWriter) Write(rec []byte) error {
	if !f.begun {
		if _, err := f.w.WriteString(FileMagic); err != nil {
			return err
		}
		f.begun = true
	}
	if len(rec) > MaxRecordSize {
		return fmt.Errorf("record of %d bytes exceeds the %d-byte limit", len(rec), MaxRecordSize)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(rec)))
	if _, err := f.w.Write(n[:]); err != nil {
		return err
	}
	_, err := f.w.Write(rec)
	return err
}

// Flush writes buffered data (and the magic of an empty file).
func (f *FileWriter) Flush() error {
	if !f.begun {
		if _, err := f.w.WriteString(FileMagic); err != nil {
			return err
		}
		f.begun = true
	}
	return f.w.Flush()
}

// FileReader reads the records of a record file.
type FileReader struct {
	r     *bufio.Reader
	begun bool
	n     int // records read
	off   int64
}

// NewFileReader reads a record file from r.
func NewFileReader(r io.Reader) *FileReader { return &FileReader{r: bufio.NewReader(r)} }

// ErrNotRecordFile is returned when the input does not start with FileMagic.
var ErrNotRecordFile = errors.New("not a ppml record file")

// Next returns the next record, or io.EOF after the last one. The record
// is not parsed; errors say at which record and byte offset the file breaks.
func (f *FileReader) Next() ([]byte, error) {
	if !f.begun {
		m := make([]byte, len(FileMagic))
		if _, err := io.ReadFull(f.r, m); err != nil || string(m) != FileMagic {
			return nil, fmt.Errorf("%w: it does not start with the record-file magic", ErrNotRecordFile)
		}
		f.begun = true
		f.off = int64(len(FileMagic))
	}
	var n [4]byte
	k, err := io.ReadFull(f.r, n[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("record file truncated in the length of record %d (%d of 4 bytes at offset %d)", f.n+1, k, f.off)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxRecordSize {
		return nil, fmt.Errorf("record %d at offset %d claims %d bytes, more than the %d a record may have", f.n+1, f.off, size, MaxRecordSize)
	}
	rec := make([]byte, size)
	if k, err := io.ReadFull(f.r, rec); err != nil {
		return nil, fmt.Errorf("record file truncated inside record %d (%d of %d bytes at offset %d)", f.n+1, k, size, f.off+4)
	}
	f.n++
	f.off += 4 + int64(size)
	return rec, nil
}

// LineOptions say how WriteLines groups lines into records.
type LineOptions struct {
	Partitions int // records are dealt round-robin over them (default 1)
	PerRecord  int // lines per record (default 100)
	// Start is the first record's event time; each next one is Step later.
	Start time.Time
	Step  time.Duration
}

// WriteLines seals the lines of r, PerRecord at a time (fewer when they
// would pass a quarter of MaxRecordSize), into records of w written to fw.
// It returns the number of records. A line longer than half a record is an
// error, not a silent cut.
func WriteLines(fw *FileWriter, w *Writer, r io.Reader, o LineOptions) (int, error) {
	if o.Partitions < 1 {
		o.Partitions = 1
	}
	if o.PerRecord < 1 {
		o.PerRecord = 100
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxRecordSize/2)
	var body bytes.Buffer
	n, inRec, line := 0, 0, 0
	flush := func() error {
		if inRec == 0 {
			return nil
		}
		t := o.Start.Add(time.Duration(n) * o.Step).UnixMilli()
		b, err := w.Seal(uint32(n%o.Partitions), t, body.Bytes())
		if err != nil {
			return err
		}
		n++
		body.Reset()
		inRec = 0
		return fw.Write(b)
	}
	for sc.Scan() {
		line++
		body.Write(sc.Bytes())
		body.WriteByte('\n')
		if inRec++; inRec == o.PerRecord || body.Len() > MaxRecordSize/4 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return n, fmt.Errorf("line %d is longer than %d bytes", line+1, MaxRecordSize/2)
		}
		return n, err
	}
	return n, flush()
}
