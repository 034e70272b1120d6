package envelope

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// File gives random access to an envelope's plaintext: it implements
// io.Reader, io.ReaderAt, io.Seeker and io.Closer, decrypting one segment at
// a time (Parquet readers ask for the footer first). Safe for concurrent
// ReadAt calls.
type File struct {
	ra      io.ReaderAt
	closer  io.Closer
	hdr     *Header
	op      *opener
	segSize int
	bodyOff int64
	size    int64 // plaintext length
	nseg    uint64
	lastCT  int // ciphertext length of the final segment
	workers int // for WriteTo, WriteAllAt and Verify; 0: sealWorkers()

	mu     sync.Mutex
	cached int64 // index of the segment in pt, -1 for none
	ct, pt []byte
	ptLen  int
	nonce  [12]byte
	off    int64
}

// Open authenticates the header, unlocks the data key and checks the final
// segment, so truncation and appended bytes are reported before any read.
func Open(ra io.ReaderAt, size int64, kr KeyResolver) (*File, error) {
	h, err := ReadHeader(io.NewSectionReader(ra, 0, size))
	if err != nil {
		return nil, err
	}
	op, err := unlock(h, kr)
	if err != nil {
		return nil, err
	}
	f := &File{ra: ra, hdr: h, op: op, segSize: h.SegmentSize, bodyOff: int64(h.Len()), cached: -1,
		ct: make([]byte, h.SegmentSize+TagSize), pt: make([]byte, h.SegmentSize)}
	body := uint64(size - f.bodyOff)
	n, ok := plaintextLen(body, h.SegmentSize)
	if h.LengthKnown() {
		want := BodyLen(h.PlaintextLength, h.SegmentSize)
		switch {
		case body < want:
			return nil, fmt.Errorf("%w: the body is %d bytes, but the header declares %d bytes of plaintext (%d body bytes)", ErrTruncated, body, h.PlaintextLength, want)
		case body > want:
			// Authenticate the declared final segment so the message can
			// say the file is intact up to the appended bytes.
			f.size, f.nseg = int64(h.PlaintextLength), numSegments(h.PlaintextLength, h.SegmentSize)
			f.lastCT = int(want - (f.nseg-1)*uint64(h.SegmentSize+TagSize))
			if err := f.load(int64(f.nseg - 1)); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %d bytes follow the final segment (appended data)", ErrTrailingData, body-want)
		}
		n, ok = h.PlaintextLength, true
	}
	if !ok {
		return nil, fmt.Errorf("%w: a body of %d bytes cannot end with a complete final segment (truncated or extended)", ErrTruncated, body)
	}
	f.size, f.nseg = int64(n), numSegments(n, h.SegmentSize)
	f.lastCT = int(body - (f.nseg-1)*uint64(h.SegmentSize+TagSize))
	if err := f.load(int64(f.nseg - 1)); err != nil {
		if f.nseg > 1 && errors.Is(err, ErrAuth) && f.isFinal(f.nseg-2) {
			return nil, &SegmentError{f.nseg - 2, ErrTrailingData, "this is the final segment, but more data follows it (bytes were appended)"}
		}
		if f.nseg > 1 && errors.Is(err, ErrAuth) {
			// If the first segment fails too, the body is likely not this
			// header's at all; that message is the more useful one.
			if err0 := f.load(0); err0 != nil {
				return nil, err0
			}
		}
		return nil, err
	}
	return f, nil
}

// OpenFile opens the envelope at path; Close closes the file.
func OpenFile(path string, kr KeyResolver) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		osf.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := Open(osf, st.Size(), kr)
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = osf
	return f, nil
}

// Header returns the parsed header.
func (f *File) Header() *Header { return f.hdr }

// Size is the plaintext length.
func (f *File) Size() int64 { return f.size }

// load authenticates segment i into f.pt; f.mu must be held or f unshared.
func (f *File) load(i int64) error {
	if f.cached == i {
		return nil
	}
	f.cached = -1
	last := uint64(i) == f.nseg-1
	ctLen := f.segSize + TagSize
	if last {
		ctLen = f.lastCT
	}
	ct := f.ct[:ctLen]
	off := f.bodyOff + i*int64(f.segSize+TagSize)
	if n, err := f.ra.ReadAt(ct, off); n < ctLen {
		if err == nil || err == io.EOF {
			return &SegmentError{uint64(i), ErrTruncated, "the file is shorter than when it was opened"}
		}
		return fmt.Errorf("read segment %d: %w", i, err)
	}
	pt, err := f.op.open(&f.nonce, f.pt[:0], ct, uint64(i), last)
	if err != nil {
		return f.op.diagnose(&f.nonce, f.pt, ct, uint64(i), last)
	}
	f.ptLen = len(pt)
	f.cached = i
	return nil
}

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("envelope: negative offset")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readAt(p, off)
}

func (f *File) readAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		if off >= f.size {
			return n, io.EOF
		}
		i := off / int64(f.segSize)
		if err := f.load(i); err != nil {
			return n, err
		}
		c := copy(p, f.pt[off-i*int64(f.segSize):f.ptLen])
		n += c
		p = p[c:]
		off += int64(c)
	}
	return n, nil
}

// Read implements io.Reader.
func (f *File) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker over the plaintext.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = f.off + offset
	case io.SeekEnd:
		abs = f.size + offset
	default:
		return 0, errors.New("envelope: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("envelope: negative position")
	}
	f.off = abs
	return abs, nil
}

// Close closes the underlying file when opened with OpenFile and drops the
// cached plaintext.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.pt)
	f.cached = -1
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// isFinal reports whether full-size segment i authenticates as the final one.
func (f *File) isFinal(i uint64) bool {
	ct := f.ct[:f.segSize+TagSize]
	if n, _ := f.ra.ReadAt(ct, f.bodyOff+int64(i)*int64(f.segSize+TagSize)); n < len(ct) {
		return false
	}
	_, err := f.op.open(&f.nonce, f.pt[:0], ct, i, true)
	return err == nil
}

// WriteTo writes the plaintext from the current position to w. After a
// partial first segment it reads, authenticates and decrypts whole segments
// on several goroutines (one ReadAt each) and writes them in order; a
// segment is written only after it and every segment before it
// authenticated.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var total int64
	seg := int64(f.segSize)
	if f.off < f.size && f.off%seg != 0 {
		i := f.off / seg
		if err := f.load(i); err != nil {
			return total, err
		}
		n, err := w.Write(f.pt[f.off-i*seg : f.ptLen])
		total += int64(n)
		f.off += int64(n)
		if err != nil {
			return total, err
		}
	}
	if f.off >= f.size {
		return total, nil
	}
	first := uint64(f.off / seg)
	ws := f.workerScratch(f.nseg - first)
	var written int64
	err := runWritten(f.nseg-first, len(ws), f.bufSize(), true, func(wk int, buf []byte, j uint64) ([]byte, error) {
		return f.openAt(&ws[wk], buf, first+j)
	}, func(_ uint64, pt []byte) error {
		n, err := w.Write(pt)
		written += int64(n)
		f.off += int64(n)
		return err
	})
	return total + written, err
}

// WriteAllAt writes the whole plaintext to dst at its offsets (segment i at
// i*SegmentSize), reading, authenticating and decrypting segments on several
// goroutines, one of which at a time writes the segments that are ready, in
// any order: the fast path for a file output. Each segment's plaintext is
// written only after that segment authenticated, but on error segments
// after the bad one may have been written too: the caller must discard dst
// (an atomicfile.File aborts). The error is the first failure in file
// order. The position is unchanged.
func (f *File) WriteAllAt(dst io.WriterAt) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var written int64 // only the goroutine holding the output lane adds
	ws := f.workerScratch(f.nseg)
	err := runWritten(f.nseg, len(ws), f.bufSize(), false, func(wk int, buf []byte, i uint64) ([]byte, error) {
		return f.openAt(&ws[wk], buf, i)
	}, func(i uint64, pt []byte) error {
		n, err := dst.WriteAt(pt, int64(i)*int64(f.segSize))
		written += int64(n)
		if err != nil {
			return fmt.Errorf("write plaintext of segment %d: %w", i, err)
		}
		return nil
	})
	return written, err
}

// Verify authenticates every segment, on several goroutines, and writes
// nothing: a first pass for outputs that cannot be taken back, such as a
// pipe. The error is the first failure in file order.
func (f *File) Verify() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := f.workerScratch(f.nseg)
	bufs := make([][]byte, len(ws))
	for i := range bufs {
		bufs[i] = getBuffer(f.bufSize())
	}
	err := runUnordered(f.nseg, len(ws), func(wk int, i uint64) error {
		_, err := f.openAt(&ws[wk], bufs[wk], i)
		return err
	})
	for _, b := range bufs {
		putBuffer(b)
	}
	return err
}

// bufSize is the size of a buffer for any segment: a file of one segment
// needs one of its size only.
func (f *File) bufSize() int {
	if f.nseg == 1 {
		return f.lastCT
	}
	return f.segSize + TagSize
}

// SetWorkers sets how many goroutines WriteTo, WriteAllAt and Verify use: 0
// means one per CPU (at most 4, the default), 1 works on the caller's.
func (f *File) SetWorkers(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.workers = n
}

// openScratch is one worker's: the nonce, and a buffer only for explaining
// a failure.
type openScratch struct {
	scratch []byte
	nonce   [12]byte
}

func (f *File) workerScratch(n uint64) []openScratch {
	return make([]openScratch, clampWorkers(f.workers, n))
}

// openAt reads segment i into buf (SegmentSize+TagSize bytes) and
// authenticates and decrypts it there, in place, which halves the memory
// traffic; it returns the plaintext. Safe for concurrent use with distinct
// buffers: it touches no File state.
func (f *File) openAt(s *openScratch, buf []byte, i uint64) ([]byte, error) {
	last := i == f.nseg-1
	ctLen := f.segSize + TagSize
	if last {
		ctLen = f.lastCT
	}
	ct := buf[:ctLen]
	if n, err := f.ra.ReadAt(ct, f.bodyOff+int64(i)*int64(f.segSize+TagSize)); n < ctLen {
		if err == nil || err == io.EOF {
			return nil, &SegmentError{i, ErrTruncated, "the file is shorter than when it was opened"}
		}
		return nil, fmt.Errorf("read segment %d: %w", i, err)
	}
	out, err := f.op.open(&s.nonce, ct[:0], ct, i, last)
	if err != nil {
		// A failed in-place Open clears ct: read the segment again to
		// find out why it failed.
		if n, rerr := f.ra.ReadAt(ct, f.bodyOff+int64(i)*int64(f.segSize+TagSize)); n < ctLen {
			return nil, &SegmentError{i, ErrTruncated, "the file is shorter than when it was opened"}
		} else if rerr != nil && rerr != io.EOF {
			return nil, fmt.Errorf("read segment %d: %w", i, rerr)
		}
		if s.scratch == nil {
			s.scratch = make([]byte, f.segSize)
		}
		return nil, f.op.diagnose(&s.nonce, s.scratch, ct, i, last)
	}
	return out, nil
}
