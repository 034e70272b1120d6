package client

import (
	"context"
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
