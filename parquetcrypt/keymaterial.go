package parquetcrypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
)

// parquet-java's key tools (org.apache.parquet.crypto.keytools) do envelope
// encryption: each data key (DEK) is wrapped by a master key in a KMS,
// directly or through a key-encryption key (KEK, "double wrapping"). What a
// reader needs to unwrap it, the "key material" (format PKMT1), is JSON kept
// either in the file's key metadata ("internalStorage":true) or in a sidecar
// file _KEY_MATERIAL_FOR_<file>.json that maps a key reference to the
// material string.

// KeyMaterialType is the only key material format parquet-java defines.
const KeyMaterialType = "PKMT1"

// maxKeyMaterial bounds key material JSON; real material is under 1 KiB.
const maxKeyMaterial = 1 << 20

// KeyMaterial is one wrapped key in PKMT1 form.
type KeyMaterial struct {
	Type           string `json:"keyMaterialType"`
	InternalStore  *bool  `json:"internalStorage,omitempty"` // only in key metadata
	IsFooterKey    bool   `json:"isFooterKey"`
	KMSInstanceID  string `json:"kmsInstanceID,omitempty"` // footer key only
	KMSInstanceURL string `json:"kmsInstanceURL,omitempty"`
	MasterKeyID    string `json:"masterKeyID"`
	WrappedDEK     string `json:"wrappedDEK"`
	DoubleWrapping bool   `json:"doubleWrapping"`
	KEKID          string `json:"keyEncryptionKeyID,omitempty"`
	WrappedKEK     string `json:"wrappedKEK,omitempty"`
}

// KeyMetadata is what parquet key tools store as a file's key metadata.
// With internal storage it is the KeyMaterial itself; otherwise it names an
// entry of the sidecar store.
type KeyMetadata struct {
	Internal     bool
	KeyReference string
	Material     *KeyMaterial // when Internal
}

func decodeJSON(b []byte, v any) error {
	if len(b) > maxKeyMaterial {
		return fmt.Errorf("key material of %d bytes exceeds %d", len(b), maxKeyMaterial)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// ParseKeyMaterial parses and checks one PKMT1 key material string.
func ParseKeyMaterial(b []byte) (*KeyMaterial, error) {
	var m KeyMaterial
	if err := decodeJSON(b, &m); err != nil {
		return nil, fmt.Errorf("parse key material: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("parse key material: %w", err)
	}
	return &m, nil
}

func (m *KeyMaterial) check() error {
	switch {
	case m.Type != KeyMaterialType:
		return fmt.Errorf("keyMaterialType %q, want %q", printable([]byte(m.Type)), KeyMaterialType)
	case m.MasterKeyID == "":
		return errors.New("masterKeyID missing")
	case m.WrappedDEK == "":
		return errors.New("wrappedDEK missing")
	case m.DoubleWrapping && (m.KEKID == "" || m.WrappedKEK == ""):
		return errors.New("double wrapping without keyEncryptionKeyID and wrappedKEK")
	}
	return nil
}

// ParseKeyMetadata parses the key metadata parquet key tools store in a file.
func ParseKeyMetadata(b []byte) (*KeyMetadata, error) {
	var probe struct {
		Type     string `json:"keyMaterialType"`
		Internal *bool  `json:"internalStorage"`
		Ref      string `json:"keyReference"`
	}
	if err := decodeJSON(b, &probe); err != nil {
		return nil, fmt.Errorf("parse key metadata: %w", err)
	}
	if probe.Type != KeyMaterialType {
		return nil, fmt.Errorf("parse key metadata: keyMaterialType %q, want %q", printable([]byte(probe.Type)), KeyMaterialType)
	}
	if probe.Internal == nil {
		return nil, errors.New("parse key metadata: internalStorage missing")
	}
	if !*probe.Internal {
		if probe.Ref == "" {
			return nil, errors.New("parse key metadata: external storage without keyReference")
		}
		return &KeyMetadata{KeyReference: probe.Ref}, nil
	}
	m, err := ParseKeyMaterial(b)
	if err != nil {
		return nil, err
	}
	return &KeyMetadata{Internal: true, Material: m}, nil
}

// KeyMaterialStore is the content of a key material sidecar: key reference
// to key material string.
type KeyMaterialStore map[string]string

// ParseKeyMaterialStore parses a _KEY_MATERIAL_FOR_... sidecar file.
func ParseKeyMaterialStore(b []byte) (KeyMaterialStore, error) {
	var s KeyMaterialStore
	if err := decodeJSON(b, &s); err != nil {
		return nil, fmt.Errorf("parse key material store: %w", err)
	}
	if s == nil {
		return nil, errors.New("parse key material store: not a JSON object")
	}
	return s, nil
}

// KeyMaterialSidecar is the path parquet-java uses for the external key
// material of the Parquet file at path.
func KeyMaterialSidecar(path string) string {
	return filepath.Join(filepath.Dir(path), "_KEY_MATERIAL_FOR_"+filepath.Base(path)+".json")
}

// KMS unwraps a data key with a master key, as parquet-java's KmsClient.
type KMS interface {
	UnwrapKey(ctx context.Context, wrapped string, masterKeyID string) ([]byte, error)
}

// LocalKMS holds master keys in memory and wraps locally, byte-compatible
// with parquet-java's in-memory KMS (InMemoryKMS, which wrote the shared
// interop files): the wrapped key is base64(nonce | AES-GCM(key) | tag) under
// the master key with the master key id as AAD. (parquet-java's
// LocalWrapKmsClient adds a JSON envelope with a master key version; that
// form is not implemented.) In a trusted job the master keys are the ones
// the key service released to this TEE.
type LocalKMS struct {
	MasterKeys map[string][]byte
}

// UnwrapKey implements KMS.
func (k *LocalKMS) UnwrapKey(_ context.Context, wrapped, masterKeyID string) ([]byte, error) {
	mk, ok := k.MasterKeys[masterKeyID]
	if !ok {
		return nil, fmt.Errorf("master key %q: %w", printable([]byte(masterKeyID)), ErrKeyNotFound)
	}
	key, err := unwrapLocal(wrapped, mk, []byte(masterKeyID))
	if err != nil {
		return nil, fmt.Errorf("unwrap with master key %q: %w", printable([]byte(masterKeyID)), err)
	}
	return key, nil
}

// WrapKey wraps key under a master key the way UnwrapKey expects.
func (k *LocalKMS) WrapKey(key []byte, masterKeyID string) (string, error) {
	mk, ok := k.MasterKeys[masterKeyID]
	if !ok {
		return "", fmt.Errorf("master key %q: %w", printable([]byte(masterKeyID)), ErrKeyNotFound)
	}
	return wrapLocal(key, mk, []byte(masterKeyID))
}

func localGCM(kek []byte) (cipher.AEAD, error) {
	switch len(kek) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("wrapping key is %d bytes, want 16, 24 or 32", len(kek))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func wrapLocal(key, kek, aad []byte) (string, error) {
	g, err := localGCM(kek)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, nonceLen, nonceLen+len(key)+tagLen)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(g.Seal(nonce, nonce, key, aad)), nil
}

func unwrapLocal(wrapped string, kek, aad []byte) ([]byte, error) {
	g, err := localGCM(kek)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil {
		return nil, fmt.Errorf("wrapped key is not base64: %w", err)
	}
	if len(raw) < nonceLen+tagLen {
		return nil, fmt.Errorf("wrapped key of %d bytes is too short", len(raw))
	}
	key, err := g.Open(nil, raw[:nonceLen], raw[nonceLen:], aad)
	if err != nil {
		return nil, errAuth
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("unwrapped key is %d bytes, want 16, 24 or 32", len(key))
	}
	return key, nil
}

// KeyToolsRetriever is a KeyRetriever for files written with parquet key
// tools: it parses the key metadata, finds the key material (in the metadata
// or in Store), and unwraps the data key through KMS.
type KeyToolsRetriever struct {
	KMS   KMS
	Store KeyMaterialStore // external key material; nil when all is internal

	mu   sync.Mutex
	keks map[string][]byte // unwrapped KEKs by encoded KEK id
}

// Key implements KeyRetriever.
func (r *KeyToolsRetriever) Key(ctx context.Context, req KeyRequest) ([]byte, error) {
	if r.KMS == nil {
		return nil, fmt.Errorf("key tools retriever has no KMS: %w", ErrKeyNotFound)
	}
	md, err := ParseKeyMetadata(req.KeyMetadata)
	if err != nil {
		return nil, err
	}
	m := md.Material
	if !md.Internal {
		s, ok := r.Store[md.KeyReference]
		if !ok {
			return nil, fmt.Errorf("key material %q not in the key material store: %w", printable([]byte(md.KeyReference)), ErrKeyNotFound)
		}
		if m, err = ParseKeyMaterial([]byte(s)); err != nil {
			return nil, fmt.Errorf("key material %q: %w", printable([]byte(md.KeyReference)), err)
		}
	}
	if m.IsFooterKey != (req.Column == "") {
		return nil, fmt.Errorf("key material says isFooterKey=%v for a %s key", m.IsFooterKey, req.what())
	}
	if !m.DoubleWrapping {
		return r.KMS.UnwrapKey(ctx, m.WrappedDEK, m.MasterKeyID)
	}
	kekID, err := base64.StdEncoding.DecodeString(m.KEKID)
	if err != nil {
		return nil, fmt.Errorf("keyEncryptionKeyID is not base64: %w", err)
	}
	r.mu.Lock()
	kek, ok := r.keks[m.KEKID+"\x00"+m.MasterKeyID]
	r.mu.Unlock()
	if !ok {
		if kek, err = r.KMS.UnwrapKey(ctx, m.WrappedKEK, m.MasterKeyID); err != nil {
			return nil, fmt.Errorf("unwrap KEK: %w", err)
		}
		r.mu.Lock()
		if r.keks == nil {
			r.keks = map[string][]byte{}
		}
		r.keks[m.KEKID+"\x00"+m.MasterKeyID] = kek
		r.mu.Unlock()
	}
	dek, err := unwrapLocal(m.WrappedDEK, kek, kekID)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key with KEK: %w", err)
	}
	return dek, nil
}

// NewKeyMetadata wraps dek under the master key masterKeyID of kms and
// returns key metadata with internal key material (single wrapping), which
// parquet-java's key tools unwrap with an InMemoryKMS holding the same
// master key, and KeyToolsRetriever with a LocalKMS.
func NewKeyMetadata(kms *LocalKMS, masterKeyID string, dek []byte, footer bool) ([]byte, error) {
	wrapped, err := kms.WrapKey(dek, masterKeyID)
	if err != nil {
		return nil, err
	}
	t := true
	m := KeyMaterial{Type: KeyMaterialType, InternalStore: &t, IsFooterKey: footer, MasterKeyID: masterKeyID, WrappedDEK: wrapped}
	if footer {
		m.KMSInstanceID, m.KMSInstanceURL = "DEFAULT", "DEFAULT"
	}
	return json.Marshal(m)
}
