package core

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/store"
)

// Buckets of the store. Key names and tenant names are blinded (store.DB.Blind)
// so that they do not appear at rest; the audit log keeps its own records
// under the namespace auditlog.Namespace.
const (
	bktTenants = "tenants" // blind("tenant\0"+name) -> tenantRec
	bktTokens  = "tokens"  // token id (16 hex) -> tokenRec
	bktKeys    = "keys"    // blind("key\0"+name) -> keyRec
	bktMeta    = "meta"    // "token_signing_key", "audit_signing_key" -> PKCS#8; "bootstrapped"
)

// Defaults of API token lifetimes.
const (
	DefaultAPITokenTTL = 720 * time.Hour  // 30 days
	DefaultAPITokenMax = 8760 * time.Hour // one year: the longest TTL a token may be given
)

type tenantRec struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

type tokenRec struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	Hash        []byte    `json:"hash"` // SHA-256 of the secret part
	Created     time.Time `json:"created"`
	// Expires is when the token stops working unless renewed by TTL; zero
	// for tokens issued before tokens expired.
	Expires time.Time     `json:"expires,omitzero"`
	TTL     time.Duration `json:"ttl,omitzero"`
	Revoked bool          `json:"revoked,omitempty"`
}

func (t *tokenRec) info() api.TokenInfo {
	i := api.TokenInfo{ID: t.ID, Tenant: t.Tenant, Role: t.Role, Description: t.Description, Created: t.Created, Expires: t.Expires, Revoked: t.Revoked}
	if t.TTL > 0 {
		i.TTL = t.TTL.String()
	}
	return i
}

type keyVersionRec struct {
	Version uint32 `json:"version"`
	// Material is the version's secret, sealed by the store: a 32-byte
	// AES-256 key, or for a recipient key the 32-byte private key of its
	// KEM (HPKE SerializePrivateKey); nil once destroyed.
	Material []byte    `json:"material,omitempty"`
	Created  time.Time `json:"created"`
	// State is "" (enabled), api.KeyDisabled or api.KeyDestroyed.
	State   string    `json:"state,omitempty"`
	Changed time.Time `json:"changed,omitzero"`
}

func (v *keyVersionRec) state() string {
	if v.State == "" {
		return api.KeyEnabled
	}
	return v.State
}

// usable says why a version may not wrap or unwrap, nil if it may.
func (v *keyVersionRec) usable(name string) *errUnwrap {
	switch v.State {
	case api.KeyDisabled:
		return &errUnwrap{api.RuleKeyDisabled, fmt.Sprintf("key %s version %d is disabled: its owner must enable it (ppml key enable) before it wraps or unwraps anything", name, v.Version)}
	case api.KeyDestroyed:
		return &errUnwrap{api.RuleKeyDestroyed, fmt.Sprintf("key %s version %d was destroyed: its key material is gone and what it wrapped can never be decrypted", name, v.Version)}
	}
	return nil
}

type keyRec struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	// KEM makes a recipient key (envelope.KEMMLKEM768X25519 or KEMX25519);
	// empty for a symmetric key.
	KEM      string          `json:"kem,omitempty"`
	Versions []keyVersionRec `json:"versions"`
	Policy   json.RawMessage `json:"policy,omitempty"` // policy.Policy JSON
	Created  time.Time       `json:"created"`

	raw []byte // the record as read, for a release to check it did not change
}

func (k *keyRec) newest() *keyVersionRec { return &k.Versions[len(k.Versions)-1] }

func (k *keyRec) version(v uint32) *keyVersionRec {
	for i := range k.Versions {
		if k.Versions[i].Version == v {
			return &k.Versions[i]
		}
	}
	return nil
}

func (k *keyRec) api() api.Key {
	out := api.Key{Name: k.Name, Tenant: k.Tenant, Recipient: k.KEM, Version: k.newest().Version, Policy: len(k.Policy) > 0, Created: k.Created}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, api.KeyVersion{Version: v.Version, Created: v.Created, State: v.state(), Changed: v.Changed})
	}
	return out
}

func getJSON(tx store.Tx, bucket string, key []byte, v any) error {
	b, err := tx.Get(bucket, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func putJSON(tx store.Tx, bucket string, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(bucket, key, b)
}

func (c *Core) tenantKey(name string) []byte { return c.db.Blind([]byte("tenant\x00" + name)) }
func (c *Core) keyKey(name string) []byte    { return c.db.Blind([]byte("key\x00" + name)) }

// Tokens are "ppml_" ID "_" SECRET: ID 16 hex digits names the record,
// SECRET is 32 random bytes in base64url whose SHA-256 is stored.
const tokenPrefix = "ppml_"

func newToken() (id, token string, hash []byte, err error) {
	b := make([]byte, 8+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, err
	}
	id = hex.EncodeToString(b[:8])
	secret := base64.RawURLEncoding.EncodeToString(b[8:])
	h := sha256.Sum256([]byte(secret))
	clear(b)
	return id, tokenPrefix + id + "_" + secret, h[:], nil
}

func splitToken(tok string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(rest) < 18 || rest[16] != '_' {
		return "", "", false
	}
	return rest[:16], rest[17:], true
}

// lookupToken finds the token record and checks the secret in constant time.
func lookupToken(tx store.Tx, tok string) (*tokenRec, error) {
	id, secret, ok := splitToken(tok)
	if !ok {
		return nil, errors.New("malformed token")
	}
	var rec tokenRec
	if err := getJSON(tx, bktTokens, []byte(id), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errors.New("unknown token")
		}
		return nil, err
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], rec.Hash) != 1 {
		return nil, errors.New("unknown token")
	}
	if rec.Revoked {
		return nil, errors.New("token revoked")
	}
	return &rec, nil
}

// expired says why an unexpired-looking token is past its expiry, if it is.
func (t *tokenRec) expired(now time.Time) error {
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return fmt.Errorf("token %s expired at %s: renew tokens before they expire (ppml token renew), or ask an admin for a new one", t.ID, t.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// issueToken stores a new token for tenant, valid for ttl (0: the
// default), and audits it; by says who issued it, in words.
func (c *Core) issueToken(tx store.Tx, t *tenantRec, desc, actor, by string, ttl time.Duration) (*api.TokenInfo, error) {
	if ttl <= 0 {
		ttl = c.cfg.APITokenTTL
	}
	if ttl > c.cfg.APITokenMaxTTL {
		return nil, Errorf(KindBadRequest, "bad_request", "ttl %s is longer than this server allows (%s)", ttl, c.cfg.APITokenMaxTTL)
	}
	id, tok, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	now := c.now().UTC()
	rec := tokenRec{ID: id, Tenant: t.Name, Role: t.Role, Description: desc, Hash: hash, Created: now, Expires: now.Add(ttl), TTL: ttl}
	if err := putJSON(tx, bktTokens, []byte(id), &rec); err != nil {
		return nil, err
	}
	// On the tenant's own trail, whoever issued it: a token is the power to
	// act as the tenant, so its owner must see every one.
	if err := c.record(tx, audit.Entry{Type: audit.TypeTokenIssue, Tenant: t.Name, Actor: actor, Reason: "token " + id + " (" + t.Role + ") issued by " + by + ", expires " + rec.Expires.Format(time.RFC3339)}); err != nil {
		return nil, err
	}
	info := rec.info()
	info.Token = tok
	return &info, nil
}

// Wrapped data key layout:
//
//	version (uint32 BE) | nonce (12) | AES-256-GCM(KEK_v, data key, wrapAAD)
//
// wrapAAD = "ppml kms wrap v1" 0x00 | uint32 len(name) | name | uint32 version | caller AAD,
// so a wrapped key is bound to its key, version and the caller's AAD.
const wrappedSize = 4 + 12 + 32 + 16

func wrapAAD(name string, v uint32, aad []byte) []byte {
	b := append([]byte("ppml kms wrap v1\x00"), binary.BigEndian.AppendUint32(nil, uint32(len(name)))...)
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, v)
	return append(b, aad...)
}

func kekAEAD(material []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// A recipient key's wrapped data key is
//
//	version (uint32 BE) | the envelope's recipient wrapping (enc | HPKE-sealed data key, aad = caller AAD)
//
// as anyone holding the version's public key makes it (api.PublicKey): the
// caller AAD is the envelope header's wrap AAD, bound as for local
// recipients; the version picks the private key.

func (kv *keyVersionRec) identity(kem string) (*envelope.Identity, error) {
	return envelope.NewIdentity(kem, kv.Material)
}

// wrapDataKey makes a data key wrapped under the key's newest version; an
// *errUnwrap says why that version may not wrap.
func wrapDataKey(k *keyRec, aad []byte) (dk, wrapped []byte, v uint32, err error) {
	kv := k.newest()
	if ue := kv.usable(k.Name); ue != nil {
		ue.msg = "new data keys are wrapped under the newest version: " + ue.msg + " (or rotate the key)"
		return nil, nil, kv.Version, ue
	}
	if k.KEM != "" {
		id, err := kv.identity(k.KEM)
		if err != nil {
			return nil, nil, 0, err
		}
		dk := make([]byte, 32)
		if _, err := rand.Read(dk); err != nil {
			return nil, nil, 0, err
		}
		w, err := id.Recipient().SealDataKey(dk, aad)
		if err != nil {
			clear(dk)
			return nil, nil, 0, err
		}
		return dk, append(binary.BigEndian.AppendUint32(nil, kv.Version), w...), kv.Version, nil
	}
	a, err := kekAEAD(kv.Material)
	if err != nil {
		return nil, nil, 0, err
	}
	buf := make([]byte, 32+12)
	if _, err := rand.Read(buf); err != nil {
		return nil, nil, 0, err
	}
	dk, nonce := buf[:32], buf[32:]
	out := binary.BigEndian.AppendUint32(nil, kv.Version)
	out = append(out, nonce...)
	out = a.Seal(out, nonce, dk, wrapAAD(k.Name, kv.Version, aad))
	return dk, out, kv.Version, nil
}

// errUnwrap names why a wrapped key does not unwrap; rule is the stable name.
type errUnwrap struct{ rule, msg string }

func (e *errUnwrap) Error() string { return e.msg }

func unwrapDataKey(k *keyRec, wrapped, aad []byte) ([]byte, uint32, error) {
	if k.KEM != "" {
		return unwrapRecipient(k, wrapped, aad)
	}
	if len(wrapped) != wrappedSize {
		return nil, 0, &errUnwrap{"wrapped_key", fmt.Sprintf("wrapped data key is %d bytes, want %d", len(wrapped), wrappedSize)}
	}
	v := binary.BigEndian.Uint32(wrapped)
	kv := k.version(v)
	if kv == nil {
		return nil, v, &errUnwrap{api.RuleKeyVersion, fmt.Sprintf("key %s has no version %d", k.Name, v)}
	}
	if ue := kv.usable(k.Name); ue != nil {
		return nil, v, ue
	}
	a, err := kekAEAD(kv.Material)
	if err != nil {
		return nil, v, err
	}
	dk, err := a.Open(nil, wrapped[4:16], wrapped[16:], wrapAAD(k.Name, v, aad))
	if err != nil {
		return nil, v, &errUnwrap{api.RuleWrappedKey, fmt.Sprintf("the data key does not unwrap under %s version %d: it was wrapped under another key or with other associated data", k.Name, v)}
	}
	return dk, v, nil
}

func unwrapRecipient(k *keyRec, wrapped, aad []byte) ([]byte, uint32, error) {
	if len(wrapped) < 4 {
		return nil, 0, &errUnwrap{"wrapped_key", fmt.Sprintf("wrapped data key is %d bytes, too short for a recipient key's", len(wrapped))}
	}
	v := binary.BigEndian.Uint32(wrapped)
	kv := k.version(v)
	if kv == nil {
		return nil, v, &errUnwrap{api.RuleKeyVersion, fmt.Sprintf("key %s has no version %d", k.Name, v)}
	}
	if ue := kv.usable(k.Name); ue != nil {
		return nil, v, ue
	}
	id, err := kv.identity(k.KEM)
	if err != nil {
		return nil, v, err
	}
	dk, err := id.OpenDataKey(wrapped[4:], aad)
	if err != nil {
		return nil, v, &errUnwrap{api.RuleWrappedKey, fmt.Sprintf("the data key does not unwrap under %s version %d: it was sealed to another public key or with other associated data", k.Name, v)}
	}
	return dk, v, nil
}

// newKeyMaterial makes a version's secret: an AES-256 key, or for a
// recipient key (kem set) a new key pair's private key.
func newKeyMaterial(kem string) ([]byte, error) {
	if kem != "" {
		id, err := envelope.GenerateIdentity(kem)
		if err != nil {
			return nil, err
		}
		return id.Bytes()
	}
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

func parseSigner(name string, der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", name)
	}
	return ek, nil
}

// loadOrCreateSigner keeps an ECDSA P-256 key in the meta bucket.
func loadOrCreateSigner(tx store.Tx, name string) (*ecdsa.PrivateKey, error) {
	b, err := tx.Get(bktMeta, []byte(name))
	if err == nil {
		return parseSigner(name, b)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := tx.Put(bktMeta, []byte(name), der); err != nil {
		return nil, err
	}
	return k, nil
}
