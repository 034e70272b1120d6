package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/core"
)

// TestTokenExpiryAndRenewal: tokens expire after their TTL (the server's
// default when none is given), renewal extends them, and an expired token
// is refused with a message that says so.
func TestTokenExpiryAndRenewal(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := startServer(t, t.TempDir(), kms.Config{Now: now})
	ctx := context.Background()
	if _, err := e.admin.CreateTenant(ctx, "alice", api.RoleOwner); err != nil {
		t.Fatal(err)
	}
	def, err := e.admin.CreateToken(ctx, "alice", "default ttl")
	if err != nil {
		t.Fatal(err)
	}
	if d := def.Expires.Sub(def.Created); d != core.DefaultAPITokenTTL || def.TTL != "720h0m0s" {
		t.Fatalf("default token lifetime %s (ttl %q)", d, def.TTL)
	}
	tok, err := e.admin.IssueToken(ctx, api.CreateTokenRequest{Tenant: "alice", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.IssueToken(ctx, api.CreateTokenRequest{Tenant: "alice", TTL: "9000h"}); err == nil || !strings.Contains(err.Error(), "longer than this server allows") {
		t.Fatalf("ttl over the maximum: %v", err)
	}
	if _, err := e.admin.IssueToken(ctx, api.CreateTokenRequest{Tenant: "alice", TTL: "soon"}); err == nil || !strings.Contains(err.Error(), `ttl "soon"`) {
		t.Fatalf("bad ttl: %v", err)
	}
	alice := e.client(tok.Token)
	skew.Store(int64(59 * time.Minute))
	if _, err := alice.ListKeys(ctx); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	renewed, err := alice.RenewToken(ctx, "", "")
	if err != nil || !renewed.Expires.After(tok.Expires.Add(50*time.Minute)) {
		t.Fatalf("renew: %+v %v", renewed, err)
	}
	// The renewal is on the tenant's own trail.
	own, err := alice.AuditTenantList(ctx, "", 0, 0)
	if err != nil || len(own) == 0 {
		t.Fatalf("alice's trail: %v", err)
	}
	if last := own[len(own)-1]; last.Type != audit.TypeTokenRenew || last.Tenant != "alice" || last.Actor != tok.ID || !last.Chained() || !strings.Contains(last.Reason, "token "+tok.ID+" renewed until") {
		t.Fatalf("renewal entry %+v", last)
	}
	skew.Store(int64(90 * time.Minute))
	if _, err := alice.ListKeys(ctx); err != nil {
		t.Fatalf("renewed token refused: %v", err)
	}
	// Only an admin renews another token.
	if _, err := alice.RenewToken(ctx, def.ID, ""); err == nil || !strings.Contains(err.Error(), "only an admin") {
		t.Fatalf("owner renewing another token: %v", err)
	}
	skew.Store(int64(3 * time.Hour))
	_, err = alice.ListKeys(ctx)
	if err == nil || !strings.Contains(err.Error(), "token "+tok.ID+" expired at") {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := e.admin.RenewToken(ctx, tok.ID, ""); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("renewing an expired token: %v", err)
	}
	es, err := e.admin.AuditList(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var renews int
	for _, en := range es {
		if en.Type == audit.TypeTokenRenew && en.Tenant == "alice" && strings.Contains(en.Reason, tok.ID) {
			renews++
		}
	}
	if renews != 1 {
		t.Fatalf("%d token_renew entries for the token", renews)
	}
}

// TestKeyVersionLifecycle: a disabled version wraps, unwraps and releases
// nothing until enabled; a destroyed one never again, its material is gone
// from the database file and later backups, and its number is not reused.
// Every change is on the key's trail.
func TestKeyVersionLifecycle(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, aliceTok := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/k", simPolicy(measure, "")); err != nil {
		t.Fatal(err)
	}
	aad := []byte("header")
	dk1, err := alice.GenerateDataKey(ctx, "alice/k", aad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RotateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	item := []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: dk1.Wrapped, AAD: aad}}
	release := func() error {
		rel, err := runner.Release(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), item, 0)
		if err == nil {
			rel.Zero()
		}
		return err
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}

	k, err := alice.DisableKeyVersion(ctx, "alice/k", 1)
	if err != nil || k.Versions[0].State != api.KeyDisabled || k.Versions[1].State != api.KeyEnabled {
		t.Fatalf("disable: %+v %v", k, err)
	}
	if _, err := alice.Decrypt(ctx, "alice/k", dk1.Wrapped, aad); err == nil || !strings.Contains(err.Error(), "key_version_disabled") {
		t.Fatalf("decrypt under a disabled version: %v", err)
	}
	if err := release(); err == nil || denialRule(t, err) != api.RuleKeyDisabled {
		t.Fatalf("release under a disabled version: %v", err)
	}
	if _, err := alice.GenerateDataKey(ctx, "alice/k", aad); err != nil {
		t.Fatalf("the newest version still wraps: %v", err)
	}
	if _, err := alice.EnableKeyVersion(ctx, "alice/k", 1); err != nil {
		t.Fatal(err)
	}
	if got, err := alice.Decrypt(ctx, "alice/k", dk1.Wrapped, aad); err != nil || !bytes.Equal(got, dk1.DataKey) {
		t.Fatalf("decrypt after enable: %v", err)
	}
	// The newest version disabled: no new data keys, no output keys.
	if _, err := alice.DisableKeyVersion(ctx, "alice/k", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.GenerateDataKey(ctx, "alice/k", aad); err == nil || !strings.Contains(err.Error(), "newest version") {
		t.Fatalf("data key under a disabled newest version: %v", err)
	}
	// (with an input of alice's, so that alice may take the job's outputs)
	_, err = runner.ReleaseWithOutputs(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), item, []api.ReleaseOutputItem{{Ref: "alice/k", AAD: aad}}, 0)
	if err == nil || denialRule(t, err) != api.RuleKeyDisabled {
		t.Fatalf("output key under a disabled newest version: %v", err)
	}
	if _, err := alice.DestroyKeyVersion(ctx, "alice/k", 1); err == nil || !strings.Contains(err.Error(), "disable it first") {
		t.Fatalf("destroying an enabled version: %v", err)
	}

	// Destroy version 1: what the record held before is nowhere afterwards.
	dbPath := filepath.Join(dir, kms.DBFile)
	if _, err := alice.DisableKeyVersion(ctx, "alice/k", 1); err != nil {
		t.Fatal(err)
	}
	// The last record that held version 1's material, as stored (read
	// from a backup: the running server holds the file's lock).
	before := rawRows(t, backupTo(t, e.admin), "keys")
	if len(before) != 1 {
		t.Fatalf("%d key rows", len(before))
	}
	k, err = alice.DestroyKeyVersion(ctx, "alice/k", 1)
	if err != nil || k.Versions[0].State != api.KeyDestroyed {
		t.Fatalf("destroy: %+v %v", k, err)
	}
	file, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := e.admin.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	for _, old := range before {
		if bytes.Contains(file, old) || bytes.Contains(backup.Bytes(), old) {
			t.Fatal("the key record that held the destroyed material is still in the database file or a later backup")
		}
	}
	if _, err := alice.Decrypt(ctx, "alice/k", dk1.Wrapped, aad); err == nil || !strings.Contains(err.Error(), "key_version_destroyed") {
		t.Fatalf("decrypt under a destroyed version: %v", err)
	}
	if err := release(); err == nil || denialRule(t, err) != api.RuleKeyDestroyed {
		t.Fatalf("release under a destroyed version: %v", err)
	}
	if _, err := alice.EnableKeyVersion(ctx, "alice/k", 1); err == nil || !strings.Contains(err.Error(), "never be enabled again") {
		t.Fatalf("enabling a destroyed version: %v", err)
	}
	if k, err := alice.RotateKey(ctx, "alice/k"); err != nil || k.Version != 3 {
		t.Fatalf("rotate after destroy: %+v %v", k, err)
	}
	// Restarted, the state check passes (compaction kept the state whole).
	e.stop()
	e = startServer(t, dir, kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	alice = e.client(aliceTok.Token)
	es, err := alice.AuditList(ctx, "alice/k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, en := range es {
		switch en.Type {
		case audit.TypeKeyDisable, audit.TypeKeyEnable, audit.TypeKeyDestroy:
			trail = append(trail, fmt.Sprintf("%s v%d", en.Type, en.KeyVersion))
		}
	}
	if got := strings.Join(trail, ","); got != "key_disable v1,key_enable v1,key_disable v2,key_disable v1,key_destroy v1" {
		t.Fatalf("trail %s", got)
	}
	// The owner's trail export proves them, with the rest of the trail.
	exp, err := alice.AuditTrail(ctx, []string{"alice/k"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyTrail(bytes.NewReader(exp), audit.TrailOptions{PublicKey: e.AuditPublicKey(), Keys: []string{"alice/k"}, Tenant: "alice"}); err != nil {
		t.Fatalf("trail export: %v", err)
	}
	if n := strings.Count(string(exp), `"type":"key_destroy"`); n != 1 {
		t.Fatalf("the trail export holds %d key_destroy entries", n)
	}
}

// TestReleaseWrapFailureIsNotRecordedAsRelease: a TEE key that parses but
// cannot be sealed to (an X25519 low-order point) fails the wrap; the
// audit log records a denial with rule "wrap", never a release.
func TestReleaseWrapFailureIsNotRecordedAsRelease(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/k", simPolicy(measure, "")); err != nil {
		t.Fatal(err)
	}
	dk, err := alice.GenerateDataKey(ctx, "alice/k", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := runner.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub := make([]byte, 32) // parses as an X25519 key; HPKE cannot seal to it
	rd := api.ReportData(ch.Nonce, jobDigest(t, manifest), pub)
	ev, err := (&sim.Attester{Dir: simDir}).Evidence(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = runner.ReleaseRaw(ctx, &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: *ev, PublicKey: pub, Manifest: manifest,
		Keys: []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: dk.Wrapped}}})
	if err == nil || denialRule(t, err) != api.RuleWrap {
		t.Fatalf("release to an unusable TEE key: %v", err)
	}
	es, err := alice.AuditList(ctx, "alice/k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	for _, en := range es {
		if en.Type == audit.TypeRelease {
			t.Fatalf("a release was recorded: %+v", en)
		}
	}
	if last.Type != audit.TypeDenial || last.Rule != api.RuleWrap || !strings.Contains(last.Reason, "low order point") {
		t.Fatalf("last entry %+v", last)
	}
}

// TestStatus: ppml server status's source, sealed and unsealed.
func TestStatus(t *testing.T) {
	dir := t.TempDir()
	cfg := kms.Config{Seal: "shamir", Shares: 3, Threshold: 2}
	e := startServer(t, dir, cfg)
	shares := shareRE.FindAllString(e.Output(), -1)
	st, err := e.client("").Status(context.Background())
	if err != nil || st.Sealed || st.Seal != "shamir" || st.Threshold != 2 || st.SharesTotal != 3 || st.StateVersion == 0 || st.AuditSize == 0 || st.StoreID == "" || st.Version == "" {
		t.Fatalf("unsealed status %+v %v", st, err)
	}
	e.stop()
	e = startServer(t, dir, cfg)
	if _, err := e.client("").Unseal(context.Background(), shares[2]); err != nil {
		t.Fatal(err)
	}
	st, err = e.client("").Status(context.Background())
	if err != nil || !st.Sealed || st.Shares != 1 || st.Threshold != 2 || st.SharesTotal != 3 || st.StateVersion != 0 || st.AuditSize != 0 {
		t.Fatalf("sealed status %+v %v", st, err)
	}
}
