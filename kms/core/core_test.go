package core_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/core"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

func openCore(t *testing.T, dir string, cfg core.Config) (*core.Core, *api.TokenInfo) {
	t.Helper()
	b, err := boltstore.Open(filepath.Join(dir, "ppml.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(b, bytes.Repeat([]byte{3}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, boot, err := core.Open(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, boot
}

func kind(t *testing.T, err error) core.Kind {
	t.Helper()
	var ce *core.Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a *core.Error, got %v", err)
	}
	return ce.Kind
}

// The core is usable without any transport: callers, typed requests,
// typed results and error kinds; the whole release protocol included.
func TestCoreWithoutTransport(t *testing.T) {
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
	cfg := core.Config{Verifier: &sim.Verifier{TrustedKeys: []ed25519.PublicKey{pk.Public().(ed25519.PublicKey)}}}
	c, boot := openCore(t, dir, cfg)
	if boot == nil {
		t.Fatal("no bootstrap token at first open")
	}
	admin, err := c.Authenticate(ctx, boot.Token)
	if err != nil || admin.Role != api.RoleAdmin {
		t.Fatalf("bootstrap token: %+v %v", admin, err)
	}
	if _, err := c.Authenticate(ctx, "ppml_0000000000000000_nope"); kind(t, err) != core.KindUnauthorized {
		t.Fatal(err)
	}
	caller := func(name, role string) *core.Caller {
		if _, err := c.CreateTenant(ctx, admin, &api.CreateTenantRequest{Name: name, Role: role}); err != nil {
			t.Fatal(err)
		}
		tok, err := c.CreateToken(ctx, admin, &api.CreateTokenRequest{Tenant: name})
		if err != nil {
			t.Fatal(err)
		}
		who, err := c.Authenticate(ctx, tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		return who
	}
	alice, bob, runner := caller("alice", api.RoleOwner), caller("bob", api.RoleOwner), caller("runner", api.RoleRunner)

	// Roles and ownership are the core's own checks.
	if _, err := c.CreateTenant(ctx, alice, &api.CreateTenantRequest{Name: "x", Role: api.RoleOwner}); kind(t, err) != core.KindForbidden {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, runner, &api.CreateKeyRequest{Name: "runner.k"}); kind(t, err) != core.KindForbidden {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "a/.."}); kind(t, err) != core.KindBadRequest {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/k"}); err != nil {
		t.Fatal(err)
	}
	// Key names live in their tenant's namespace: bob cannot take alice's
	// names, whether or not she has used them.
	for _, n := range []string{"alice/k", "alice/other", "k"} {
		if _, err := c.CreateKey(ctx, bob, &api.CreateKeyRequest{Name: n}); kind(t, err) != core.KindBadRequest || !strings.Contains(err.Error(), "name new keys bob/KEY") {
			t.Fatal(n, err)
		}
	}
	if _, err := c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice/k"}); kind(t, err) != core.KindConflict {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx, bob, &api.CreateKeyRequest{Name: "alice/k"}); kind(t, err) != core.KindNotFound {
		t.Fatal(err)
	}
	if _, err := c.SetPolicy(ctx, alice, "alice/k", []byte("version: 1\nplatforms:\n  sim: {measurements: [zz]}\n")); kind(t, err) != core.KindBadRequest {
		t.Fatal(err)
	}
	pol := fmt.Appendf(nil, "version: 1\nplatforms:\n  sim:\n    measurements: [%x]\n", measure[:])
	if _, err := c.SetPolicy(ctx, alice, "alice/k", pol); err != nil {
		t.Fatal(err)
	}
	dk, err := c.GenerateDataKey(ctx, alice, &api.GenerateDataKeyRequest{Key: "alice/k", AAD: []byte("aad")})
	if err != nil {
		t.Fatal(err)
	}

	// A release: challenge, evidence binding nonce, job and ephemeral key.
	manifest := []byte("version: 1\nname: core-test\nengine: exec\ninputs:\n  in: {path: in.ppml}\nparameters:\n  command: [cat]\n")
	jd, err := core.JobDigest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	release := func(nonce []byte) (*api.ReleaseResponse, hpke.PrivateKey, []byte, error) {
		kem, _ := hpke.NewKEM(api.KEMX25519)
		priv, _ := kem.GenerateKey()
		pub := priv.PublicKey().Bytes()
		ch, err := c.Challenge(ctx, runner)
		if err != nil {
			t.Fatal(err)
		}
		if nonce == nil {
			nonce = ch.Nonce
		}
		ev, err := (&sim.Attester{Dir: simDir, Executable: exe}).Evidence(ctx, api.ReportData(nonce, jd, pub))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Release(ctx, runner, &api.ReleaseRequest{Nonce: nonce, Evidence: *ev, PublicKey: pub, Manifest: manifest,
			Keys: []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: dk.Wrapped, AAD: []byte("aad")}}})
		return resp, priv, nonce, err
	}
	resp, priv, nonce, err := release(nil)
	if err != nil {
		t.Fatal(err)
	}
	rk := resp.Keys[0]
	got, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), api.ReleaseInfo(nonce, rk.Ref), rk.Sealed)
	if err != nil || !bytes.Equal(got, dk.DataKey) || rk.Key != "alice/k" || rk.Version != 1 || resp.Token == "" {
		t.Fatalf("released %+v: %v", resp.Keys, err)
	}
	// An unknown nonce is refused, as a KindDenied error naming the rule;
	// the refusal is summed on the runner's trail, not the key's.
	_, _, _, err = release(bytes.Repeat([]byte{9}, api.NonceSize))
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Kind != core.KindDenied || ce.Denials[0].Rule != api.RuleNonce {
		t.Fatalf("foreign nonce: %v", err)
	}
	es, err := c.AuditList(ctx, alice, core.AuditQuery{Key: "alice/k"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range es {
		types = append(types, string(e.Type))
	}
	if want := "[key_create policy_set data_key release]"; fmt.Sprint(types) != want {
		t.Fatalf("trail %v, want %s", types, want)
	}
	if err := c.FlushRefusals(); err != nil {
		t.Fatal(err)
	}
	rs, err := c.AuditList(ctx, admin, core.AuditQuery{Tenant: "runner"})
	if err != nil || len(rs) != 3 || rs[2].Type != "refusals" || rs[2].Rule != api.RuleNonce || rs[2].Actor != runner.TokenID {
		t.Fatalf("runner's trail: %+v %v", rs, err)
	}
	if _, err := c.AuditList(ctx, alice, core.AuditQuery{Tenant: "bob"}); kind(t, err) != core.KindForbidden {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening issues no token, unless asked for a recovery one.
	c, boot = openCore(t, dir, cfg)
	if boot != nil {
		t.Fatal("a second open issued a token")
	}
	c.Close()
	cfg.NewAdminToken = true
	c, boot = openCore(t, dir, cfg)
	defer c.Close()
	if boot == nil || boot.Role != api.RoleAdmin {
		t.Fatalf("recovery token: %+v", boot)
	}
}
