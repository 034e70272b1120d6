package core

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// Keys created before tenant namespaces (alice.sales) keep working under
// their names — data keys, unwraps, releases, audit trails — since their
// names are bound into every data key wrapped under them; only creating
// such a name is refused now.
func TestLegacyKeyNamesKeepWorking(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	simDir := filepath.Join(dir, "sim")
	pk, err := sim.PlatformKey(simDir)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "job")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	measure, _ := sim.Measure(exe)
	b, err := boltstore.Open(filepath.Join(dir, "ppml.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(b, bytes.Repeat([]byte{5}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, boot, err := Open(db, Config{Verifier: &sim.Verifier{TrustedKeys: []ed25519.PublicKey{pk.Public().(ed25519.PublicKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	admin, _ := c.Authenticate(ctx, boot.Token)
	who := func(name, role string) *Caller {
		c.CreateTenant(ctx, admin, &api.CreateTenantRequest{Name: name, Role: role})
		tok, _ := c.CreateToken(ctx, admin, &api.CreateTokenRequest{Tenant: name})
		w, err := c.Authenticate(ctx, tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	alice, bob, runner := who("alice", api.RoleOwner), who("bob", api.RoleOwner), who("runner", api.RoleRunner)

	// A key as a key service before namespaces stored it.
	m, _ := newKeyMaterial("")
	pol := fmt.Appendf(nil, `{"version":1,"platforms":{"sim":{"measurements":["%x"]}}}`, measure[:])
	err = db.Update(func(tx store.Tx) error {
		return putJSON(tx, bktKeys, c.keyKey("alice.sales"), &keyRec{Name: "alice.sales", Tenant: "alice", Policy: pol,
			Versions: []keyVersionRec{{Version: 1, Material: m, Created: time.Now()}}, Created: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, alice, &api.CreateKeyRequest{Name: "alice.other"}); err == nil {
		t.Fatal("a name outside the namespace was created")
	}
	dk, err := c.GenerateDataKey(ctx, alice, &api.GenerateDataKeyRequest{Key: "alice.sales", AAD: []byte("h")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateDataKey(ctx, bob, &api.GenerateDataKeyRequest{Key: "alice.sales"}); err == nil {
		t.Fatal("bob used alice's legacy key")
	}
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pub := priv.PublicKey().Bytes()
	manifest := []byte("version: 1\nname: legacy\nengine: exec\nparameters:\n  command: [cat]\n")
	jd, err := JobDigest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := c.Challenge(ctx, runner)
	ev, err := (&sim.Attester{Dir: simDir, Executable: exe}).Evidence(ctx, api.ReportData(ch.Nonce, jd, pub))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Release(ctx, runner, &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: *ev, PublicKey: pub, Manifest: manifest,
		Keys: []api.ReleaseKeyItem{{Ref: "kms://kms.example/alice.sales@1", Wrapped: dk.Wrapped, AAD: []byte("h")}}})
	if err != nil || resp.Keys[0].Key != "alice.sales" {
		t.Fatalf("release of a legacy key: %v", err)
	}
	es, err := c.AuditList(ctx, alice, AuditQuery{Key: "alice.sales"})
	if err != nil || len(es) != 2 || es[1].Type != "release" || es[1].KeySeq != 2 {
		t.Fatalf("legacy key's trail: %+v %v", es, err)
	}
}
