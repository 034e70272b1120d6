package record

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/ppml/ppml/envelope"
)

// Magic opens every record; Version is the only version this package writes.
const (
	Magic   = "PPSR"
	Version = 1
)

// Layout and limits of version 1 (see docs/formats/stream-record.md).
const (
	WriterIDSize  = 16
	TagSize       = 16
	MaxStreamName = 255
	// MaxRecordSize bounds a whole record; brokers default to 1 MiB
	// messages, so writers should stay well below it.
	MaxRecordSize = 8 << 20
	fixedLen      = 36 // magic .. writer id
	timeLen       = 8  // event time at the start of the plaintext
)

// Kind says what a record carries.
type Kind uint8

// Record kinds.
const (
	// KindData carries an event time and a body.
	KindData Kind = 1
	// KindEnd says the writer finished the partition: no record of the
	// writer follows in it. Its body is empty.
	KindEnd Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindEnd:
		return "end"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Errors callers can test for with errors.Is.
var (
	ErrNotRecord   = errors.New("not a ppml stream record")
	ErrUnsupported = errors.New("unsupported stream record")
	ErrCorrupt     = errors.New("corrupt stream record")
	ErrWrongStream = errors.New("stream record read from the wrong stream or partition")
	ErrAuth        = errors.New("stream record authentication failed")
	// ErrWrongKey is envelope.ErrWrongKey: no key for the record's key reference.
	ErrWrongKey = envelope.ErrWrongKey
)

// WriterID identifies a writer; with the partition and the sequence number
// it names one record.
type WriterID [WriterIDSize]byte

func (w WriterID) String() string { return fmt.Sprintf("%x", w[:]) }

// Header is a parsed record header. It is not authenticated until Open
// succeeds.
type Header struct {
	Version    uint8
	Kind       Kind
	Stream     string
	Partition  uint32
	Seq        uint64 // 1 for a writer's first record in the partition
	Writer     WriterID
	KeyRef     envelope.KeyRef
	WrappedKey []byte
	Len        int // header length: the ciphertext starts here
}

// Parse reads and validates a record's header without any key. It never
// panics on any input; the fuzz target holds it to that.
func Parse(b []byte) (*Header, error) {
	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrNotRecord, Magic)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a record may have", ErrCorrupt, len(b), MaxRecordSize)
	}
	if len(b) > 4 && b[4] != Version {
		return nil, fmt.Errorf("%w: record version %d (this ppml reads version %d)", ErrUnsupported, b[4], Version)
	}
	if len(b) < fixedLen+1 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrCorrupt, len(b))
	}
	h := &Header{
		Version:   b[4],
		Kind:      Kind(b[5]),
		Partition: binary.BigEndian.Uint32(b[8:]),
		Seq:       binary.BigEndian.Uint64(b[12:]),
	}
	copy(h.Writer[:], b[20:36])
	if h.Kind != KindData && h.Kind != KindEnd {
		return nil, fmt.Errorf("%w: record kind %d", ErrUnsupported, b[5])
	}
	if f := binary.BigEndian.Uint16(b[6:]); f != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#04x", ErrUnsupported, f)
	}
	if h.Seq == 0 {
		return nil, fmt.Errorf("%w: sequence number 0 (they start at 1)", ErrCorrupt)
	}
	p := fixedLen
	n := int(b[p])
	p++
	if n == 0 || len(b) < p+n {
		return nil, fmt.Errorf("%w: stream name of %d bytes does not fit", ErrCorrupt, n)
	}
	h.Stream = string(b[p : p+n])
	if err := CheckStreamName(h.Stream); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	p += n
	ref, p2, err := field16(b, p, envelope.MaxKeyRefLen, "key reference")
	if err != nil {
		return nil, err
	}
	if h.KeyRef, err = envelope.ParseKeyRef(string(ref)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	wrapped, p3, err := field16(b, p2, envelope.MaxWrappedKeyLen, "wrapped data key")
	if err != nil {
		return nil, err
	}
	if len(wrapped) == 0 {
		return nil, fmt.Errorf("%w: empty wrapped data key", ErrCorrupt)
	}
	h.WrappedKey = wrapped
	h.Len = p3
	min := TagSize
	if h.Kind == KindData {
		min += timeLen
	}
	if len(b)-p3 < min {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes, shorter than the %d a %s record needs", ErrCorrupt, len(b)-p3, min, h.Kind)
	}
	if h.Kind == KindEnd && len(b)-p3 != TagSize {
		return nil, fmt.Errorf("%w: an end record carries no body", ErrCorrupt)
	}
	return h, nil
}

func field16(b []byte, p, max int, what string) ([]byte, int, error) {
	if len(b) < p+2 {
		return nil, 0, fmt.Errorf("%w: cut off before the %s length", ErrCorrupt, what)
	}
	n := int(binary.BigEndian.Uint16(b[p:]))
	p += 2
	if n > max {
		return nil, 0, fmt.Errorf("%w: %s of %d bytes, more than %d", ErrCorrupt, what, n, max)
	}
	if len(b) < p+n {
		return nil, 0, fmt.Errorf("%w: cut off inside the %s", ErrCorrupt, what)
	}
	return b[p : p+n], p + n, nil
}

// CheckStreamName accepts 1 to 255 bytes of A-Z a-z 0-9 . _ - (names
// every broker accepts as a topic, subject token or key part).
func CheckStreamName(s string) error {
	if s == "" || len(s) > MaxStreamName {
		return fmt.Errorf("stream name must be 1 to %d characters", MaxStreamName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("stream name %q: only A-Z a-z 0-9 . _ - are allowed", s)
		}
	}
	return nil
}

// wrapAAD is what the key-encryption key binds when wrapping a writer's
// data key: the format, the writer and the stream.
func wrapAAD(stream string, id WriterID) []byte {
	b := make([]byte, 0, 5+WriterIDSize+1+len(stream))
	b = append(b, Magic...)
	b = append(b, Version)
	b = append(b, id[:]...)
	b = append(b, byte(len(stream)))
	return append(b, stream...)
}

const keyLabel = "ppml-stream v1 record key"

func recordAEAD(dataKey []byte, id WriterID) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, dataKey, id[:], keyLabel, 32)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func nonce(partition uint32, seq uint64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint32(n, partition)
	binary.BigEndian.PutUint64(n[4:], seq)
	return n
}

// Writer seals records of one stream with one fresh data key. Sequence
// numbers count per partition from 1. A Writer is not safe for concurrent
// use.
type Writer struct {
	stream string
	id     WriterID
	aead   cipher.AEAD
	prefix []byte // magic .. writer id is rewritten per record; this is the tail: name, key ref, wrapped key
	next   map[uint32]uint64
}

// WriterOptions continue a writer across restarts: the same id and the
// next sequence number of each partition, so readers see one unbroken
// sequence. The data key is always fresh, so a resumed writer never reuses
// a nonce under a key.
type WriterOptions struct {
	ID   WriterID          // zero: random
	Next map[uint32]uint64 // next sequence number per partition; absent: 1
}

// NewWriter asks kw for a fresh data key bound to the stream and the
// writer id.
func NewWriter(stream string, kw envelope.KeyWrapper, opts *WriterOptions) (*Writer, error) {
	if err := CheckStreamName(stream); err != nil {
		return nil, err
	}
	w := &Writer{stream: stream, next: map[uint32]uint64{}}
	if opts != nil {
		w.id = opts.ID
		for p, n := range opts.Next {
			w.next[p] = n
		}
	}
	if w.id == (WriterID{}) {
		if _, err := rand.Read(w.id[:]); err != nil {
			return nil, err
		}
	}
	dk, wrapped, ref, err := kw.NewDataKey(wrapAAD(stream, w.id))
	if err != nil {
		return nil, fmt.Errorf("data key for stream %s: %w", stream, err)
	}
	defer clear(dk)
	refs := ref.String()
	if len(refs) > envelope.MaxKeyRefLen || len(wrapped) == 0 || len(wrapped) > envelope.MaxWrappedKeyLen {
		return nil, fmt.Errorf("data key for stream %s: key reference or wrapped key out of bounds", stream)
	}
	if w.aead, err = recordAEAD(dk, w.id); err != nil {
		return nil, err
	}
	t := []byte{byte(len(stream))}
	t = append(t, stream...)
	t = binary.BigEndian.AppendUint16(t, uint16(len(refs)))
	t = append(t, refs...)
	t = binary.BigEndian.AppendUint16(t, uint16(len(wrapped)))
	w.prefix = append(t, wrapped...)
	return w, nil
}

// ID is the writer's id.
func (w *Writer) ID() WriterID { return w.id }

// Stream is the stream the writer seals for.
func (w *Writer) Stream() string { return w.stream }

// Next returns the sequence number the next record of the partition gets.
func (w *Writer) Next(partition uint32) uint64 {
	if n, ok := w.next[partition]; ok {
		return n
	}
	return 1
}

// NextAll returns a copy of the next sequence number of every partition
// written so far (for WriterOptions.Next).
func (w *Writer) NextAll() map[uint32]uint64 {
	m := make(map[uint32]uint64, len(w.next))
	for p, n := range w.next {
		m[p] = n
	}
	return m
}

// Seal returns a data record for partition with the next sequence number.
func (w *Writer) Seal(partition uint32, eventTime int64, body []byte) ([]byte, error) {
	return w.seal(KindData, partition, eventTime, body)
}

// SealEnd returns the end record of partition: the writer writes nothing
// more to it.
func (w *Writer) SealEnd(partition uint32) ([]byte, error) {
	return w.seal(KindEnd, partition, 0, nil)
}

func (w *Writer) seal(kind Kind, partition uint32, eventTime int64, body []byte) ([]byte, error) {
	seq := w.Next(partition)
	if seq == math.MaxUint64 {
		return nil, fmt.Errorf("stream %s partition %d: sequence numbers exhausted", w.stream, partition)
	}
	plain := 0
	if kind == KindData {
		plain = timeLen + len(body)
	}
	total := fixedLen + len(w.prefix) + plain + TagSize
	if total > MaxRecordSize {
		return nil, fmt.Errorf("record of %d bytes for stream %s exceeds the %d-byte limit", total, w.stream, MaxRecordSize)
	}
	b := make([]byte, fixedLen, total)
	copy(b, Magic)
	b[4] = Version
	b[5] = byte(kind)
	binary.BigEndian.PutUint32(b[8:], partition)
	binary.BigEndian.PutUint64(b[12:], seq)
	copy(b[20:], w.id[:])
	b = append(b, w.prefix...)
	hlen := len(b)
	if kind == KindData {
		b = binary.BigEndian.AppendUint64(b, uint64(eventTime))
		b = append(b, body...)
	}
	b = w.aead.Seal(b[:hlen], nonce(partition, seq), b[hlen:], b[:hlen])
	w.next[partition] = seq + 1
	return b, nil
}
