package envelope

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Magic opens every envelope; Version is the only version this package writes.
const (
	Magic   = "PPMLENV"
	Version = 1
)

// Layout constants of the version 1 header (see docs/formats/envelope.md).
const (
	SaltSize        = 32
	NoncePrefixSize = 7
	TagSize         = 16
	DataKeySize     = 32
	fixedLen        = 63 // magic..nonce prefix: the wrap associated data

	DefaultSegmentSize = 1 << 20
	MinSegmentSize     = 16
	MaxSegmentSize     = 64 << 20
	MaxWrappedKeyLen   = 16384

	// UnknownLength in the plaintext-length field means the writer did not
	// know the length up front (streamed input).
	UnknownLength = ^uint64(0)
)

// FlagLengthAfterWrap is header flag bit 0: the plaintext length was
// recorded after the data key was wrapped (two-phase writing, see Draft), so
// the wrap's associated data carries the length field as UnknownLength.
// The length is still authenticated: the payload key binds the whole header.
// It is the only flag defined; readers reject any other bit.
const FlagLengthAfterWrap uint16 = 0x0001

// Suite identifies the cipher suite of the body.
type Suite uint8

// SuiteAES256GCMHKDF is HKDF-SHA256 key derivation with AES-256-GCM segments.
const SuiteAES256GCMHKDF Suite = 1

func (s Suite) String() string {
	if s == SuiteAES256GCMHKDF {
		return "AES-256-GCM-HKDF-SHA256"
	}
	return fmt.Sprintf("suite-%d", uint8(s))
}

// ContentType says what the plaintext is. It is informational: readers accept
// values they do not know.
type ContentType uint8

// Content types.
const (
	TypeBytes   ContentType = 1
	TypeCSV     ContentType = 2
	TypeJSON    ContentType = 3
	TypeParquet ContentType = 4
	TypeModel   ContentType = 5
)

var typeNames = map[ContentType]string{TypeBytes: "bytes", TypeCSV: "csv", TypeJSON: "json", TypeParquet: "parquet", TypeModel: "model"}

func (t ContentType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// ParseContentType maps a name (csv, json, parquet, model, bytes) to its type.
func ParseContentType(s string) (ContentType, error) {
	for t, n := range typeNames {
		if n == strings.ToLower(s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown content type %q (want csv, json, parquet, model or bytes)", s)
}

// Errors callers can test for with errors.Is.
var (
	ErrNotEnvelope   = errors.New("not a ppml envelope")
	ErrUnsupported   = errors.New("unsupported envelope")
	ErrCorruptHeader = errors.New("corrupt envelope header")
	ErrWrongKey      = errors.New("wrong key")
	ErrTruncated     = errors.New("envelope truncated")
	ErrTrailingData  = errors.New("data after the final segment")
	ErrAuth          = errors.New("segment authentication failed")
)

// Header is a parsed envelope header. Raw holds its exact bytes, which are
// bound into the payload key.
type Header struct {
	Version     uint8
	Suite       Suite
	ContentType ContentType
	Flags       uint16
	SegmentSize int
	// PlaintextLength is UnknownLength when the writer streamed its input.
	PlaintextLength uint64
	Salt            [SaltSize]byte
	NoncePrefix     [NoncePrefixSize]byte
	KeyRef          KeyRef
	WrappedKey      []byte
	Raw             []byte
}

// Len is the header's size in bytes; the body starts there.
func (h *Header) Len() int { return len(h.Raw) }

// LengthKnown reports whether the header records the plaintext length.
func (h *Header) LengthKnown() bool { return h.PlaintextLength != UnknownLength }

// LengthAfterWrap reports whether the plaintext length was recorded after
// the data key was wrapped (FlagLengthAfterWrap).
func (h *Header) LengthAfterWrap() bool { return h.Flags&FlagLengthAfterWrap != 0 }

// WrapAAD is the associated data the key-encryption key must bind when
// wrapping and unwrapping the data key: the fixed part of the header as it
// stood when the key was wrapped. That is header[0:63], except that with
// FlagLengthAfterWrap the length field reads UnknownLength.
func (h *Header) WrapAAD() []byte {
	if !h.LengthAfterWrap() {
		return h.Raw[:fixedLen]
	}
	return wrapAAD(h.Raw[:fixedLen])
}

// wrapAAD is the wrap associated data of a fixed part whose header has
// FlagLengthAfterWrap: a copy with the length field set to UnknownLength.
func wrapAAD(fixed []byte) []byte {
	aad := append([]byte(nil), fixed[:fixedLen]...)
	binary.BigEndian.PutUint64(aad[16:], UnknownLength)
	return aad
}

// Digest is SHA-256 of the complete header, bound into the payload key.
func (h *Header) Digest() [32]byte { return sha256.Sum256(h.Raw) }

// fixed encodes the fixed part (everything before the key reference).
func (h *Header) fixed() []byte {
	b := make([]byte, fixedLen, fixedLen+4+MaxKeyRefLen)
	copy(b, Magic)
	b[7] = h.Version
	b[8] = byte(h.Suite)
	b[9] = byte(h.ContentType)
	binary.BigEndian.PutUint16(b[10:], h.Flags)
	binary.BigEndian.PutUint32(b[12:], uint32(h.SegmentSize))
	binary.BigEndian.PutUint64(b[16:], h.PlaintextLength)
	copy(b[24:], h.Salt[:])
	copy(b[56:], h.NoncePrefix[:])
	return b
}

// finish appends the key reference and wrapped key to the fixed part and
// sets Raw.
func (h *Header) finish(fixed []byte) error {
	ref := h.KeyRef.String()
	if _, err := ParseKeyRef(ref); err != nil {
		return err
	}
	if len(h.WrappedKey) == 0 || len(h.WrappedKey) > MaxWrappedKeyLen {
		return fmt.Errorf("wrapped data key is %d bytes, want 1 to %d", len(h.WrappedKey), MaxWrappedKeyLen)
	}
	b := binary.BigEndian.AppendUint16(fixed, uint16(len(ref)))
	b = append(b, ref...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.WrappedKey)))
	b = append(b, h.WrappedKey...)
	h.Raw = b
	return nil
}

// ReadHeader reads and validates a header from r, consuming exactly its bytes.
// It does not authenticate anything: that needs the key.
func ReadHeader(r io.Reader) (*Header, error) {
	fixed := make([]byte, fixedLen)
	n, err := io.ReadFull(r, fixed)
	switch {
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: the file is empty", ErrNotEnvelope)
	case err != nil && err != io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("read envelope header: %w", err)
	}
	if n < len(Magic) && string(fixed[:n]) == Magic[:n] {
		return nil, fmt.Errorf("%w: the file ends inside the magic number after %d bytes", ErrTruncated, n)
	}
	if n < len(Magic) || string(fixed[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrNotEnvelope, Magic)
	}
	if n > len(Magic) && fixed[7] != Version {
		return nil, fmt.Errorf("%w: envelope version %d (this ppml reads version %d)", ErrUnsupported, fixed[7], Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header cut off after %d bytes", ErrTruncated, n)
	}
	h := &Header{
		Version:         fixed[7],
		Suite:           Suite(fixed[8]),
		ContentType:     ContentType(fixed[9]),
		Flags:           binary.BigEndian.Uint16(fixed[10:]),
		SegmentSize:     int(binary.BigEndian.Uint32(fixed[12:])),
		PlaintextLength: binary.BigEndian.Uint64(fixed[16:]),
	}
	copy(h.Salt[:], fixed[24:])
	copy(h.NoncePrefix[:], fixed[56:])
	if h.Suite != SuiteAES256GCMHKDF {
		return nil, fmt.Errorf("%w: cipher suite %d", ErrUnsupported, uint8(h.Suite))
	}
	if unknown := h.Flags &^ FlagLengthAfterWrap; unknown != 0 {
		return nil, fmt.Errorf("%w: unknown header flags %#04x (a newer ppml wrote this file)", ErrUnsupported, unknown)
	}
	if h.ContentType == 0 {
		return nil, fmt.Errorf("%w: content type 0 is reserved", ErrCorruptHeader)
	}
	if h.SegmentSize < MinSegmentSize || h.SegmentSize > MaxSegmentSize {
		return nil, fmt.Errorf("%w: segment size %d outside %d..%d", ErrCorruptHeader, h.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	if h.LengthAfterWrap() && !h.LengthKnown() {
		return nil, fmt.Errorf("%w: the flags say the plaintext length was recorded after the key wrap, but no length is recorded", ErrCorruptHeader)
	}
	if h.LengthKnown() && numSegments(h.PlaintextLength, h.SegmentSize) > maxSegments {
		return nil, fmt.Errorf("%w: plaintext length %d needs more than 2^32 segments", ErrCorruptHeader, h.PlaintextLength)
	}

	readField := func(what string, max int) ([]byte, error) {
		var lb [2]byte
		if _, err := io.ReadFull(r, lb[:]); err != nil {
			return nil, headerReadErr(what+" length", err)
		}
		l := int(binary.BigEndian.Uint16(lb[:]))
		if l == 0 || l > max {
			return nil, fmt.Errorf("%w: %s length %d outside 1..%d", ErrCorruptHeader, what, l, max)
		}
		v := make([]byte, l)
		if _, err := io.ReadFull(r, v); err != nil {
			return nil, headerReadErr(what, err)
		}
		return v, nil
	}
	ref, err := readField("key reference", MaxKeyRefLen)
	if err != nil {
		return nil, err
	}
	if h.KeyRef, err = ParseKeyRef(string(ref)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptHeader, err)
	}
	if h.WrappedKey, err = readField("wrapped data key", MaxWrappedKeyLen); err != nil {
		return nil, err
	}
	raw := make([]byte, 0, fixedLen+4+len(ref)+len(h.WrappedKey))
	raw = append(raw, fixed...)
	raw = binary.BigEndian.AppendUint16(raw, uint16(len(ref)))
	raw = append(raw, ref...)
	raw = binary.BigEndian.AppendUint16(raw, uint16(len(h.WrappedKey)))
	h.Raw = append(raw, h.WrappedKey...)
	return h, nil
}

func headerReadErr(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: header cut off in the %s", ErrTruncated, what)
	}
	return fmt.Errorf("read envelope header %s: %w", what, err)
}

const maxSegments = 1 << 32

// numSegments is the segment count for a plaintext of n bytes: an empty
// plaintext is one empty final segment; otherwise the final segment holds
// 1..segSize bytes.
func numSegments(n uint64, segSize int) uint64 {
	if n == 0 {
		return 1
	}
	return (n + uint64(segSize) - 1) / uint64(segSize)
}

// BodyLen is the body size in bytes for a plaintext of n bytes.
func BodyLen(n uint64, segSize int) uint64 {
	return n + numSegments(n, segSize)*TagSize
}

// plaintextLen inverts BodyLen; ok is false when no plaintext length yields a
// body of exactly bodyLen bytes.
func plaintextLen(bodyLen uint64, segSize int) (n uint64, ok bool) {
	seg := uint64(segSize) + TagSize
	if bodyLen < TagSize {
		return 0, false
	}
	full := bodyLen / seg
	rem := bodyLen % seg
	switch {
	case rem == 0:
		n = full * uint64(segSize)
	case rem <= TagSize:
		if full != 0 || rem != TagSize {
			return 0, false // a final segment must hold at least one byte unless it is the only one
		}
		n = 0
	default:
		n = full*uint64(segSize) + rem - TagSize
	}
	return n, numSegments(n, segSize) <= maxSegments
}
