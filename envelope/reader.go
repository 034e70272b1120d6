package envelope

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// SegmentError reports a segment that failed; Err matches ErrAuth,
// ErrTruncated or ErrTrailingData.
type SegmentError struct {
	Index uint64
	Err   error
	Msg   string
}

func (e *SegmentError) Error() string { return fmt.Sprintf("segment %d: %s", e.Index, e.Msg) }
func (e *SegmentError) Unwrap() error { return e.Err }

// opener authenticates and decrypts segments of one file. It is safe for
// concurrent use.
type opener struct {
	aead   cipher.AEAD
	prefix [NoncePrefixSize]byte
}

// open decrypts segment i; nonce is the caller's scratch space (a local
// array would escape to the heap on every call through the interface).
func (o *opener) open(nonce *[12]byte, dst, ct []byte, i uint64, last bool) ([]byte, error) {
	copy(nonce[:], o.prefix[:])
	setNonce(nonce, i, last)
	return o.aead.Open(dst, nonce[:], ct, nil)
}

// diagnose explains why segment i did not authenticate with the expected
// last-segment flag, by trying the other flag. ct must be unmodified.
func (o *opener) diagnose(nonce *[12]byte, scratch, ct []byte, i uint64, wantLast bool) error {
	if _, err := o.open(nonce, scratch[:0], ct, i, !wantLast); err == nil {
		if wantLast {
			return &SegmentError{i, ErrTruncated, "the file is truncated: this is the last segment present but the writer did not mark it final"}
		}
		return &SegmentError{i, ErrTrailingData, "this is the final segment, but more data follows it (bytes were appended)"}
	}
	if i == 0 {
		return &SegmentError{i, ErrAuth, "authentication failed: the body does not belong to this header (header of another file?), or the data was modified or truncated"}
	}
	if wantLast {
		return &SegmentError{i, ErrAuth, "authentication failed: the file is truncated or extended, or the data was modified"}
	}
	return &SegmentError{i, ErrAuth, "authentication failed: the data was modified, segments were reordered or truncated, or the segment comes from another file"}
}

// unlock reads the header's data key through kr and returns the opener.
func unlock(h *Header, kr KeyResolver) (*opener, error) {
	if kr == nil {
		return nil, errors.New("no key resolver")
	}
	dk, err := kr.UnwrapDataKey(h.KeyRef, h.WrappedKey, h.WrapAAD())
	if err != nil {
		return nil, err
	}
	aead, err := payloadAEAD(dk, h)
	clear(dk)
	if err != nil {
		return nil, err
	}
	o := &opener{aead: aead, prefix: h.NoncePrefix}
	return o, nil
}

// Reader decrypts an envelope sequentially. It returns plaintext only from
// segments that authenticated, and reports an error instead of io.EOF unless
// the final segment was seen and nothing follows it.
type Reader struct {
	src       io.Reader
	hdr       *Header
	op        *opener
	segSize   int
	ct        []byte // segSize+TagSize+1: one byte of look-ahead
	carry     bool   // carryByte was read ahead and starts the next segment
	carryByte byte
	nonce     [12]byte
	workers   int // goroutines opening segments in WriteTo; 1 opens inline
	pt        []byte
	ptr       []byte // unread plaintext of the current segment
	counter   uint64
	total     uint64 // plaintext bytes authenticated so far
	body      uint64 // body bytes consumed
	done      bool
	err       error
}

// NewReader reads the header from src and unlocks the data key with kr.
func NewReader(src io.Reader, kr KeyResolver) (*Reader, error) {
	h, err := ReadHeader(src)
	if err != nil {
		return nil, err
	}
	op, err := unlock(h, kr)
	if err != nil {
		return nil, err
	}
	return &Reader{src: src, hdr: h, op: op, segSize: h.SegmentSize,
		ct: make([]byte, h.SegmentSize+TagSize+1), pt: make([]byte, h.SegmentSize), workers: sealWorkers()}, nil
}

// Header returns the parsed header.
func (r *Reader) Header() *Header { return r.hdr }

// SetWorkers sets how many goroutines authenticate segments in WriteTo: 0
// means one per CPU (at most 4, the default), 1 works inline.
func (r *Reader) SetWorkers(n int) {
	if n <= 0 {
		n = sealWorkers()
	}
	r.workers = n
}

// readSegment reads the next segment's ciphertext into ct (segSize+TagSize+1
// bytes) using one byte of look-ahead to learn whether it is the final one,
// and runs the checks that need no decryption, plus the appended-data check.
// scratch receives plaintext only for that check.
func (r *Reader) readSegment(ct, scratch []byte) (segLen int, last bool, err error) {
	start := 0
	if r.carry {
		ct[0] = r.carryByte
		start = 1
	}
	full := r.segSize + TagSize
	m, rerr := io.ReadFull(r.src, ct[start:full+1])
	got := start + m
	switch rerr {
	case nil:
		r.carryByte, r.carry = ct[full], true
	case io.EOF, io.ErrUnexpectedEOF:
		last, r.carry = true, false
	default:
		return 0, false, fmt.Errorf("read segment %d: %w", r.counter, rerr)
	}
	segLen = min(got, full)
	if h := r.hdr; h.LengthKnown() {
		want := BodyLen(h.PlaintextLength, r.segSize)
		if last && r.body+uint64(segLen) < want {
			return 0, false, fmt.Errorf("%w: the body ends after %d bytes, but the header declares %d bytes of plaintext (%d body bytes)",
				ErrTruncated, r.body+uint64(got), h.PlaintextLength, want)
		}
		// Bytes beyond the declared body: if the expected final segment
		// authenticates, the rest was appended.
		remaining := want - r.body
		if uint64(got) > remaining && remaining >= TagSize {
			if _, err := r.op.open(&r.nonce, scratch[:0], ct[:remaining], r.counter, true); err == nil {
				return 0, false, &SegmentError{r.counter, ErrTrailingData, fmt.Sprintf("this is the final segment, but more data follows it (bytes were appended; the header declares %d bytes of plaintext)", h.PlaintextLength)}
			}
		}
	}
	if segLen < TagSize {
		return 0, false, &SegmentError{r.counter, ErrTruncated, fmt.Sprintf("the file is truncated: only %d bytes where a segment of at least %d was expected", segLen, TagSize)}
	}
	r.body += uint64(segLen)
	r.counter++
	return segLen, last, nil
}

// accept records an authenticated segment of n plaintext bytes.
func (r *Reader) accept(index uint64, n int, last bool) error {
	r.total += uint64(n)
	if h := r.hdr; h.LengthKnown() && (r.total > h.PlaintextLength || last && r.total != h.PlaintextLength) {
		return fmt.Errorf("%w: segment %d: plaintext length disagrees with the %d bytes the header declares", ErrCorruptHeader, index, h.PlaintextLength)
	}
	r.done = last
	return nil
}

// next authenticates the next segment into r.ptr.
func (r *Reader) next() error {
	if r.err != nil {
		return r.err
	}
	i := r.counter
	segLen, last, err := r.readSegment(r.ct, r.pt)
	if err != nil {
		r.err = err
		return err
	}
	ct := r.ct[:segLen]
	pt, oerr := r.op.open(&r.nonce, r.pt[:0], ct, i, last)
	if oerr != nil {
		r.err = r.op.diagnose(&r.nonce, r.pt, ct, i, last)
		return r.err
	}
	if err := r.accept(i, len(pt), last); err != nil {
		r.err = err
		return err
	}
	r.ptr = pt
	return nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.ptr) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.ptr)
	r.ptr = r.ptr[n:]
	return n, nil
}

// WriteTo writes the remaining plaintext to w, one authenticated segment at a
// time, without an intermediate copy.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(r.ptr) > 0 {
		n, err := w.Write(r.ptr)
		total += int64(n)
		r.ptr = r.ptr[n:]
		if err != nil {
			return total, err
		}
	}
	// Parallel opening holds workers+2 segments in memory; very large
	// segments are opened inline.
	if r.workers > 1 && r.segSize <= 8<<20 && !r.done && r.err == nil {
		n, err := r.writeToParallel(w)
		return total + n, err
	}
	for {
		if len(r.ptr) > 0 {
			n, err := w.Write(r.ptr)
			total += int64(n)
			r.ptr = r.ptr[n:]
			if err != nil {
				return total, err
			}
		}
		if r.done {
			return total, nil
		}
		if err := r.next(); err != nil {
			return total, err
		}
	}
}

// Decrypt copies the plaintext of the envelope in src to dst.
func Decrypt(dst io.Writer, src io.Reader, kr KeyResolver) (*Header, error) {
	r, err := NewReader(src, kr)
	if err != nil {
		return nil, err
	}
	_, err = r.WriteTo(dst)
	return r.hdr, err
}
