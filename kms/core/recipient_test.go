package core_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/core"
)

// TestRecipientKey: a key-service key with a public half. Anyone with a
// token reads the public half and wraps data keys to it; only the owner's
// Decrypt and a policy-gated release unwrap them, version by version.
func TestRecipientKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	simDir := filepath.Join(dir, "sim")
	pk, err := sim.PlatformKey(simDir)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "job")
	os.WriteFile(exe, []byte("job binary"), 0o644)
	measure, _ := sim.Measure(exe)
	c, boot := openCore(t, dir, core.Config{Verifier: &sim.Verifier{TrustedKeys: []ed25519.PublicKey{pk.Public().(ed25519.PublicKey)}}})
	defer c.Close()
	admin, _ := c.Authenticate(ctx, boot.Token)
	caller := func(name, role string) *core.Caller {
		c.CreateTenant(ctx, admin, &api.CreateTenantRequest{Name: name, Role: role})
		tok, err := c.CreateToken(ctx, admin, &api.CreateTokenRequest{Tenant: name})
		if err != nil {
			t.Fatal(err)
		}
		who, _ := c.Authenticate(ctx, tok.Token)
		return who
	}
	alice, hospital, runner := caller("alice", api.RoleOwner), caller("hospital", api.RoleOwner), caller("runner", api.RoleRunner)

	if _, err := c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/in", Recipient: "rsa"}); kind(t, err) != core.KindBadRequest {
		t.Fatal(err)
	}
	k, err := c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/in", Recipient: envelope.KEMMLKEM768X25519})
	if err != nil || k.Recipient != envelope.KEMMLKEM768X25519 {
		t.Fatalf("%+v %v", k, err)
	}
	c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/sym"})
	// The public half, for any role; symmetric and missing keys alike are
	// "no recipient key".
	var pub *api.PublicKey
	for _, who := range []*core.Caller{alice, hospital, runner, admin} {
		if pub, err = c.PublicKey(ctx, who, "alice/in", 0); err != nil || pub.Version != 1 || pub.Recipient != envelope.KEMMLKEM768X25519 {
			t.Fatalf("%s: %+v %v", who.Tenant, pub, err)
		}
	}
	for _, name := range []string{"alice/sym", "nobody"} {
		if _, err := c.PublicKey(ctx, hospital, name, 0); kind(t, err) != core.KindNotFound || err.Error() != "no recipient key "+name {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := c.PublicKey(ctx, hospital, "alice/in", 2); kind(t, err) != core.KindNotFound {
		t.Fatal(err)
	}

	// The hospital wraps a data key itself, as ppml encrypt --recipient kms://… does.
	aad := bytes.Repeat([]byte{7}, 63)
	wrap := func(p *api.PublicKey) (dk, wrapped []byte) {
		r, err := envelope.ParseRecipient(p.PublicKey)
		if err != nil || r.ID() != p.KeyID {
			t.Fatalf("public key: %v", err)
		}
		dk, w, _, err := r.NewDataKey(aad)
		if err != nil {
			t.Fatal(err)
		}
		return dk, append(binary.BigEndian.AppendUint32(nil, p.Version), w...)
	}
	dk1, w1 := wrap(pub)
	if _, err := c.Decrypt(ctx, hospital, &api.DecryptRequest{Key: "alice/in", Wrapped: w1, AAD: aad}); kind(t, err) != core.KindNotFound {
		t.Fatalf("the provider unwrapped: %v", err)
	}
	got, err := c.Decrypt(ctx, alice, &api.DecryptRequest{Key: "alice/in", Wrapped: w1, AAD: aad})
	if err != nil || !bytes.Equal(got.DataKey, dk1) || got.Version != 1 {
		t.Fatalf("owner decrypt: %v", err)
	}
	for name, bad := range map[string][]byte{
		"other aad":     nil,
		"flipped enc":   flip(w1, 10),
		"flipped tag":   flip(w1, len(w1)-1),
		"other version": append(binary.BigEndian.AppendUint32(nil, 9), w1[4:]...),
		"short":         w1[:3],
	} {
		a := aad
		if bad == nil {
			bad, a = w1, []byte("other")
		}
		if _, err := c.Decrypt(ctx, alice, &api.DecryptRequest{Key: "alice/in", Wrapped: bad, AAD: a}); kind(t, err) != core.KindBadRequest {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Rotation makes a new key pair; version 1 still unwraps.
	if _, err := c.RotateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/in", Recipient: envelope.KEMX25519}); kind(t, err) != core.KindBadRequest {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/in"}); err != nil {
		t.Fatal(err)
	}
	pub2, err := c.PublicKey(ctx, hospital, "alice/in", 0)
	if err != nil || pub2.Version != 2 || pub2.KeyID == pub.KeyID {
		t.Fatalf("after rotation: %+v %v", pub2, err)
	}
	dk2, w2 := wrap(pub2)
	for _, w := range []struct {
		dk, wrapped []byte
		v           uint32
	}{{dk1, w1, 1}, {dk2, w2, 2}} {
		got, err := c.Decrypt(ctx, alice, &api.DecryptRequest{Key: "alice/in", Wrapped: w.wrapped, AAD: aad})
		if err != nil || !bytes.Equal(got.DataKey, w.dk) || got.Version != w.v {
			t.Fatalf("version %d: %v", w.v, err)
		}
	}
	// The service makes data keys for it too (the owner's encrypt --key).
	gd, err := c.GenerateDataKey(ctx, alice, &api.GenerateDataKeyRequest{Key: "alice/in", AAD: aad})
	if err != nil || gd.Version != 2 {
		t.Fatal(err)
	}
	if got, err := c.Decrypt(ctx, alice, &api.DecryptRequest{Key: "alice/in", Wrapped: gd.Wrapped, AAD: aad}); err != nil || !bytes.Equal(got.DataKey, gd.DataKey) {
		t.Fatal(err)
	}

	// An attested job gets the data key released under the key's policy,
	// as for a symmetric key.
	manifest := []byte("version: 1\nname: recipient-test\nengine: exec\ninputs:\n  in: {path: in.ppml}\nparameters:\n  command: [cat]\n")
	jd, err := core.JobDigest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	release := func() (*api.ReleaseResponse, hpke.PrivateKey, []byte, error) {
		kem, _ := hpke.NewKEM(api.KEMX25519)
		priv, _ := kem.GenerateKey()
		ch, err := c.Challenge(ctx, runner)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := (&sim.Attester{Dir: simDir, Executable: exe}).Evidence(ctx, api.ReportData(ch.Nonce, jd, priv.PublicKey().Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Release(ctx, runner, &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: *ev, PublicKey: priv.PublicKey().Bytes(), Manifest: manifest,
			Keys: []api.ReleaseKeyItem{{Ref: "alice/in", Wrapped: w1, AAD: aad}}})
		return resp, priv, ch.Nonce, err
	}
	var ce *core.Error
	if _, _, _, err := release(); !errors.As(err, &ce) || ce.Kind != core.KindDenied || ce.Denials[0].Rule != api.RuleUnknownKey {
		t.Fatalf("release without a policy: %v", err)
	}
	if _, err := c.SetPolicy(ctx, alice, "alice/in", fmt.Appendf(nil, "version: 1\nplatforms:\n  sim:\n    measurements: [%x]\n", measure[:])); err != nil {
		t.Fatal(err)
	}
	resp, priv, nonce, err := release()
	if err != nil {
		t.Fatal(err)
	}
	rk := resp.Keys[0]
	if got, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), api.ReleaseInfo(nonce, rk.Ref), rk.Sealed); err != nil || !bytes.Equal(got, dk1) || rk.Version != 1 {
		t.Fatalf("released: %v", err)
	}
}

func flip(b []byte, at int) []byte {
	out := bytes.Clone(b)
	out[at] ^= 1
	return out
}
