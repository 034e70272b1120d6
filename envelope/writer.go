package envelope

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const payloadLabel = "ppml-envelope v1 payload key"

// Options control a new envelope. The zero value (or nil) writes bytes in
// 1 MiB segments with the length recorded as unknown.
type Options struct {
	ContentType ContentType // TypeBytes when zero
	SegmentSize int         // DefaultSegmentSize when zero
	// Size is the plaintext length, recorded in the header when SizeKnown.
	// Close fails if a different number of bytes was written.
	Size      int64
	SizeKnown bool
	// Workers is how many goroutines seal segments: 0 means one per CPU
	// (at most 4), 1 seals inline on the caller's goroutine.
	Workers int

	// rand replaces crypto/rand for the golden-vector test only; it is
	// unexported so no command line or caller outside the package can set it.
	rand io.Reader
}

// payloadAEAD derives the per-file AES-256-GCM key from the data key, the
// salt and a digest of the complete header.
func payloadAEAD(dataKey []byte, h *Header) (cipher.AEAD, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(dataKey), DataKeySize)
	}
	d := h.Digest()
	k, err := hkdf.Key(sha256.New, dataKey, h.Salt[:], payloadLabel+string(d[:]), 32)
	if err != nil {
		return nil, err
	}
	defer clear(k) // the cipher keeps its own expanded copy
	return newGCM(k)
}

// setNonce writes the segment counter and last-segment flag after the prefix.
func setNonce(nonce *[12]byte, counter uint64, last bool) {
	binary.BigEndian.PutUint32(nonce[NoncePrefixSize:], uint32(counter))
	nonce[11] = 0
	if last {
		nonce[11] = 1
	}
}

// Writer encrypts a stream into an envelope. Close must always be called,
// also after an error: it writes the final segment and stops the goroutines
// that seal segments of multi-segment files. It does not close the
// destination.
type Writer struct {
	dst      io.Writer
	hdr      *Header
	aead     cipher.AEAD
	nonce    [12]byte
	segSize  int
	seg      []byte // segSize+TagSize bytes; plaintext in seg[:n]
	n        int
	counter  uint64
	total    uint64
	declared uint64 // UnknownLength when not declared
	err      error
	closed   bool

	workers int           // sealing goroutines; 1 seals inline
	pipe    *sealPipeline // started with the second segment
	job     *sealJob      // owns seg while pipelined
}

var errClosed = errors.New("envelope writer already closed")

// NewWriter writes the header to dst and returns a Writer for the plaintext.
func NewWriter(dst io.Writer, kw KeyWrapper, opts *Options) (*Writer, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ContentType == 0 {
		o.ContentType = TypeBytes
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < MinSegmentSize || o.SegmentSize > MaxSegmentSize {
		return nil, fmt.Errorf("segment size %d outside %d..%d", o.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	rnd := o.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	h := &Header{
		Version:         Version,
		Suite:           SuiteAES256GCMHKDF,
		ContentType:     o.ContentType,
		SegmentSize:     o.SegmentSize,
		PlaintextLength: UnknownLength,
	}
	if o.SizeKnown {
		if o.Size < 0 {
			return nil, fmt.Errorf("negative plaintext size %d", o.Size)
		}
		h.PlaintextLength = uint64(o.Size)
		if numSegments(h.PlaintextLength, h.SegmentSize) > maxSegments {
			return nil, fmt.Errorf("plaintext of %d bytes needs more than 2^32 segments of %d bytes", o.Size, o.SegmentSize)
		}
	}
	if _, err := io.ReadFull(rnd, h.Salt[:]); err != nil {
		return nil, fmt.Errorf("generate salt: %w", err)
	}
	if _, err := io.ReadFull(rnd, h.NoncePrefix[:]); err != nil {
		return nil, fmt.Errorf("generate nonce prefix: %w", err)
	}
	fixed := h.fixed()
	var (
		dk, wrapped []byte
		ref         KeyRef
		err         error
	)
	if lk, ok := kw.(*LocalKey); ok && o.rand != nil {
		dk, wrapped, ref, err = lk.newDataKey(rnd, fixed)
	} else {
		dk, wrapped, ref, err = kw.NewDataKey(fixed)
	}
	if err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	h.KeyRef, h.WrappedKey = ref, wrapped
	if err := h.finish(fixed); err != nil {
		return nil, fmt.Errorf("build header: %w", err)
	}
	aead, err := payloadAEAD(dk, h)
	clear(dk)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(h.Raw); err != nil {
		return nil, fmt.Errorf("write envelope header: %w", err)
	}
	w := &Writer{dst: dst, hdr: h, aead: aead, segSize: h.SegmentSize, declared: h.PlaintextLength,
		seg: make([]byte, h.SegmentSize+TagSize), workers: o.Workers}
	if w.workers <= 0 {
		w.workers = sealWorkers()
	}
	copy(w.nonce[:], h.NoncePrefix[:])
	return w, nil
}

// Header returns the header written to the destination.
func (w *Writer) Header() *Header { return w.hdr }

// Write encrypts p. Segments are sealed as they fill, except that a full
// segment is held back until more data shows it is not the last.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	written := 0
	for len(p) > 0 {
		if w.n == 0 && w.pipe == nil && w.workers == 1 && len(p) > w.segSize {
			// Inline mode, more data follows this segment: seal straight
			// from p, saving the copy into the segment buffer.
			if err := w.account(w.segSize); err != nil {
				return written, err
			}
			if err := w.sealFrom(p[:w.segSize]); err != nil {
				return written, err
			}
			p = p[w.segSize:]
			written += w.segSize
			continue
		}
		if w.n == w.segSize {
			if err := w.flush(false); err != nil {
				return written, err
			}
		}
		c := copy(w.seg[w.n:w.segSize], p)
		w.n += c
		p = p[c:]
		written += c
		if err := w.account(c); err != nil {
			return written, err
		}
	}
	return written, nil
}

// ReadFrom encrypts everything from r, reading straight into the segment
// buffer.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	var total int64
	for {
		if w.n == w.segSize {
			// Peek one byte: a full segment is final unless more follows.
			var b [1]byte
			m, err := io.ReadFull(r, b[:])
			if m == 0 {
				if err == io.EOF {
					return total, nil
				}
				return total, fmt.Errorf("read plaintext: %w", err)
			}
			if err := w.flush(false); err != nil {
				return total, err
			}
			w.seg[0] = b[0]
			w.n = 1
			total++
			if err := w.account(1); err != nil {
				return total, err
			}
		}
		m, err := r.Read(w.seg[w.n:w.segSize])
		w.n += m
		total += int64(m)
		if aerr := w.account(m); aerr != nil {
			return total, aerr
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("read plaintext: %w", err)
		}
	}
}

func (w *Writer) account(n int) error {
	w.total += uint64(n)
	if w.declared != UnknownLength && w.total > w.declared {
		w.err = fmt.Errorf("more than the declared %d bytes of plaintext were written", w.declared)
		return w.err
	}
	return nil
}

func (w *Writer) flush(last bool) error {
	if w.counter >= maxSegments {
		w.err = errors.New("plaintext too long: more than 2^32 segments")
		return w.err
	}
	if w.pipe == nil && !last && w.workers > 1 {
		w.startPipeline(w.workers)
	}
	if w.pipe != nil {
		return w.dispatch(last)
	}
	setNonce(&w.nonce, w.counter, last)
	out := w.aead.Seal(w.seg[:0], w.nonce[:], w.seg[:w.n], nil)
	if _, err := w.dst.Write(out); err != nil {
		w.err = fmt.Errorf("write segment %d: %w", w.counter, err)
		return w.err
	}
	w.counter++
	w.n = 0
	return nil
}

// sealFrom seals one non-final segment from plaintext outside the buffer.
func (w *Writer) sealFrom(pt []byte) error {
	if w.counter >= maxSegments {
		w.err = errors.New("plaintext too long: more than 2^32 segments")
		return w.err
	}
	setNonce(&w.nonce, w.counter, false)
	out := w.aead.Seal(w.seg[:0], w.nonce[:], pt, nil)
	if _, err := w.dst.Write(out); err != nil {
		w.err = fmt.Errorf("write segment %d: %w", w.counter, err)
		return w.err
	}
	w.counter++
	return nil
}

// Close seals the final segment. It fails if the number of bytes written
// differs from a declared size. It does not close the destination.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.stopPipeline()
		return w.err
	}
	if w.declared != UnknownLength && w.total != w.declared {
		w.err = fmt.Errorf("only %d of the declared %d bytes of plaintext were written", w.total, w.declared)
		w.stopPipeline()
		return w.err
	}
	if err := w.flush(true); err != nil {
		w.stopPipeline()
		return err
	}
	if err := w.stopPipeline(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// abort stops the pipeline without sealing a final segment.
func (w *Writer) abort() {
	if !w.closed {
		w.closed = true
		if w.err == nil {
			w.err = errClosed
		}
	}
	w.stopPipeline()
}

// Encrypt copies src into a new envelope on dst.
func Encrypt(dst io.Writer, src io.Reader, kw KeyWrapper, opts *Options) (*Header, error) {
	w, err := NewWriter(dst, kw, opts)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(w, src); err != nil {
		return nil, err
	}
	return w.hdr, w.Close()
}
