package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// The attacks of issue 12 on the key service's state at rest, each by
// someone who can write ppml.db but holds neither the root key nor the
// unseal shares: stop the server, edit the bbolt file with the backend
// alone (no root key), start again. Each start must be refused with a
// message that names what was changed, and print no admin token.

// rawEdit edits dir's database at the bbolt level.
func rawEdit(t *testing.T, dir string, fn func(tx store.Tx) error) {
	t.Helper()
	b, err := boltstore.Open(filepath.Join(dir, kms.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// rawRows reads every row of a bucket of a database file, as stored.
func rawRows(t *testing.T, path, bucket string) map[string][]byte {
	t.Helper()
	b, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := map[string][]byte{}
	b.View(func(tx store.Tx) error {
		return tx.Scan(bucket, nil, nil, func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out
}

// copyBackChanged puts back, from an older copy of the database, every
// row of bucket whose value changed since: single older values restored
// from a backup, as the attacker would.
func copyBackChanged(t *testing.T, dir, backup, bucket string) int {
	t.Helper()
	old := rawRows(t, backup, bucket)
	cur := rawRows(t, filepath.Join(dir, kms.DBFile), bucket)
	n := 0
	rawEdit(t, dir, func(tx store.Tx) error {
		for k, v := range old {
			if c, ok := cur[k]; ok && !bytes.Equal(c, v) {
				n++
				if err := tx.Put(bucket, []byte(k), v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return n
}

// startRefused starts a server on dir and expects it to refuse, printing
// no admin token; it returns the error's message.
func startRefused(t *testing.T, dir string, cfg kms.Config) string {
	t.Helper()
	var out bytes.Buffer
	cfg.DataDir, cfg.Out = dir, &out
	srv, err := kms.New(cfg)
	if err == nil {
		srv.Close()
		t.Fatalf("the server started on the tampered database (printed %q)", out.String())
	}
	if strings.Contains(out.String(), "ppml_") {
		t.Fatalf("the refused start printed a token: %q", out.String())
	}
	return err.Error()
}

func mustSay(t *testing.T, msg string, want ...string) {
	t.Helper()
	t.Logf("refused: %s", msg)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("the refusal\n  %s\ndoes not say %q", msg, w)
		}
	}
}

func backupTo(t *testing.T, admin *client.Client) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := admin.Backup(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Attack: delete the meta/bootstrapped marker so that the next start mints
// and prints a new admin token.
func TestAttackBootstrapMarkerDeleted(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	e.party("alice", api.RoleOwner)
	e.stop()
	rawEdit(t, dir, func(tx store.Tx) error { return tx.Delete("meta", []byte("bootstrapped")) })
	msg := startRefused(t, dir, kms.Config{})
	mustSay(t, msg, "refusing to start", "the service's signing keys, deployment CA and bootstrap marker (bucket meta)",
		"the bootstrap marker meta/bootstrapped was deleted")
}

// Attack: copy an API token's older record back from a backup, so that a
// revoked token works again (the audit log still verifies: it was not touched).
func TestAttackRevokedTokenRestored(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	_, bob := e.party("bob", api.RoleOwner)
	backup := backupTo(t, e.admin)
	if _, err := e.admin.RevokeToken(context.Background(), bob.ID); err != nil {
		t.Fatal(err)
	}
	e.stop()
	if n := copyBackChanged(t, dir, backup, "tokens"); n != 1 {
		t.Fatalf("%d token rows changed since the backup", n)
	}
	msg := startRefused(t, dir, kms.Config{})
	mustSay(t, msg, "API tokens (bucket tokens)", "values were replaced by other values of the same rows",
		"API token "+bob.ID+" of tenant bob is not revoked, but audit entry", "revoked it")
}

// Attack: copy a key's older record back from a backup, so that a stricter
// policy becomes the older, looser one.
func TestAttackPolicyRolledBack(t *testing.T) {
	_, _, measure := simSetup(t)
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	alice, _ := e.party("alice", api.RoleOwner)
	ctx := context.Background()
	if _, err := alice.CreateKey(ctx, "alice/sales"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/sales", simPolicy(measure, "")); err != nil { // any job
		t.Fatal(err)
	}
	backup := backupTo(t, e.admin)
	if _, err := alice.SetPolicy(ctx, "alice/sales", simPolicy(measure, fmt.Sprintf("jobs: [%x]\n", jobDigest(t, manifest)))); err != nil {
		t.Fatal(err)
	}
	e.stop()
	if n := copyBackChanged(t, dir, backup, "keys"); n != 1 {
		t.Fatalf("%d key rows changed since the backup", n)
	}
	msg := startRefused(t, dir, kms.Config{})
	mustSay(t, msg, "keys (versions, key material and policies) (bucket keys)",
		"the release policy of key alice/sales is not the one audit entry")
}

// Attack: delete rows of the per-key audit index so that `ppml audit list
// --key` silently hides a release.
func TestAttackAuditIndexRowDeleted(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/sales"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/sales", simPolicy(measure, "")); err != nil {
		t.Fatal(err)
	}
	dk, err := alice.GenerateDataKey(ctx, "alice/sales", []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := runner.Release(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{{Ref: "alice/sales", Wrapped: dk.Wrapped, AAD: []byte("aad")}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rel.Zero()
	es, err := alice.AuditList(ctx, "alice/sales", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var release *audit.Entry
	for i := range es {
		if es[i].Type == audit.TypeRelease {
			release = &es[i]
		}
	}
	if release == nil {
		t.Fatalf("no release on the key's trail: %+v", es)
	}
	e.stop()
	// The index rows are Blind(tenant, key) | entry index: the attacker
	// deletes the row(s) ending in the release's index.
	suffix := binary.BigEndian.AppendUint64(nil, release.Index)
	deleted := 0
	rawEdit(t, dir, func(tx store.Tx) error {
		var ks [][]byte
		tx.Keys("_audit/bykey", nil, nil, func(k []byte) error {
			if bytes.HasSuffix(k, suffix) {
				ks = append(ks, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range ks {
			deleted++
			if err := tx.Delete("_audit/bykey", k); err != nil {
				return err
			}
		}
		return nil
	})
	if deleted != 1 {
		t.Fatalf("deleted %d index rows", deleted)
	}
	msg := startRefused(t, dir, kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	mustSay(t, msg, "audit log per-key index (bucket _audit/bykey)", "rows were deleted",
		fmt.Sprintf("the index row of audit entry %d (release, key \"alice/sales\" of tenant \"alice\") was deleted", release.Index))
}

// Attack: delete a trail's chain state (so that its trail can no longer
// be exported, or restarts from nothing): refused at start, naming the
// trail.
func TestAttackTrailChainStateDeleted(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	alice, _ := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(context.Background(), "alice/sales"); err != nil {
		t.Fatal(err)
	}
	e.stop()
	n := 0
	rawEdit(t, dir, func(tx store.Tx) error {
		var ks [][]byte
		tx.Keys("_audit/chains", nil, nil, func(k []byte) error { ks = append(ks, bytes.Clone(k)); return nil })
		for _, k := range ks {
			n++
			if err := tx.Delete("_audit/chains", k); err != nil {
				return err
			}
		}
		return nil
	})
	if n < 3 { // admin, alice, alice/sales
		t.Fatalf("deleted %d chain states", n)
	}
	msg := startRefused(t, dir, kms.Config{})
	mustSay(t, msg, "audit log trail chain states (bucket _audit/chains)", "all",
		`the chain state of the trail of key "alice/sales" of tenant "alice" was deleted`, `the chain state of the trail of tenant "alice" was deleted`)
}

// Attack: delete a value (a key, and with it every file under it).
func TestAttackValueDeleted(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	alice, _ := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(context.Background(), "alice/sales"); err != nil {
		t.Fatal(err)
	}
	e.stop()
	rows := rawRows(t, filepath.Join(dir, kms.DBFile), "keys")
	rawEdit(t, dir, func(tx store.Tx) error {
		for k := range rows {
			return tx.Delete("keys", []byte(k))
		}
		return nil
	})
	msg := startRefused(t, dir, kms.Config{})
	mustSay(t, msg, "keys (versions, key material and policies) (bucket keys)", "all 1 rows were deleted",
		"key alice/sales (created in audit entry")
}

// Attack: swap two values (two tenants' token records).
func TestAttackValuesSwapped(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	_, a := e.party("alice", api.RoleOwner)
	_, b := e.party("bob", api.RoleRunner)
	e.stop()
	rows := rawRows(t, filepath.Join(dir, kms.DBFile), "tokens")
	rawEdit(t, dir, func(tx store.Tx) error {
		tx.Put("tokens", []byte(a.ID), rows[b.ID])
		return tx.Put("tokens", []byte(b.ID), rows[a.ID])
	})
	msg := startRefused(t, dir, kms.Config{})
	mustSay(t, msg, "API tokens (bucket tokens)",
		"tokens/"+a.ID+": value failed authentication", "tokens/"+b.ID+": value failed authentication")
}

// Attack: delete the database, or replace it with an empty one, so that
// the server starts over with a new admin token.
func TestAttackDatabaseReplaced(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	e.stop()
	db := filepath.Join(dir, kms.DBFile)
	os.Rename(db, db+".gone")
	mustSay(t, startRefused(t, dir, kms.Config{}), "ppml.db is missing, but seal.json says this data directory was initialised")
	b, err := boltstore.Open(db, nil) // an empty bbolt file
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	mustSay(t, startRefused(t, dir, kms.Config{}), "holds no state")
}

// A whole older copy of the database is a consistent state: the state
// witness refuses it at start (a hand-made "restore"), and ppml server
// restore makes the same restore an explicit, recorded action. Owners
// holding a later signed tree head see the fork — and the restore entry.
func TestRestoreIsRecorded(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	ctx := context.Background()
	alice, aliceTok := e.party("alice", api.RoleOwner)
	adminTok := e.AdminToken()
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	backup := backupTo(t, e.admin)
	if _, err := alice.CreateKey(ctx, "alice/later"); err != nil {
		t.Fatal(err)
	}
	pub, err := e.admin.AuditPublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := audit.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	later, err := alice.AuditHead(ctx, pk) // an owner keeps a tree head
	if err != nil {
		t.Fatal(err)
	}
	e.stop()

	// By hand: the backup copied over ppml.db.
	cur, _ := os.ReadFile(filepath.Join(dir, kms.DBFile))
	bk, _ := os.ReadFile(backup)
	os.WriteFile(filepath.Join(dir, kms.DBFile), bk, 0o600)
	mustSay(t, startRefused(t, dir, kms.Config{}), "older than the state version", "ppml server restore")

	// As an operator action.
	os.WriteFile(filepath.Join(dir, kms.DBFile), cur, 0o600)
	res, err := kms.Restore(kms.RestoreConfig{DataDir: dir, Backup: backup, Operator: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptAs == "" || res.Replaced.Version <= res.Backup.Version || res.BackupSHA256 == "" {
		t.Fatalf("restore result %+v", res)
	}
	if _, err := os.Stat(res.KeptAs); err != nil {
		t.Fatalf("the replaced database was not kept: %v", err)
	}
	e = startServer(t, dir, kms.Config{})
	admin := e.client(adminTok)
	es, err := admin.AuditList(ctx, "", res.BackupAuditSize, 10)
	if err != nil || len(es) != 3 { // the restore, then one on each tenant's trail (admin, alice)
		t.Fatalf("entries after the backup's: %+v %v", es, err)
	}
	r := es[0]
	if r.Type != audit.TypeRestore || r.Tenant != "" || r.Actor != "operator:carol" || !strings.Contains(r.Reason, "sha256 "+res.BackupSHA256) ||
		!strings.Contains(r.Reason, fmt.Sprintf("state version %d", res.Backup.Version)) || !strings.Contains(r.Reason, fmt.Sprintf("at state version %d", res.Replaced.Version)) {
		t.Fatalf("restore entry %+v", r)
	}
	for i, tenant := range []string{"admin", "alice"} {
		if x := es[1+i]; x.Type != audit.TypeRestore || x.Tenant != tenant || x.Actor != "operator:carol" || !x.Chained() ||
			!strings.Contains(x.Reason, fmt.Sprintf("audit entry %d", res.BackupAuditSize)) {
			t.Fatalf("restore entry on the trail of %s: %+v", tenant, x)
		}
	}
	// The owner's own trail shows the restore, and its export proves it.
	own, err := e.client(aliceTok.Token).AuditTenantList(ctx, "", 0, 1000)
	if err != nil || len(own) == 0 || own[len(own)-1].Type != audit.TypeRestore {
		t.Fatalf("alice's trail after the restore: %+v %v", own, err)
	}
	exp, err := e.client(aliceTok.Token).AuditTrail(ctx, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if vr, err := audit.VerifyTrail(bytes.NewReader(exp), audit.TrailOptions{PublicKey: pk, Tenant: "alice"}); err != nil || vr == nil {
		t.Fatalf("alice's trail export after the restore: %v", err)
	}
	ks, err := e.client(aliceTok.Token).ListKeys(ctx)
	if err != nil || len(ks) != 1 {
		t.Fatalf("keys after restore: %+v %v", ks, err)
	}
	// The owner's later head does not extend to the restored log.
	if _, err := e.client(aliceTok.Token).AuditConsistency(ctx, later, pk); err == nil {
		t.Fatal("the restored log is consistent with a head taken after the backup")
	}
	// Restoring onto a running server is refused.
	if _, err := kms.Restore(kms.RestoreConfig{DataDir: dir, Backup: backup, Operator: "carol"}); err == nil || !strings.Contains(err.Error(), "stop the key service first") {
		t.Fatalf("restore under a running server: %v", err)
	}
}
