package record

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/ppml/ppml/envelope"
)

// Record is an opened record.
type Record struct {
	Header
	Time int64 // event time in Unix milliseconds (data records)
	// Body is the plaintext body (data records). From Open it is a new
	// slice, aliasing no input, that the Opener never writes again; from
	// OpenInto it aliases the caller's buffer.
	Body []byte
}

// Opener opens records, unwrapping each writer's data key once. It is safe
// for concurrent use.
type Opener struct {
	keys envelope.KeyResolver
	mu   sync.Mutex
	aead map[[32]byte]cipher.AEAD
}

// maxCachedKeys bounds the unwrapped data keys an Opener keeps (one per
// writer session); past it the cache starts over.
const maxCachedKeys = 4096

// NewOpener returns an Opener that resolves data keys with keys.
func NewOpener(keys envelope.KeyResolver) *Opener {
	return &Opener{keys: keys, aead: map[[32]byte]cipher.AEAD{}}
}

// Open authenticates and decrypts b, which was read from the given stream
// and partition. Errors match ErrNotRecord, ErrUnsupported, ErrCorrupt,
// ErrWrongStream, ErrWrongKey or ErrAuth and say what was found.
func (o *Opener) Open(stream string, partition uint32, b []byte) (*Record, error) {
	return o.OpenInto(nil, stream, partition, b)
}

// OpenInto is Open decrypting into dst's storage when it has room (a
// caller's buffer reused from record to record): the record's Body then
// aliases dst. The caller must not reuse dst while anything it handed the
// body to may still hold it. b is never modified, also when it does not
// open (dead letters keep it).
func (o *Opener) OpenInto(dst []byte, stream string, partition uint32, b []byte) (*Record, error) {
	h, err := Parse(b)
	if err != nil {
		return nil, err
	}
	if h.Stream != stream || h.Partition != partition {
		return nil, fmt.Errorf("%w: it was written for stream %s partition %d and read from stream %s partition %d", ErrWrongStream, h.Stream, h.Partition, stream, partition)
	}
	aead, err := o.keyFor(h)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(dst[:0], nonce(h.Partition, h.Seq), b[h.Len:], b[:h.Len])
	if err != nil {
		return nil, fmt.Errorf("%w: writer %s sequence %d of stream %s partition %d was modified", ErrAuth, h.Writer, h.Seq, h.Stream, h.Partition)
	}
	r := &Record{Header: *h}
	r.WrappedKey = append([]byte(nil), h.WrappedKey...)
	if h.Kind == KindData {
		r.Time = int64(binary.BigEndian.Uint64(plain))
		r.Body = plain[timeLen:]
	}
	return r, nil
}

func (o *Opener) keyFor(h *Header) (cipher.AEAD, error) {
	aad := wrapAAD(h.Stream, h.Writer)
	d := sha256.New()
	ref := h.KeyRef.String()
	for _, part := range [][]byte{aad, []byte(ref), h.WrappedKey} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		d.Write(n[:])
		d.Write(part)
	}
	var id [32]byte
	d.Sum(id[:0])
	o.mu.Lock()
	a, ok := o.aead[id]
	o.mu.Unlock()
	if ok {
		return a, nil
	}
	dk, err := o.keys.UnwrapDataKey(h.KeyRef, h.WrappedKey, aad)
	if err != nil {
		if errors.Is(err, envelope.ErrWrongKey) {
			return nil, err
		}
		if errors.Is(err, envelope.ErrCorruptHeader) {
			return nil, fmt.Errorf("%w: the data key of writer %s does not unwrap under %s: the record was modified or moved to another stream", ErrAuth, h.Writer, h.KeyRef.Describe())
		}
		return nil, fmt.Errorf("data key of writer %s: %w", h.Writer, err)
	}
	defer clear(dk)
	if len(dk) != envelope.DataKeySize {
		return nil, fmt.Errorf("data key of writer %s is %d bytes, want %d", h.Writer, len(dk), envelope.DataKeySize)
	}
	a, err = recordAEAD(dk, h.Writer)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	if len(o.aead) >= maxCachedKeys {
		clear(o.aead)
	}
	o.aead[id] = a
	o.mu.Unlock()
	return a, nil
}
