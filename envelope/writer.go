package envelope

import (
	"crypto/cipher"
	"crypto/hkdf"
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
	// SizeLater is for two-phase writing (NewDraft): the length is not
	// known when the data key is wrapped, and is given to Draft.NewWriter
	// or Draft.CreateFile, which record it in the header with
	// FlagLengthAfterWrap. Such files need a reader that knows that flag
	// (ppml from this version on).
	SizeLater bool
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

// NewWriter writes the header to dst and returns a Writer for the plaintext:
// NewDraft(opts), then its NewWriter with kw. Two-phase writing (the data
// key wrapped before the writer exists) uses a Draft directly.
func NewWriter(dst io.Writer, kw KeyWrapper, opts *Options) (*Writer, error) {
	if opts != nil && opts.SizeLater {
		return nil, errors.New("envelope options: SizeLater needs two-phase writing (NewDraft, then Draft.NewWriter with the size)")
	}
	d, err := NewDraft(opts)
	if err != nil {
		return nil, err
	}
	return d.NewWriter(dst, kw, NoSize)
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

// ReadFromAt encrypts exactly size bytes of src, read at offsets 0 to size,
// and finishes the envelope as Close does (Close afterwards returns the
// same result): the fast path for a regular input file. Several goroutines
// (Options.Workers) read and seal segments at once, one ReadAt per segment;
// the ciphertext goes to the destination in order. Nothing may have been
// written to w before, and a length the header declares must equal size.
func (w *Writer) ReadFromAt(src io.ReaderAt, size int64) (int64, error) {
	sealed, err := w.sealAt(src, size, nil, 0)
	return sealed, w.finishAt(err)
}

// ReadFromAtTo is ReadFromAt with the body written to body instead of the
// writer's destination: segment i at i*(SegmentSize+TagSize), in any order.
// It is for a destination that can take positional writes after the
// header went to it in order (standard output redirected to a regular
// file, offset by where the header ended); the body is BodyLen of size
// bytes long. On error the body may be partly written: the caller must
// discard it.
func (w *Writer) ReadFromAtTo(src io.ReaderAt, size int64, body io.WriterAt) (int64, error) {
	if body == nil {
		return 0, w.finishAt(errors.New("envelope writer: ReadFromAtTo without a destination"))
	}
	sealed, err := w.sealAt(src, size, body, 0)
	return sealed, w.finishAt(err)
}

// sealAt seals size bytes of src. With dst it writes segment i at
// base + i*(segSize+TagSize) in any order; without it, in order to w.dst.
func (w *Writer) sealAt(src io.ReaderAt, size int64, dst io.WriterAt, base int64) (int64, error) {
	switch {
	case w.err != nil:
		return 0, w.err
	case w.closed:
		return 0, errClosed
	case w.n != 0 || w.counter != 0 || w.pipe != nil:
		return 0, errors.New("envelope writer: ReadFromAt after Write or ReadFrom")
	case size < 0:
		return 0, fmt.Errorf("negative plaintext size %d", size)
	case w.declared != UnknownLength && uint64(size) != w.declared:
		return 0, fmt.Errorf("plaintext size %d differs from the %d bytes the header declares", size, w.declared)
	}
	if err := checkSize(size, w.segSize); err != nil {
		return 0, err
	}
	n := numSegments(uint64(size), w.segSize)
	// Each segment is sealed in place in one buffer: half the memory
	// traffic of separate plaintext and ciphertext buffers.
	nonces := make([][12]byte, clampWorkers(w.workers, n))
	for i := range nonces {
		copy(nonces[i][:], w.nonce[:NoncePrefixSize])
	}
	seg := int64(w.segSize)
	seal := func(wk int, buf []byte, i uint64) ([]byte, error) {
		off := int64(i) * seg
		pt := buf[:min(seg, size-off)]
		if m, err := src.ReadAt(pt, off); m < len(pt) {
			if err == nil || err == io.EOF {
				return nil, fmt.Errorf("read plaintext: the input ends at %d bytes, but it had %d when encryption started (was it changed meanwhile?)", off+int64(m), size)
			}
			return nil, fmt.Errorf("read plaintext: %w", err)
		}
		nonce := &nonces[wk]
		setNonce(nonce, i, i == n-1)
		return w.aead.Seal(pt[:0], nonce[:], pt, nil), nil
	}
	write := func(i uint64, ct []byte) error {
		var err error
		if dst != nil {
			_, err = dst.WriteAt(ct, base+int64(i)*(seg+TagSize))
		} else {
			_, err = w.dst.Write(ct)
		}
		if err != nil {
			return fmt.Errorf("write segment %d: %w", i, err)
		}
		return nil
	}
	// A file of one segment needs a buffer of its size only.
	if err := runWritten(n, len(nonces), int(min(seg, size))+TagSize, dst == nil, seal, write); err != nil {
		return 0, err
	}
	w.counter, w.total = n, uint64(size)
	return size, nil
}

// finishAt closes the writer after sealAt: every segment, the final one
// included, is written.
func (w *Writer) finishAt(err error) error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}
