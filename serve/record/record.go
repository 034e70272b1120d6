// Package record is ppml's encrypted serving record (docs/formats/serving-record.md): how a
// Cluster Serving request's data and its result travel through Redis, which sits outside the
// TEE. A record is bound to its stream, its uri and its direction, so Redis cannot move a
// result to another request, answer a request with a request, or replay a record under
// another uri without the TEE or the client noticing.
package record

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Magic starts every record.
const Magic = "PSR1"

// Kind is a record's direction.
type Kind byte

const (
	Request Kind = 1
	Result  Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Result:
		return "result"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// Sizes of the record's parts.
const (
	KeySize   = 32
	keyIDSize = 8
	saltSize  = 16
	HeaderLen = len(Magic) + 1 + keyIDSize + saltSize
	Overhead  = HeaderLen + 16
	// MaxLen bounds the stream name and uri bound into a record.
	MaxLen = 1 << 16
)

// Key is a record key: 32 secret bytes and the id records name it by.
type Key struct {
	secret [KeySize]byte
	id     [keyIDSize]byte
}

// NewKey makes a key from its 32 secret bytes (copied).
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("a serving record key is %d bytes, got %d", KeySize, len(secret))
	}
	k := &Key{}
	copy(k.secret[:], secret)
	id, err := hkdf.Key(sha256.New, secret, nil, "ppml serving record key id", keyIDSize)
	if err != nil {
		return nil, err
	}
	copy(k.id[:], id)
	return k, nil
}

// ID is the key's id in hex, as records name it.
func (k *Key) ID() string { return hex.EncodeToString(k.id[:]) }

// Keyring holds the keys a job accepts records under; the first seals new records.
type Keyring []*Key

func (r Keyring) find(id []byte) *Key {
	for _, k := range r {
		if subtle.ConstantTimeCompare(k.id[:], id) == 1 {
			return k
		}
	}
	return nil
}

// IsRecord reports whether b starts like a record (Arrow streams and JSON never do).
func IsRecord(b []byte) bool { return len(b) >= len(Magic) && string(b[:len(Magic)]) == Magic }

func aad(header []byte, stream, uri string) []byte {
	a := make([]byte, 0, len(header)+4+len(stream)+len(uri))
	a = append(a, header...)
	a = binary.BigEndian.AppendUint16(a, uint16(len(stream)))
	a = append(a, stream...)
	a = binary.BigEndian.AppendUint16(a, uint16(len(uri)))
	return append(a, uri...)
}

func aead(k *Key, salt []byte) (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, k.secret[:], salt, "ppml serving record v1", KeySize)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func checkNames(stream, uri string) error {
	if len(stream) >= MaxLen || len(uri) >= MaxLen {
		return errors.New("serving record: stream name or uri longer than 65535 bytes")
	}
	return nil
}

// Seal encrypts plaintext as a record of kind for (stream, uri) under k. Every record has a
// fresh random salt, so every record is encrypted under its own key and the fixed nonce is
// never reused.
func Seal(k *Key, kind Kind, stream, uri string, plaintext []byte) ([]byte, error) {
	if err := checkNames(stream, uri); err != nil {
		return nil, err
	}
	out := make([]byte, HeaderLen, Overhead+len(plaintext))
	copy(out, Magic)
	out[len(Magic)] = byte(kind)
	copy(out[len(Magic)+1:], k.id[:])
	salt := out[len(Magic)+1+keyIDSize : HeaderLen]
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	g, err := aead(k, salt)
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	return g.Seal(out, nonce[:], plaintext, aad(out[:HeaderLen], stream, uri)), nil
}

// Errors Open returns; the messages name what failed without revealing content.
var (
	ErrNotRecord  = errors.New("not a ppml serving record")
	ErrUnknownKey = errors.New("the record is sealed under a key this job does not hold")
	ErrOpen       = errors.New("the record does not decrypt: wrong key, altered, or moved to another stream or uri")
)

// Open decrypts a record of kind for (stream, uri) with the key the record names.
func Open(ring Keyring, kind Kind, stream, uri string, rec []byte) ([]byte, error) {
	if !IsRecord(rec) || len(rec) < Overhead {
		return nil, ErrNotRecord
	}
	if err := checkNames(stream, uri); err != nil {
		return nil, err
	}
	if got := Kind(rec[len(Magic)]); got != kind {
		return nil, fmt.Errorf("serving record: a %s record where a %s was expected", got, kind)
	}
	k := ring.find(rec[len(Magic)+1 : len(Magic)+1+keyIDSize])
	if k == nil {
		return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, hex.EncodeToString(rec[len(Magic)+1:len(Magic)+1+keyIDSize]))
	}
	g, err := aead(k, rec[len(Magic)+1+keyIDSize:HeaderLen])
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	pt, err := g.Open(nil, nonce[:], rec[HeaderLen:], aad(rec[:HeaderLen], stream, uri))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// KeyFor returns the ring's key a record is sealed under (nil if none), so a result can be
// sealed under the key of its request.
func KeyFor(ring Keyring, rec []byte) *Key {
	if !IsRecord(rec) || len(rec) < HeaderLen {
		return nil
	}
	return ring.find(rec[len(Magic)+1 : len(Magic)+1+keyIDSize])
}
