package client

import (
	"context"
	"crypto/hpke"
	"fmt"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
)

// Released is the outcome of a release: data keys in memory, by request
// order, and the service's signed attestation token.
type Released struct {
	Keys     [][]byte // Keys[i] is the data key for the i-th requested item
	Versions []uint32
	Token    string
	Response *api.ReleaseResponse
}

// Zero overwrites the data keys.
func (r *Released) Zero() {
	for _, k := range r.Keys {
		clear(k)
	}
}

// Release runs the TEE side of the release protocol: it asks for a nonce,
// makes an ephemeral HPKE key pair (kem 0 = DHKEM-X25519), binds
// SHA-512(nonce ‖ job digest ‖ public key) into evidence from att, sends
// evidence, public key and manifest, and opens each returned key with the
// private key, which never leaves this process.
func (c *Client) Release(ctx context.Context, att attest.Attester, manifest []byte, items []api.ReleaseKeyItem, kemID uint16) (*Released, error) {
	m, err := job.Parse(manifest, "/")
	if err != nil {
		return nil, fmt.Errorf("release: job manifest: %w", err)
	}
	jd := m.Digest()
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
	req := api.ReleaseRequest{Nonce: ch.Nonce, Evidence: *ev, KEM: kemID, PublicKey: pub, Manifest: manifest, Keys: items}
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
	return out, nil
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
