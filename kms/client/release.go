package client

import (
	"bytes"
	"context"
	"crypto/hpke"
	"fmt"
	"sync"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/api"
)

// Released is the outcome of a release: data keys in memory, by request
// order, and the service's signed attestation token.
type Released struct {
	Keys     [][]byte // Keys[i] is the data key for the i-th requested item
	Versions []uint32
	// Outputs[i] answers the i-th requested output.
	Outputs  []*OutputKey
	Token    string
	Response *api.ReleaseResponse
}

// Zero overwrites the data keys, output keys included.
func (r *Released) Zero() {
	for _, k := range r.Keys {
		clear(k)
	}
	for _, o := range r.Outputs {
		o.Zero()
	}
}

// OutputKey is a fresh data key the service issued for one output, and its
// wrapped form. It is an envelope.KeyWrapper for exactly one envelope: the
// one whose header's fixed part is the AAD the release asked with (the
// service bound the wrapping to it). It hands its key out once.
type OutputKey struct {
	Ref     envelope.KeyRef // kms://HOST[:PORT]/KEY@VERSION, the version that wrapped it
	AAD     []byte
	Wrapped []byte
	mu      sync.Mutex
	dk      []byte
	used    bool
}

// NewDataKey implements envelope.KeyWrapper. aad must equal the AAD of the
// release: a header with any other fixed part could not be unwrapped.
func (o *OutputKey) NewDataKey(aad []byte) ([]byte, []byte, envelope.KeyRef, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !bytes.Equal(aad, o.AAD) {
		return nil, nil, envelope.KeyRef{}, fmt.Errorf("output key %s was issued for another envelope header: the header's fixed part differs from the one sent in the release", o.Ref)
	}
	if o.used || o.dk == nil {
		return nil, nil, envelope.KeyRef{}, fmt.Errorf("output key %s was already used or zeroed: a data key encrypts one file", o.Ref)
	}
	o.used = true
	dk := o.dk
	o.dk = nil
	return dk, bytes.Clone(o.Wrapped), o.Ref, nil
}

// Zero overwrites the data key if it was not handed out.
func (o *OutputKey) Zero() {
	o.mu.Lock()
	clear(o.dk)
	o.dk = nil
	o.mu.Unlock()
}

// Release runs the TEE side of the release protocol: it asks for a nonce,
// makes an ephemeral HPKE key pair (kem 0 = DHKEM-X25519), binds
// SHA-512(nonce ‖ job digest ‖ public key) into evidence from att, sends
// evidence, public key and manifest, and opens each returned key with the
// private key, which never leaves this process.
//
// jobDigest is the job identity of manifest (job.Manifest.Digest), which
// the caller has parsed already: the client does not parse the manifest
// again. A digest that does not belong to the manifest fails at the key
// service, which recomputes it and finds the evidence's report data wrong.
func (c *Client) Release(ctx context.Context, att attest.Attester, manifest []byte, jobDigest [32]byte, items []api.ReleaseKeyItem, kemID uint16) (*Released, error) {
	return c.ReleaseWithOutputs(ctx, att, manifest, jobDigest, items, nil, kemID)
}

// ReleaseWithOutputs is Release that also asks, in the same attested
// request, for a fresh data key for each of outputs (key reference and the
// fixed part of the output envelope's header). Released.Outputs holds them
// as envelope.KeyWrappers. Input and output keys are granted all or nothing.
func (c *Client) ReleaseWithOutputs(ctx context.Context, att attest.Attester, manifest []byte, jobDigest [32]byte, items []api.ReleaseKeyItem, outputs []api.ReleaseOutputItem, kemID uint16) (*Released, error) {
	jd := jobDigest
	if kemID == 0 {
		kemID = api.KEMX25519
	}
	kem, err := hpke.NewKEM(kemID)
	if err != nil {
		return nil, err
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("release: ephemeral key: %w", err)
	}
	pub := priv.PublicKey().Bytes()
	var ch api.Challenge
	if err := c.do(ctx, "POST", "/v1/attest/challenge", struct{}{}, &ch); err != nil {
		return nil, fmt.Errorf("release: challenge: %w", err)
	}
	rd := api.ReportData(ch.Nonce, jd[:], pub)
	ev, err := att.Evidence(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("release: evidence from %s: %w", att.Name(), err)
	}
	req := api.ReleaseRequest{Nonce: ch.Nonce, Evidence: *ev, KEM: kemID, PublicKey: pub, Manifest: manifest, Keys: items, Outputs: outputs}
	var resp api.ReleaseResponse
	if err := c.do(ctx, "POST", "/v1/release", &req, &resp); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if len(resp.Keys) != len(items) {
		return nil, fmt.Errorf("release: asked for %d keys, got %d", len(items), len(resp.Keys))
	}
	out := &Released{Token: resp.Token, Response: &resp}
	for i, rk := range resp.Keys {
		if rk.Ref != items[i].Ref {
			out.Zero()
			return nil, fmt.Errorf("release: answer %d is for %q, asked for %q", i, rk.Ref, items[i].Ref)
		}
		dk, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), api.ReleaseInfo(ch.Nonce, rk.Ref), rk.Sealed)
		if err != nil {
			out.Zero()
			return nil, fmt.Errorf("release: open key %s: %w", rk.Ref, err)
		}
		out.Keys = append(out.Keys, dk)
		out.Versions = append(out.Versions, rk.Version)
	}
	if len(resp.Outputs) != len(outputs) {
		out.Zero()
		return nil, fmt.Errorf("release: asked for %d output keys, got %d", len(outputs), len(resp.Outputs))
	}
	for i, ro := range resp.Outputs {
		ok, err := openOutput(priv, ch.Nonce, i, outputs[i], ro)
		if err != nil {
			out.Zero()
			return nil, fmt.Errorf("release: output key %d (%s): %w", i, outputs[i].Ref, err)
		}
		out.Outputs = append(out.Outputs, ok)
	}
	return out, nil
}

func openOutput(priv hpke.PrivateKey, nonce []byte, i int, asked api.ReleaseOutputItem, ro api.ReleasedOutput) (*OutputKey, error) {
	if ro.Ref != asked.Ref {
		return nil, fmt.Errorf("the answer is for %q", ro.Ref)
	}
	ref, err := outputRef(asked.Ref, ro.Key, ro.Version)
	if err != nil {
		return nil, err
	}
	if len(ro.Wrapped) == 0 || len(ro.Wrapped) > envelope.MaxWrappedKeyLen {
		return nil, fmt.Errorf("wrapped key of %d bytes", len(ro.Wrapped))
	}
	dk, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), api.OutputInfo(nonce, i, ro.Ref), ro.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if len(dk) != envelope.DataKeySize {
		clear(dk)
		return nil, fmt.Errorf("data key of %d bytes, want %d", len(dk), envelope.DataKeySize)
	}
	return &OutputKey{Ref: ref, AAD: bytes.Clone(asked.AAD), Wrapped: bytes.Clone(ro.Wrapped), dk: dk}, nil
}

// outputRef is the key reference an output header records: the requested
// kms:// reference with the version that wrapped the data key.
func outputRef(asked, key string, version uint32) (envelope.KeyRef, error) {
	r, err := envelope.ParseKeyRef(asked)
	if err != nil {
		return envelope.KeyRef{}, fmt.Errorf("reference %q: %w", asked, err)
	}
	if r.Scheme != envelope.SchemeKMS {
		return envelope.KeyRef{}, fmt.Errorf("reference %q is not kms://: an output header must name where its key lives", asked)
	}
	if r.Name != key {
		return envelope.KeyRef{}, fmt.Errorf("the service answered for key %q, asked for %q", key, r.Name)
	}
	r.Version = version
	return r, nil
}

// ReleaseRaw sends a prepared release request (tests, benchmarks).
func (c *Client) ReleaseRaw(ctx context.Context, req *api.ReleaseRequest) (*api.ReleaseResponse, error) {
	var resp api.ReleaseResponse
	return &resp, c.do(ctx, "POST", "/v1/release", req, &resp)
}

// Challenge asks for a nonce (runner).
func (c *Client) Challenge(ctx context.Context) (*api.Challenge, error) {
	var ch api.Challenge
	return &ch, c.do(ctx, "POST", "/v1/attest/challenge", struct{}{}, &ch)
}

// Resolver returns an envelope key resolver holding the released data keys
// of items (as passed to Release), matched by reference and wrapped key.
func (r *Released) Resolver(items []api.ReleaseKeyItem) envelope.KeyResolver {
	m := map[string][]byte{}
	for i, it := range items {
		if i < len(r.Keys) {
			m[it.Ref+"\x00"+string(it.Wrapped)] = r.Keys[i]
		}
	}
	return releasedResolver(m)
}

type releasedResolver map[string][]byte

func (rr releasedResolver) UnwrapDataKey(ref envelope.KeyRef, wrapped, aad []byte) ([]byte, error) {
	if dk, ok := rr[ref.String()+"\x00"+string(wrapped)]; ok {
		return append([]byte(nil), dk...), nil
	}
	return nil, &envelope.WrongKeyError{Need: ref, Given: fmt.Sprintf("%d released keys", len(rr))}
}

// ItemFromHeader is the release item for an envelope header.
func ItemFromHeader(h *envelope.Header) api.ReleaseKeyItem {
	return api.ReleaseKeyItem{Ref: h.KeyRef.String(), Wrapped: h.WrappedKey, AAD: h.WrapAAD()}
}
