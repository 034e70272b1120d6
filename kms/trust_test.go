package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

// trailOf verifies the trail export of keys against the server's key and
// the trusted heads, returning the problems (nil: it verified).
func trailOf(t *testing.T, c *client.Client, pub any, keys []string, trusted ...*audit.TreeHead) (*audit.Result, []audit.Problem) {
	t.Helper()
	var from []uint64
	for _, h := range trusted {
		from = append(from, h.Size)
	}
	data, err := c.AuditTrail(context.Background(), keys, "", from)
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.VerifyTrail(bytes.NewReader(data), audit.TrailOptions{PublicKey: pub, Trusted: trusted, Keys: keys})
	var te *audit.TamperError
	if errors.As(err, &te) {
		return res, te.Problems
	}
	if err != nil {
		t.Fatal(err)
	}
	return res, nil
}

// Attack: roll the whole key service back to a backup (every value, index
// and the log together, and the state witness of that time, which the
// server alone cannot tell from a fresh state), then keep serving. An owner holding a later tree head proves it:
// the log is shorter than the head; and once the server has appended past
// it, the log no longer extends it (a fork). Attack: serve a trail without
// its newest entries; the signed chain head exposes it.
func TestRollbackAndForkDetectedByOwner(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, kms.Config{})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(ctx, "alice/sales"); err != nil {
		t.Fatal(err)
	}
	pub := e.AuditPublicKey()
	var backup bytes.Buffer
	if _, err := e.admin.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	// The attacker keeps the state witness of that time too, so that the
	// server cannot tell the rolled-back state from a current one.
	witness, err := os.ReadFile(filepath.Join(dir, kms.WitnessFile))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := alice.RotateKey(ctx, "alice/sales"); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := alice.AuditHead(ctx, pub) // the owner keeps today's head
	if err != nil {
		t.Fatal(err)
	}
	res, ps := trailOf(t, alice, pub, []string{"alice/sales"}, kept)
	if ps != nil || len(res.Trails) != 2 || res.Trails[1].Count != 4 {
		t.Fatalf("honest trail: %v %+v", ps, res)
	}

	// The server drops the key's newest entries from the trail it serves.
	data, _ := alice.AuditTrail(ctx, []string{"alice/sales"}, "", nil)
	ls := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	cut := strings.Join(ls[:len(ls)-2], "\n") + "\n"
	_, err = audit.VerifyTrail(strings.NewReader(cut), audit.TrailOptions{PublicKey: pub, Keys: []string{"alice/sales"}})
	var te *audit.TamperError
	if !errors.As(err, &te) || te.Problems[0].Kind != audit.ProblemTruncated || !strings.Contains(te.Problems[0].Detail, "newest entries about key alice/sales") {
		t.Fatalf("trail without its newest entries: %v", err)
	}

	// The operator restores the backup (seal.json and root key unchanged).
	e.stop()
	if err := os.WriteFile(filepath.Join(dir, kms.DBFile), backup.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, kms.WitnessFile), witness, 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServer(t, dir, kms.Config{})
	alice = r.client(e.tokens["alice"])
	_, ps = trailOf(t, alice, pub, []string{"alice/sales"}, kept)
	if len(ps) == 0 || ps[0].Kind != audit.ProblemInconsistentHead || !strings.Contains(ps[0].Detail, "shorter than one you trusted") {
		t.Fatalf("rolled back: %v", ps)
	}
	for range 8 {
		if _, err := alice.RotateKey(ctx, "alice/sales"); err != nil {
			t.Fatal(err)
		}
	}
	now, _ := alice.AuditHead(ctx, pub)
	if now.Size <= kept.Size {
		t.Fatalf("the restored log has %d entries, want more than %d", now.Size, kept.Size)
	}
	_, ps = trailOf(t, alice, pub, []string{"alice/sales"}, kept)
	if len(ps) == 0 || ps[0].Kind != audit.ProblemInconsistentHead || !strings.Contains(ps[0].Detail, "forked") {
		t.Fatalf("forked: %v", ps)
	}
	// The admin's whole export shows the same.
	full, _ := r.client(e.AdminToken()).AuditExport(ctx)
	if _, err := audit.VerifyExport(bytes.NewReader(full), audit.VerifyOptions{PublicKey: pub, Trusted: []*audit.TreeHead{kept}}); err == nil {
		t.Fatal("the forked log verifies against the kept head")
	}
}

func metric(t *testing.T, e *testEnv, name string) string {
	t.Helper()
	_, body := get(t, e.url+"/metrics")
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Attack: flood the log with release requests that carry no valid nonce
// or evidence, naming 64 keys each. They cost no entry each: they are
// counted and summed into one entry per token and interval; an honest
// release still works and is audited per key.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, rtok := e.party("runner1", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/k", simPolicy(measure, "")); err != nil {
		t.Fatal(err)
	}
	pub := e.AuditPublicKey()
	before, _ := e.admin.AuditHead(ctx, pub)
	var keys []api.ReleaseKeyItem
	for i := range api.MaxReleaseKeys {
		keys = append(keys, api.ReleaseKeyItem{Ref: fmt.Sprintf("alice/k%d", i), Wrapped: []byte{1}})
	}
	body, _ := json.Marshal(api.ReleaseRequest{Nonce: bytes.Repeat([]byte{7}, api.NonceSize), Evidence: simEvidence(t, simDir), PublicKey: make([]byte, 32), Manifest: manifest, Keys: keys})
	const n = 300
	for range n {
		if code, ae := rawPost(t, e, rtok.Token, "/v1/release", body); code != http.StatusForbidden || ae.Denials[0].Rule != api.RuleNonce {
			t.Fatalf("%d %+v", code, ae)
		}
	}
	mid, _ := e.admin.AuditHead(ctx, pub)
	if mid.Size != before.Size {
		t.Fatalf("%d refused requests appended %d entries", n, mid.Size-before.Size)
	}
	if m := metric(t, e, "ppml_kms_refusals_total"); !strings.Contains(m, `ppml_kms_refusals_total{rule="nonce"} 300`) {
		t.Fatalf("metrics: %s", m)
	}
	if err := e.Core().FlushRefusals(); err != nil {
		t.Fatal(err)
	}
	after, _ := e.admin.AuditHead(ctx, pub)
	if after.Size != before.Size+1 {
		t.Fatalf("one summary expected, %d entries appended", after.Size-before.Size)
	}
	rs, _ := e.admin.AuditTenantList(ctx, "runner1", 0, 0)
	last := rs[len(rs)-1]
	if last.Type != audit.TypeRefusals || last.Actor != rtok.ID || !strings.HasPrefix(last.Reason, "300 requests naming 19200 keys refused") {
		t.Fatalf("summary %+v", last)
	}
	// An honest release is unaffected and audited on the key's trail.
	d, err := alice.GenerateDataKey(ctx, "alice/k", []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.Release(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: d.Wrapped, AAD: []byte("aad")}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Zero()
	es, _ := alice.AuditList(ctx, "alice/k", 0, 0)
	if es[len(es)-1].Type != audit.TypeRelease {
		t.Fatalf("the release is not on the key's trail: %+v", es[len(es)-1])
	}
}

// simEvidence is valid simulated evidence, bound to nothing in particular.
func simEvidence(t *testing.T, simDir string) attest.Evidence {
	e, err := (&sim.Attester{Dir: simDir}).Evidence(context.Background(), [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	return *e
}

// Attack: hammer the unauthenticated routes, or guess tokens, from one
// address. The address is limited (429 naming it) and counted.
func TestAddressRateLimit(t *testing.T) {
	// A bucket of 10 that refills one request per 1000 s: however slow the
	// machine, the 11th request is over the limit.
	e := startServer(t, t.TempDir(), kms.Config{AddrRateLimit: 0.001, AddrRateBurst: 10})
	var limited int
	for range 30 {
		if code, _ := get(t, e.url+"/v1/sys/status"); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 20 {
		t.Fatalf("%d of 30 status requests were limited, want 20", limited)
	}
	for range 5 {
		code, ae := rawPost(t, e, "ppml_0000000000000000_guess", "/v1/attest/challenge", nil)
		if code != http.StatusTooManyRequests || !strings.Contains(ae.Message, "this address") {
			t.Fatalf("token guessing from a limited address: %d %+v", code, ae)
		}
	}
	if m := metric(t, e, "ppml_kms_rate_limited_total"); !strings.Contains(m, `by="address"`) {
		t.Fatalf("metrics: %s", m)
	}
}

// Attack: a tenant creates keys named after another tenant's, to receive
// its data or learn its names. New key names live in the creator's
// namespace; the refusal is the same whether the name is used or not.
func TestKeyNamesAreTenantScoped(t *testing.T) {
	e := startServer(t, t.TempDir(), kms.Config{})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	bob, _ := e.party("bob", api.RoleOwner)
	if _, err := alice.CreateKey(ctx, "alice/results"); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, name := range []string{"alice/results", "alice/unused", "alice.results"} {
		_, err := bob.CreateKey(ctx, name)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusBadRequest || se.Err.Code != "key_namespace" || !strings.Contains(se.Err.Message, "name new keys bob/KEY") {
			t.Fatalf("bob creates %s: %v", name, err)
		}
		msg := strings.ReplaceAll(se.Err.Message, name, "NAME")
		msgs = append(msgs, strings.ReplaceAll(msg, name[strings.LastIndexAny(name, "/.")+1:], "LAST"))
	}
	if msgs[0] != msgs[1] {
		t.Fatalf("the answer tells a used name from an unused one:\n%s\n%s", msgs[0], msgs[1])
	}
	if _, err := bob.CreateKey(ctx, "bob/results"); err != nil {
		t.Fatal(err)
	}
	// Probing another tenant's key by name is counted on the prober's trail.
	if _, err := bob.GetPolicy(ctx, "alice/results"); err == nil {
		t.Fatal("bob read alice's policy")
	}
	if err := e.Core().FlushRefusals(); err != nil {
		t.Fatal(err)
	}
	bs, _ := bob.AuditList(ctx, "", 0, 0)
	if l := bs[len(bs)-1]; l.Type != audit.TypeRefusals || l.Rule != "foreign_key" {
		t.Fatalf("bob's trail ends with %+v", l)
	}
}

// Attack: a runner with valid evidence asks for names to learn which keys
// exist. A key without a release policy answers like one that does not
// exist; its owner's trail says which it was.
func TestReleaseAnswersRevealNothing(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner1", api.RoleRunner)
	for _, k := range []string{"alice/open", "alice/nopolicy"} {
		if _, err := alice.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	alice.SetPolicy(ctx, "alice/open", simPolicy(measure, ""))
	d, _ := alice.GenerateDataKey(ctx, "alice/open", []byte("a"))
	att := &sim.Attester{Dir: simDir}
	ask := func(ref string) api.Denial {
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{{Ref: ref, Wrapped: d.Wrapped, AAD: []byte("a")}}, 0)
		var se *client.StatusError
		if !errors.As(err, &se) || len(se.Err.Denials) != 1 {
			t.Fatalf("%s: %v", ref, err)
		}
		dn := se.Err.Denials[0]
		dn.Reason = strings.ReplaceAll(dn.Reason, ref, "NAME")
		return dn
	}
	np, gone := ask("alice/nopolicy"), ask("alice/gone")
	if np.Rule != gone.Rule || np.Reason != gone.Reason || np.Rule != api.RuleUnknownKey {
		t.Fatalf("no policy answers %+v, unknown %+v", np, gone)
	}
	es, _ := alice.AuditList(ctx, "alice/nopolicy", 0, 0)
	if l := es[len(es)-1]; l.Type != audit.TypeDenial || l.Rule != api.RuleNoPolicy {
		t.Fatalf("the owner's trail: %+v", l)
	}
}

// Attack: a job writes its results under another tenant's key (one whose
// policy admits any job), passing them off as that tenant's data. An
// output key must belong to a tenant that provides an input, or whose
// policy names the job.
func TestOutputKeyOfAnotherTenant(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	bob, _ := e.party("bob", api.RoleOwner)
	runner, _ := e.party("runner1", api.RoleRunner)
	alice.CreateKey(ctx, "alice/in")
	alice.SetPolicy(ctx, "alice/in", simPolicy(measure, ""))
	bob.CreateKey(ctx, "bob/out")
	bob.SetPolicy(ctx, "bob/out", simPolicy(measure, ""))
	h := encrypt(t, filepath.Join(t.TempDir(), "in.ppml"), &client.EnvelopeKey{Client: alice, Ref: e.ref("alice/in")}, []byte("x"))
	in := client.ItemFromHeader(h)
	att := &sim.Attester{Dir: simDir}
	out := []api.ReleaseOutputItem{{Ref: e.ref("bob/out").String(), AAD: randAAD(t)}}
	_, err := runner.ReleaseWithOutputs(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{in}, out, 0)
	if got := denialRule(t, err); got != api.RuleOutputOwner {
		t.Fatalf("alice's job wrote under bob's key: %v", err)
	}
	es, _ := bob.AuditList(ctx, "bob/out", 0, 0)
	if l := es[len(es)-1]; l.Type != audit.TypeDenial || l.Rule != api.RuleOutputOwner {
		t.Fatalf("bob's trail: %+v", l)
	}
	// Bob names the job in his key's policy: now he takes its outputs.
	bob.SetPolicy(ctx, "bob/out", simPolicy(measure, fmt.Sprintf("jobs: [%x]\n", jobDigest(t, manifest))))
	r, err := runner.ReleaseWithOutputs(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{in}, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Zero()
}

// Attack: an administrator acts as an owner without the owner seeing it
// (an owner token issued for the tenant, then a policy change and an
// unwrap with it; a listing of its keys; a backup). All of it is on the
// owner's trail, which the owner exports and verifies complete.
func TestAdminIsVisibleOnTheTenantTrail(t *testing.T) {
	e := startServer(t, t.TempDir(), kms.Config{})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	alice.CreateKey(ctx, "alice/k")
	d, _ := alice.GenerateDataKey(ctx, "alice/k", []byte("a"))
	tok, err := e.admin.CreateToken(ctx, "alice", "quietly")
	if err != nil {
		t.Fatal(err)
	}
	sneaky := e.client(tok.Token)
	if _, err := sneaky.SetPolicy(ctx, "alice/k", []byte("version: 1\nplatforms: {}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := sneaky.Decrypt(ctx, "alice/k", d.Wrapped, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.ListKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Backup(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	pub := e.AuditPublicKey()
	res, ps := trailOf(t, alice, pub, []string{"alice/k"})
	if ps != nil {
		t.Fatal(ps)
	}
	data, _ := alice.AuditTrail(ctx, []string{"alice/k"}, "", nil)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		en, err := audit.DecodeEntry([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case en.Type == audit.TypeTokenIssue && strings.Contains(en.Reason, "token "+tok.ID) && strings.Contains(en.Reason, "issued by administrator token"):
			seen["token issued by the admin"] = true
		case en.Actor == tok.ID && en.Type == audit.TypePolicySet:
			seen["policy set with it"] = true
		case en.Actor == tok.ID && en.Type == audit.TypeDecrypt:
			seen["decrypt with it"] = true
		case en.Type == audit.TypeKeyList && en.Tenant == "alice":
			seen["keys listed"] = true
		case en.Type == audit.TypeBackup && en.Tenant == "alice":
			seen["backup"] = true
		}
	}
	if len(seen) != 5 {
		t.Fatalf("the owner's verified trail (%d trails) shows only %v", len(res.Trails), seen)
	}
}

// Attack: a runner puts control characters, terminal escapes and HTML
// special characters into a key reference. The entry holds no raw
// reference (it is quoted and cut short), and a receipt of it verifies
// (the answer's JSON encoder no longer rewrites <, > and &).
func TestHostileReferencesStoredSafely(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner1", api.RoleRunner)
	alice.CreateKey(ctx, "alice/k")
	alice.SetPolicy(ctx, "alice/k", simPolicy(measure, ""))
	d, _ := alice.GenerateDataKey(ctx, "alice/k", []byte("a"))
	hostile := "kms://h/\x1b]0;pwned\x07\x1b[2J\nrelease alice/k <b>&amp;" + strings.Repeat("x", 100)
	_, err := runner.Release(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{{Ref: hostile, Wrapped: d.Wrapped, AAD: []byte("a")}}, 0)
	var se *client.StatusError
	if !errors.As(err, &se) || strings.ContainsAny(se.Err.Message, "\x1b\n\x07") || strings.ContainsAny(se.Err.Denials[0].Key, "\x1b\n\x07") {
		t.Fatalf("the answer echoes the raw reference: %q", err)
	}
	full, _ := e.admin.AuditExport(ctx)
	ls := strings.Split(strings.TrimSpace(string(full)), "\n")
	raw := ls[len(ls)-1]
	en, err := audit.DecodeEntry([]byte(raw))
	if err != nil || en.Type != audit.TypeDenial || en.Key != "" || strings.ContainsAny(en.Reason, "\x1b\n\x07") || !strings.Contains(en.Reason, `\x1b]0;pwned`) {
		t.Fatalf("stored %+v %v", en, err)
	}
	if !strings.Contains(raw, "<b>&amp;") || strings.Contains(raw, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") {
		t.Fatalf("entry without the HTML characters: %s", raw)
	}
	got, _, err := e.admin.AuditReceipt(ctx, en.Index, e.AuditPublicKey())
	if err != nil || got.Reason != en.Reason {
		t.Fatalf("receipt of an entry with <, > and &: %v", err)
	}
}
