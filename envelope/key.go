package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeyWrapper yields data keys for new files. A local key wraps with AES-GCM;
// the key service will run GenerateDataKey with aad as associated data.
type KeyWrapper interface {
	// NewDataKey returns a fresh DataKeySize-byte data key, its wrapped form,
	// and the reference to record in the header. aad is the header's fixed
	// part and must be bound into the wrapping.
	NewDataKey(aad []byte) (dataKey, wrapped []byte, ref KeyRef, err error)
}

// KeyResolver recovers data keys when reading. It returns an error matching
// ErrWrongKey (ideally a *WrongKeyError) when it holds no key for ref.
type KeyResolver interface {
	UnwrapDataKey(ref KeyRef, wrapped, aad []byte) (dataKey []byte, err error)
}

// WrongKeyError says which key a file needs and which one was offered.
type WrongKeyError struct {
	Need  KeyRef
	Given string // description of the offered key(s)
}

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("wrong key: the file needs %s, but %s was given", e.Need.Describe(), e.Given)
}

// Is makes errors.Is(err, ErrWrongKey) true.
func (e *WrongKeyError) Is(target error) bool { return target == ErrWrongKey }

// LocalKeySize is the size of a local key-encryption key.
const LocalKeySize = 32

const (
	localIDLabel   = "ppml-envelope v1 local key id"
	localWrapLabel = "ppml-envelope v1 local wrap key"
)

// LocalKey is a key-encryption key held in a local file (see package keyfile).
// It implements KeyWrapper and KeyResolver.
type LocalKey struct {
	id      string
	wrapKey cipher.AEAD
}

// NewLocalKey derives the key id and the wrapping key from a 32-byte secret.
func NewLocalKey(secret []byte) (*LocalKey, error) {
	if len(secret) != LocalKeySize {
		return nil, fmt.Errorf("local key must be %d bytes, got %d", LocalKeySize, len(secret))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(localIDLabel))
	id := hex.EncodeToString(mac.Sum(nil)[:16])
	wk, err := hkdf.Key(sha256.New, secret, nil, localWrapLabel, 32)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(wk)
	clear(wk)
	if err != nil {
		return nil, err
	}
	return &LocalKey{id: id, wrapKey: aead}, nil
}

// ID is the key id: 32 lowercase hex digits.
func (k *LocalKey) ID() string { return k.id }

// Ref is the reference recorded in headers of files this key wraps.
func (k *LocalKey) Ref() KeyRef { return KeyRef{Scheme: SchemeLocal, KeyID: k.id} }

// NewDataKey implements KeyWrapper.
func (k *LocalKey) NewDataKey(aad []byte) ([]byte, []byte, KeyRef, error) {
	return k.newDataKey(rand.Reader, aad)
}

func (k *LocalKey) newDataKey(rnd io.Reader, aad []byte) ([]byte, []byte, KeyRef, error) {
	buf := make([]byte, DataKeySize+12)
	if _, err := io.ReadFull(rnd, buf); err != nil {
		return nil, nil, KeyRef{}, fmt.Errorf("generate data key: %w", err)
	}
	dk, nonce := buf[:DataKeySize], buf[DataKeySize:]
	wrapped := k.wrapKey.Seal(append([]byte(nil), nonce...), nonce, dk, aad)
	return dk, wrapped, k.Ref(), nil
}

// UnwrapDataKey implements KeyResolver.
func (k *LocalKey) UnwrapDataKey(ref KeyRef, wrapped, aad []byte) ([]byte, error) {
	if ref.Scheme != SchemeLocal || ref.KeyID != k.id {
		return nil, &WrongKeyError{Need: ref, Given: "local key " + k.id}
	}
	if len(wrapped) != 12+DataKeySize+TagSize {
		return nil, fmt.Errorf("%w: wrapped data key is %d bytes, a local key wraps to %d", ErrCorruptHeader, len(wrapped), 12+DataKeySize+TagSize)
	}
	dk, err := k.wrapKey.Open(nil, wrapped[:12], wrapped[12:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: the data key does not unwrap under local key %s although the key ids match: the header was modified", ErrCorruptHeader, k.id)
	}
	return dk, nil
}

// Keyring resolves with the first of several resolvers that holds the key.
type Keyring []KeyResolver

// UnwrapDataKey implements KeyResolver.
func (kr Keyring) UnwrapDataKey(ref KeyRef, wrapped, aad []byte) ([]byte, error) {
	var given []string
	for _, r := range kr {
		dk, err := r.UnwrapDataKey(ref, wrapped, aad)
		if err == nil {
			return dk, nil
		}
		var wk *WrongKeyError
		if errors.As(err, &wk) {
			given = append(given, wk.Given)
			continue
		}
		if !errors.Is(err, ErrWrongKey) {
			return nil, err
		}
	}
	if len(given) == 0 {
		return nil, &WrongKeyError{Need: ref, Given: "no key"}
	}
	return nil, &WrongKeyError{Need: ref, Given: strings.Join(given, ", ")}
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
