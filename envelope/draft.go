package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/ppml/ppml/atomicfile"
)

// A Draft is the header of an envelope that is not written yet: the part
// the data-key wrap binds (WrapAAD: format, content type, segment size,
// length field, random salt and nonce prefix) is fixed, the key reference
// and the wrapped data key are not. It is two-phase writing, for when the
// data key must be wrapped elsewhere and earlier than the file is written —
// the launcher asks the key service for every output's data key in the one
// attested release before the job runs:
//
//	d, _ := envelope.NewDraft(&envelope.Options{ContentType: envelope.TypeCSV, SizeLater: true})
//	kw := releaseOutputKey(d.WrapAAD()) // e.g. a kms client.OutputKey
//	... later, once the plaintext (n bytes) exists ...
//	w, _ := d.CreateFile(path, kw, n, false)
//
// A Draft makes one file: its salt and nonce prefix are never reused, so a
// second NewWriter or CreateFile fails, even after the first one failed.
// NewWriter is NewDraft followed by Draft.NewWriter.
type Draft struct {
	h         Header // all but KeyRef, WrappedKey and Raw
	fixed     []byte // the fixed part as the wrap binds it
	sizeLater bool
	workers   int
	rand      io.Reader // golden-vector tests only
	used      atomic.Bool
}

// NewDraft draws a fresh salt and nonce prefix and fixes the header's
// associated data. With opts.SizeLater the plaintext length is given to
// NewWriter or CreateFile instead of here.
func NewDraft(opts *Options) (*Draft, error) {
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
	if o.SizeLater && o.SizeKnown {
		return nil, errors.New("envelope options: SizeKnown and SizeLater both set (the length is either declared now or given to the writer)")
	}
	d := &Draft{sizeLater: o.SizeLater, workers: o.Workers, rand: o.rand}
	d.h = Header{
		Version:         Version,
		Suite:           SuiteAES256GCMHKDF,
		ContentType:     o.ContentType,
		SegmentSize:     o.SegmentSize,
		PlaintextLength: UnknownLength,
	}
	if o.SizeLater {
		d.h.Flags = FlagLengthAfterWrap
	}
	if o.SizeKnown {
		if err := checkSize(o.Size, o.SegmentSize); err != nil {
			return nil, err
		}
		d.h.PlaintextLength = uint64(o.Size)
	}
	rnd := o.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, d.h.Salt[:]); err != nil {
		return nil, fmt.Errorf("generate salt: %w", err)
	}
	if _, err := io.ReadFull(rnd, d.h.NoncePrefix[:]); err != nil {
		return nil, fmt.Errorf("generate nonce prefix: %w", err)
	}
	d.fixed = d.h.fixed() // length field UnknownLength when SizeLater
	return d, nil
}

func checkSize(size int64, segSize int) error {
	if size < 0 {
		return fmt.Errorf("negative plaintext size %d", size)
	}
	if numSegments(uint64(size), segSize) > maxSegments {
		return fmt.Errorf("plaintext of %d bytes needs more than 2^32 segments of %d bytes", size, segSize)
	}
	return nil
}

// WrapAAD is the associated data the data key must be wrapped with: the
// header's fixed part (for a SizeLater draft, with the length field still
// reading "unknown"). The slice is the caller's.
func (d *Draft) WrapAAD() []byte { return bytes.Clone(d.fixed) }

// NoSize is the size argument of NewWriter and CreateFile for a draft that
// was not made with SizeLater: the length is as declared in its Options.
const NoSize = -1

// NewWriter asks kw for the data key (kw.NewDataKey with WrapAAD, so a
// wrapper issued for another header refuses), writes the header to dst and
// returns a Writer for the plaintext. The data key is cleared once the
// payload key is derived.
//
// size is the plaintext length for a draft made with SizeLater: it is
// recorded in the header, and Close fails unless exactly size bytes were
// written. Other drafts take NoSize (or the size they declared).
func (d *Draft) NewWriter(dst io.Writer, kw KeyWrapper, size int64) (*Writer, error) {
	h, aead, err := d.seal(kw, size)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(h.Raw); err != nil {
		return nil, fmt.Errorf("write envelope header: %w", err)
	}
	w := &Writer{dst: dst, hdr: h, aead: aead, segSize: h.SegmentSize, declared: h.PlaintextLength,
		seg: make([]byte, h.SegmentSize+TagSize), workers: d.workers}
	if w.workers <= 0 {
		w.workers = sealWorkers()
	}
	copy(w.nonce[:], h.NoncePrefix[:])
	return w, nil
}

// CreateFile is NewWriter into a new file at path (mode 0600), written
// atomically as CreateFile (the package function) does: always defer
// Abort; Close commits.
func (d *Draft) CreateFile(path string, kw KeyWrapper, size int64, overwrite bool) (*FileWriter, error) {
	if err := d.checkUse(size); err != nil {
		return nil, err // before creating the temporary file
	}
	af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: overwrite})
	if err != nil {
		return nil, err
	}
	w, err := d.NewWriter(af, kw, size)
	if err != nil {
		af.Abort()
		return nil, err
	}
	return &FileWriter{Writer: w, af: af}, nil
}

var errDraftUsed = errors.New("this envelope header was already used for a file: make a new one (NewDraft) for each file, its salt and nonce prefix are single-use")

// checkUse validates size against the draft, without using it up.
func (d *Draft) checkUse(size int64) error {
	if d.used.Load() {
		return errDraftUsed
	}
	declared := d.h.PlaintextLength
	switch {
	case d.sizeLater:
		if size < 0 {
			return errors.New("the envelope header was made to record the plaintext length when the writer is created (SizeLater), and no size was given")
		}
		return checkSize(size, d.h.SegmentSize)
	case size < 0:
		return nil
	case declared == UnknownLength:
		return fmt.Errorf("a plaintext size (%d) was given, but the envelope header records no length: the key wrap binds its length field, so the length must be declared when the header is made (SizeKnown) or be given here for a header made with SizeLater", size)
	case uint64(size) != declared:
		return fmt.Errorf("plaintext size %d differs from the %d bytes declared when the envelope header was made", size, declared)
	}
	return nil
}

// seal gets the data key from kw, completes the header and derives the
// payload key. The draft is used up even when this fails: kw may have
// handed out its one key.
func (d *Draft) seal(kw KeyWrapper, size int64) (*Header, cipher.AEAD, error) {
	if err := d.checkUse(size); err != nil {
		return nil, nil, err
	}
	if kw == nil {
		return nil, nil, errors.New("no key to encrypt with (nil KeyWrapper)")
	}
	if !d.used.CompareAndSwap(false, true) {
		return nil, nil, errDraftUsed
	}
	var (
		dk, wrapped []byte
		ref         KeyRef
		err         error
	)
	if lk, ok := kw.(*LocalKey); ok && d.rand != nil {
		dk, wrapped, ref, err = lk.newDataKey(d.rand, d.WrapAAD())
	} else if rk, ok := kw.(*Recipient); ok && d.rand != nil {
		dk, wrapped, ref, err = rk.newDataKey(d.rand, d.WrapAAD()) // HPKE draws its own randomness
	} else {
		dk, wrapped, ref, err = kw.NewDataKey(d.WrapAAD())
	}
	defer clear(dk)
	if err != nil {
		return nil, nil, fmt.Errorf("new data key: %w", err)
	}
	if len(dk) != DataKeySize {
		return nil, nil, fmt.Errorf("new data key: the key wrapper returned a %d-byte data key, want %d", len(dk), DataKeySize)
	}
	h := d.h
	h.KeyRef, h.WrappedKey = ref, bytes.Clone(wrapped)
	if d.sizeLater {
		h.PlaintextLength = uint64(size)
	}
	if err := h.finish(h.fixed()); err != nil {
		return nil, nil, fmt.Errorf("build header: %w", err)
	}
	if !bytes.Equal(h.WrapAAD(), d.fixed) {
		// Cannot happen: a reader could never unwrap the key.
		return nil, nil, errors.New("internal error: the envelope header's wrap associated data changed after the key was wrapped")
	}
	aead, err := payloadAEAD(dk, &h)
	if err != nil {
		return nil, nil, err
	}
	return &h, aead, nil
}
