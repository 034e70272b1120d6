package envelope

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ppml/ppml/internal/bech32"
)

// Public-key recipients (docs/formats/envelope.md section 4.3): a file can be
// encrypted to a public key by anyone who has it, and decrypted only with
// the private key (the Identity). The data key is sealed with HPKE (RFC
// 9180, base mode) to the recipient, with the header's wrap associated data
// as the HPKE associated data, exactly as other key kinds bind it.

// Recipient key encapsulation mechanisms, as named in key references.
const (
	// KEMMLKEM768X25519 is the hybrid post-quantum KEM ML-KEM-768 + X25519
	// (X-Wing, HPKE KEM 0x647a): secure while either part is. The default.
	KEMMLKEM768X25519 = "mlkem768x25519"
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256), HPKE KEM 0x0020: short
	// keys, not safe against a future quantum computer.
	KEMX25519 = "x25519"
)

const (
	recipientIDLabel   = "ppml-envelope v1 recipient id"
	recipientWrapLabel = "ppml-envelope v1 recipient wrap" // the HPKE info
	hpkeKDF            = 0x0001                            // HKDF-SHA256
	hpkeAEAD           = 0x0002                            // AES-256-GCM
)

// kemSpec describes one recipient KEM.
type kemSpec struct {
	name    string // in key references and key files
	id      uint16 // HPKE KEM identifier
	hrp     string // Bech32m prefix of the public key text
	display string // for people
	pubLen  int
	encLen  int
	kem     func() hpke.KEM
}

var kems = []kemSpec{
	{KEMMLKEM768X25519, 0x647a, "ppmlpq", "ML-KEM-768 + X25519", 1216, 1120, hpke.MLKEM768X25519},
	{KEMX25519, 0x0020, "ppml", "X25519", 32, 32, func() hpke.KEM { return hpke.DHKEM(ecdh.X25519()) }},
}

func kemByName(name string) (*kemSpec, error) {
	for i := range kems {
		if kems[i].name == name {
			return &kems[i], nil
		}
	}
	return nil, fmt.Errorf("unknown recipient key type %q (want %s or %s)", name, KEMMLKEM768X25519, KEMX25519)
}

// KEMDisplay names a recipient KEM for people ("ML-KEM-768 + X25519").
func KEMDisplay(name string) string {
	if k, err := kemByName(name); err == nil {
		return k.display
	}
	return name
}

// Recipient is a public key that files can be encrypted to. It implements
// KeyWrapper; it cannot decrypt anything.
type Recipient struct {
	spec *kemSpec
	pk   hpke.PublicKey
	id   string
}

// NewRecipient makes a recipient from a KEM name and its public key bytes
// (HPKE SerializePublicKey).
func NewRecipient(kem string, publicKey []byte) (*Recipient, error) {
	spec, err := kemByName(kem)
	if err != nil {
		return nil, err
	}
	if len(publicKey) != spec.pubLen {
		return nil, fmt.Errorf("%s public key is %d bytes, want %d", spec.display, len(publicKey), spec.pubLen)
	}
	pk, err := spec.kem().NewPublicKey(publicKey)
	if err != nil {
		return nil, fmt.Errorf("invalid %s public key", spec.display)
	}
	return &Recipient{spec: spec, pk: pk, id: recipientID(spec, publicKey)}, nil
}

// recipientID is the key id: SHA-256 of a label, the HPKE KEM id and the
// public key, first 16 bytes in lowercase hex.
func recipientID(spec *kemSpec, publicKey []byte) string {
	h := sha256.New()
	h.Write([]byte(recipientIDLabel))
	h.Write(binary.BigEndian.AppendUint16(nil, spec.id))
	h.Write(publicKey)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ParseRecipient reads a public key in its text form ("ppml1…" for X25519,
// "ppmlpq1…" for ML-KEM-768 + X25519). Spaces and line breaks inside are
// ignored, so a key that an email client re-wrapped still reads.
func ParseRecipient(text string) (*Recipient, error) {
	s := strings.Join(strings.Fields(text), "")
	if s == "" {
		return nil, errors.New("empty public key")
	}
	hrp, data, err := bech32.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("not a ppml public key: %v", strings.TrimPrefix(err.Error(), "bech32: "))
	}
	for i := range kems {
		if kems[i].hrp == hrp {
			return NewRecipient(kems[i].name, data)
		}
	}
	return nil, fmt.Errorf("not a ppml public key: it starts with %q, want ppml1 (X25519) or ppmlpq1 (ML-KEM-768 + X25519)", hrp+"1")
}

// LooksLikeRecipient reports whether s has the prefix of a public key's
// text form (to tell it from a file name).
func LooksLikeRecipient(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for i := range kems {
		if strings.HasPrefix(s, kems[i].hrp+"1") {
			return true
		}
	}
	return false
}

// String is the text form: Bech32m of the public key, prefix by KEM.
func (r *Recipient) String() string {
	s, err := bech32.Encode(r.spec.hrp, r.pk.Bytes())
	if err != nil {
		panic(err) // the prefixes are constants
	}
	return s
}

// ID is the key id: 32 lowercase hex digits.
func (r *Recipient) ID() string { return r.id }

// KEM is the KEM name (KEMMLKEM768X25519 or KEMX25519).
func (r *Recipient) KEM() string { return r.spec.name }

// Bytes is the public key (HPKE SerializePublicKey).
func (r *Recipient) Bytes() []byte { return r.pk.Bytes() }

// Ref is the reference recorded in headers of files encrypted to r.
func (r *Recipient) Ref() KeyRef {
	return KeyRef{Scheme: SchemeRecipient, KEM: r.spec.name, KeyID: r.id}
}

// NewDataKey implements KeyWrapper.
func (r *Recipient) NewDataKey(aad []byte) ([]byte, []byte, KeyRef, error) {
	return r.newDataKey(rand.Reader, aad)
}

func (r *Recipient) newDataKey(rnd io.Reader, aad []byte) ([]byte, []byte, KeyRef, error) {
	dk := make([]byte, DataKeySize)
	if _, err := io.ReadFull(rnd, dk); err != nil {
		return nil, nil, KeyRef{}, fmt.Errorf("generate data key: %w", err)
	}
	wrapped, err := r.SealDataKey(dk, aad)
	if err != nil {
		clear(dk)
		return nil, nil, KeyRef{}, err
	}
	return dk, wrapped, r.Ref(), nil
}

// SealDataKey seals dk to r with HPKE: enc ‖ AES-256-GCM(dk) with aad as
// associated data. A key service whose key has a public half (a kms://
// recipient key) uses it for the data keys of files encrypted to it.
func (r *Recipient) SealDataKey(dk, aad []byte) ([]byte, error) {
	enc, s, err := hpke.NewSender(r.pk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(recipientWrapLabel))
	if err != nil {
		return nil, fmt.Errorf("seal data key to %s recipient: %w", r.spec.display, err)
	}
	ct, err := s.Seal(aad, dk)
	if err != nil {
		return nil, fmt.Errorf("seal data key to %s recipient: %w", r.spec.display, err)
	}
	return append(enc, ct...), nil
}

// Identity is the private key of a recipient. It implements KeyResolver
// for files encrypted to its public key.
type Identity struct {
	spec *kemSpec
	sk   hpke.PrivateKey
	r    *Recipient
}

// GenerateIdentity makes a new key pair of the given KEM.
func GenerateIdentity(kem string) (*Identity, error) {
	spec, err := kemByName(kem)
	if err != nil {
		return nil, err
	}
	sk, err := spec.kem().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", spec.display, err)
	}
	return newIdentity(spec, sk)
}

// NewIdentity loads a private key (HPKE SerializePrivateKey: the 32-byte
// X25519 scalar, or the 32-byte ML-KEM-768 + X25519 seed).
func NewIdentity(kem string, privateKey []byte) (*Identity, error) {
	spec, err := kemByName(kem)
	if err != nil {
		return nil, err
	}
	if len(privateKey) != 32 {
		return nil, fmt.Errorf("%s private key is %d bytes, want 32", spec.display, len(privateKey))
	}
	sk, err := spec.kem().NewPrivateKey(privateKey)
	if err != nil {
		return nil, fmt.Errorf("invalid %s private key", spec.display)
	}
	return newIdentity(spec, sk)
}

func newIdentity(spec *kemSpec, sk hpke.PrivateKey) (*Identity, error) {
	pub := sk.PublicKey().Bytes()
	r, err := NewRecipient(spec.name, pub)
	if err != nil {
		return nil, err
	}
	return &Identity{spec: spec, sk: sk, r: r}, nil
}

// Recipient is the public half.
func (i *Identity) Recipient() *Recipient { return i.r }

// ID is the key id, the public half's.
func (i *Identity) ID() string { return i.r.id }

// KEM is the KEM name.
func (i *Identity) KEM() string { return i.spec.name }

// Ref is the reference of files encrypted to the public half.
func (i *Identity) Ref() KeyRef { return i.r.Ref() }

// Bytes is the private key (HPKE SerializePrivateKey), for a key file.
// The caller must clear it.
func (i *Identity) Bytes() ([]byte, error) { return i.sk.Bytes() }

// NewDataKey implements KeyWrapper: it encrypts to the public half, so a
// private key file also serves `ppml encrypt --key`.
func (i *Identity) NewDataKey(aad []byte) ([]byte, []byte, KeyRef, error) {
	return i.r.NewDataKey(aad)
}

// UnwrapDataKey implements KeyResolver.
func (i *Identity) UnwrapDataKey(ref KeyRef, wrapped, aad []byte) ([]byte, error) {
	if ref.Scheme != SchemeRecipient || ref.KeyID != i.r.id || ref.KEM != i.spec.name {
		return nil, &WrongKeyError{Need: ref, Given: i.Ref().Describe()}
	}
	dk, err := i.OpenDataKey(wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %v although the key ids match: the header was modified", ErrCorruptHeader, err)
	}
	return dk, nil
}

// OpenDataKey opens a data key SealDataKey sealed to the public half. Its
// errors say only that the key did not open, never why, as HPKE itself.
func (i *Identity) OpenDataKey(wrapped, aad []byte) ([]byte, error) {
	if want := i.spec.encLen + DataKeySize + TagSize; len(wrapped) != want {
		return nil, fmt.Errorf("the wrapped data key is %d bytes, a %s recipient key wraps to %d", len(wrapped), i.spec.display, want)
	}
	enc, ct := wrapped[:i.spec.encLen], wrapped[i.spec.encLen:]
	r, err := hpke.NewRecipient(enc, i.sk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(recipientWrapLabel))
	if err != nil {
		return nil, fmt.Errorf("the data key does not unwrap under %s", i.Ref().Describe())
	}
	dk, err := r.Open(aad, ct)
	if err != nil || len(dk) != DataKeySize {
		return nil, fmt.Errorf("the data key does not unwrap under %s", i.Ref().Describe())
	}
	return dk, nil
}
