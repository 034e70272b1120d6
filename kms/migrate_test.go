package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/store"
)

// v1Fixture is kms/testdata/store-v1: a data directory written by the key
// service before the authenticated state (commit c7e8fa8; mkfixture says
// how), with the tokens and the data key it issued.
type v1Fixture struct {
	AdminToken  string `json:"admin_token"`
	AliceToken  string `json:"alice_token"`
	RunnerToken string `json:"runner_token"`
	BobToken    string `json:"bob_token"` // revoked
	Key         string `json:"key"`
	Wrapped     []byte `json:"wrapped"`
	AAD         []byte `json:"aad"`
	DataKey     []byte `json:"data_key"`
	Manifest    []byte `json:"manifest"`
}

// copyV1Fixture copies the fixture into a new directory (files 0600, as
// the server wants its key file) and returns it.
func copyV1Fixture(t *testing.T) (string, *v1Fixture) {
	t.Helper()
	src := filepath.Join("testdata", "store-v1")
	dst := t.TempDir()
	for _, sub := range []string{"data", "sim"} {
		os.MkdirAll(filepath.Join(dst, sub), 0o700)
		ents, err := os.ReadDir(filepath.Join(src, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(src, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dst, sub, e.Name()), b, 0o600)
		}
	}
	for _, f := range []string{"tee-program", "fixture.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o600)
	}
	var fx v1Fixture
	b, _ := os.ReadFile(filepath.Join(dst, "fixture.json"))
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	return dst, &fx
}

// TestMigrateDatabaseOfPreviousVersion starts today's server on a database
// the previous version wrote: it migrates it at the first start (a log
// line and an audit entry say so), everything the old server issued keeps
// working, and the migrated state is protected like a new one.
func TestMigrateDatabaseOfPreviousVersion(t *testing.T) {
	root, fx := copyV1Fixture(t)
	dir := filepath.Join(root, "data")
	simPub, err := sim.LoadPublicKey(filepath.Join(root, "sim", "platform.pub"))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg := kms.Config{SimKeys: []ed25519.PublicKey{ed25519.PublicKey(simPub)}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	e := startServer(t, dir, cfg)
	if !strings.Contains(logs.String(), "migrated the store to format 2") {
		t.Fatalf("no migration log line: %s", logs.String())
	}
	ctx := context.Background()
	admin, alice := e.client(fx.AdminToken), e.client(fx.AliceToken)

	// The migration is on the audit log, which still verifies as a whole.
	es, err := admin.AuditList(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The version that migrates also brings the deployment CA, created in
	// the same first open, after the migration entry.
	if mig, ca := es[len(es)-2], es[len(es)-1]; mig.Type != audit.TypeStoreMigrate || !strings.Contains(mig.Reason, "rows resealed") || ca.Type != audit.TypeCACreate {
		t.Fatalf("last entries %+v %+v", mig, ca)
	}
	export, err := admin.AuditExport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := admin.AuditPublicKey(ctx)
	pub, err := audit.ParsePublicKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyExport(bytes.NewReader(export), audit.VerifyOptions{PublicKey: pub}); err != nil {
		t.Fatalf("audit log after migration: %v", err)
	}

	// What the old server issued still works: tokens (which never expire:
	// they predate expiry), the revocation, the data key, the key's trail
	// with its release, and a new release under the old policy.
	toks, err := admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if !tk.Expires.IsZero() {
			t.Fatalf("a token issued before expiry existed got one: %+v", tk)
		}
	}
	if _, err := e.client(fx.BobToken).ListKeys(ctx); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked token after migration: %v", err)
	}
	dk, err := alice.Decrypt(ctx, fx.Key, fx.Wrapped, fx.AAD)
	if err != nil || !bytes.Equal(dk, fx.DataKey) {
		t.Fatalf("decrypt after migration: %v", err)
	}
	trail, err := alice.AuditList(ctx, fx.Key, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, en := range trail {
		types = append(types, string(en.Type))
	}
	if got := strings.Join(types, ","); got != "key_create,data_key,key_rotate,policy_set,release,trail_upgrade,decrypt" {
		t.Fatalf("trail of %s after migration: %s", fx.Key, got)
	}
	att := &sim.Attester{Dir: filepath.Join(root, "sim"), Executable: filepath.Join(root, "tee-program")}
	rel, err := e.client(fx.RunnerToken).Release(ctx, att, fx.Manifest, [32]byte(jobDigest(t, fx.Manifest)), []api.ReleaseKeyItem{{Ref: fx.Key, Wrapped: fx.Wrapped, AAD: fx.AAD}}, 0)
	if err != nil || !bytes.Equal(rel.Keys[0], fx.DataKey) {
		t.Fatalf("release after migration: %v", err)
	}
	rel.Zero()
	// The log was upgraded to format 2 with the store: the owner's trail
	// export proves the entries written before it complete too.
	exp, err := alice.AuditTrail(ctx, []string{fx.Key}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyTrail(bytes.NewReader(exp), audit.TrailOptions{PublicKey: e.AuditPublicKey(), Keys: []string{fx.Key}}); err != nil {
		t.Fatalf("the owner's trail export after migration: %v", err)
	}
	e.stop()

	// The second start does not migrate again; the migrated state is checked.
	logs = syncBuffer{}
	e = startServer(t, dir, cfg)
	if strings.Contains(logs.String(), "migrated") {
		t.Fatal("migrated twice")
	}
	e.stop()
	rawEdit(t, dir, func(tx store.Tx) error { return tx.Delete("meta", []byte("bootstrapped")) })
	mustSay(t, startRefused(t, dir, cfg), "the bootstrap marker meta/bootstrapped was deleted")
}
