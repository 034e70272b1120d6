package client

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/ppml/ppml/envelope"
)

// EnvelopeKey is a key-service key used as an envelope key-encryption key:
// data keys are generated and unwrapped by the service with the owner's
// token; the key material never leaves the service.
type EnvelopeKey struct {
	Client *Client
	Ref    envelope.KeyRef // the kms:// reference (Version ignored when wrapping)
	Ctx    context.Context
}

func (k *EnvelopeKey) ctx() context.Context {
	if k.Ctx != nil {
		return k.Ctx
	}
	return context.Background()
}

// NewDataKey implements envelope.KeyWrapper. The returned reference names
// the version that wrapped the key.
func (k *EnvelopeKey) NewDataKey(aad []byte) ([]byte, []byte, envelope.KeyRef, error) {
	d, err := k.Client.GenerateDataKey(k.ctx(), k.Ref.Name, aad)
	if err != nil {
		return nil, nil, envelope.KeyRef{}, fmt.Errorf("generate data key under %s: %w", k.Ref, err)
	}
	if k.Ref.Version != 0 && d.Version != k.Ref.Version {
		// New data keys are always made under the key's current version;
		// a reference naming another (or a nonexistent) one is a mistake,
		// not a request to silently use the current version.
		return nil, nil, envelope.KeyRef{}, fmt.Errorf("%s: encryption uses the key's current version %d, not version %d; give the reference without @%d", k.Ref, d.Version, k.Ref.Version, k.Ref.Version)
	}
	ref := k.Ref
	ref.Version = d.Version
	return d.DataKey, d.Wrapped, ref, nil
}

// UnwrapDataKey implements envelope.KeyResolver for references to the same
// key name on the same host.
func (k *EnvelopeKey) UnwrapDataKey(ref envelope.KeyRef, wrapped, aad []byte) ([]byte, error) {
	if ref.Scheme != envelope.SchemeKMS || ref.Name != k.Ref.Name || ref.Host != k.Ref.Host || ref.Port != k.Ref.Port {
		return nil, &envelope.WrongKeyError{Need: ref, Given: k.Ref.Describe()}
	}
	dk, err := k.Client.Decrypt(k.ctx(), ref.Name, wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key at %s: %w", ref, err)
	}
	return dk, nil
}

// RecipientKey encrypts files to a key-service recipient key without the
// owner's token: it holds the public half of one version, fetched with any
// API token, and wraps data keys itself. The header names the kms://
// reference with that version, so the owner's decrypt and a TEE's release
// unwrap them at the service like any other key's, under its policy.
type RecipientKey struct {
	Ref       envelope.KeyRef // kms://HOST[:PORT]/NAME@VERSION
	Recipient *envelope.Recipient
}

// NewRecipientKey fetches the public half of the recipient key ref names
// (its version, or the newest).
func NewRecipientKey(ctx context.Context, c *Client, ref envelope.KeyRef) (*RecipientKey, error) {
	if ref.Scheme != envelope.SchemeKMS {
		return nil, fmt.Errorf("%s is not a key-service reference", ref)
	}
	pk, err := c.PublicKey(ctx, ref.Name, ref.Version)
	if err != nil {
		return nil, fmt.Errorf("public key of %s: %w", ref, err)
	}
	if pk.Key != ref.Name || ref.Version != 0 && pk.Version != ref.Version || pk.Version == 0 {
		return nil, fmt.Errorf("public key of %s: the service answered for %s version %d", ref, pk.Key, pk.Version)
	}
	r, err := envelope.ParseRecipient(pk.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key of %s: %w", ref, err)
	}
	if r.KEM() != pk.Recipient || r.ID() != pk.KeyID {
		return nil, fmt.Errorf("public key of %s: the key does not match its stated type and key id", ref)
	}
	out := ref
	out.Version = pk.Version
	return &RecipientKey{Ref: out, Recipient: r}, nil
}

// NewDataKey implements envelope.KeyWrapper: version ‖ the recipient
// wrapping (api.PublicKey).
func (k *RecipientKey) NewDataKey(aad []byte) ([]byte, []byte, envelope.KeyRef, error) {
	dk, wrapped, _, err := k.Recipient.NewDataKey(aad)
	if err != nil {
		return nil, nil, envelope.KeyRef{}, err
	}
	return dk, append(binary.BigEndian.AppendUint32(nil, k.Ref.Version), wrapped...), k.Ref, nil
}
