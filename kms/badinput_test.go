package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/policy"
)

// rawPost sends body as is, to test what the typed client cannot send.
func rawPost(t *testing.T, e *testEnv, token, path string, body []byte) (int, api.Error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", e.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ae api.Error
	json.NewDecoder(resp.Body).Decode(&ae)
	return resp.StatusCode, ae
}

// prepared builds a release request by hand so that tests can break one part.
type prepared struct {
	req  api.ReleaseRequest
	priv hpke.PrivateKey
}

func prepare(t *testing.T, c *client.Client, simDir string, m []byte, items []api.ReleaseKeyItem, edit func(nonce, jd, pub []byte) [64]byte) *prepared {
	t.Helper()
	ctx := context.Background()
	ch, err := c.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kem, _ := hpke.NewKEM(api.KEMX25519)
	priv, _ := kem.GenerateKey()
	pub := priv.PublicKey().Bytes()
	jd := jobDigest(t, m)
	rd := api.ReportData(ch.Nonce, jd, pub)
	if edit != nil {
		rd = edit(ch.Nonce, jd, pub)
	}
	ev, err := (&sim.Attester{Dir: simDir}).Evidence(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	return &prepared{req: api.ReleaseRequest{Nonce: ch.Nonce, Evidence: *ev, PublicKey: pub, Manifest: m, Keys: items}, priv: priv}
}

func TestBadInputs(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	mv := &mutVerifier{inner: &sim.Verifier{TrustedKeys: []ed25519.PublicKey{simPub}}}
	var skew atomic.Int64
	e := startServer(t, t.TempDir(), kms.Config{Verifier: mv, Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	bob, _ := e.party("bob", api.RoleOwner)
	runner, runnerTok := e.party("runner1", api.RoleRunner)
	for _, k := range []string{"alice/a", "alice/nosim", "alice/job"} {
		if _, err := alice.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.SetPolicy(ctx, "alice/a", simPolicy(measure, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/job", simPolicy(measure, "jobs: ["+strings.Repeat("ab", 32)+"]\n")); err != nil {
		t.Fatal(err)
	}
	// A policy listing only sgx: simulated evidence must be refused.
	if _, err := alice.SetPolicy(ctx, "alice/nosim", []byte("version: 1\nplatforms:\n  sgx:\n    measurements: ["+strings.Repeat("00", 32)+"]\n")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	item := func(key string) api.ReleaseKeyItem {
		h := encrypt(t, filepath.Join(dir, strings.ReplaceAll(key, "/", "_")+".ppml"), &client.EnvelopeKey{Client: alice, Ref: e.ref(key)}, []byte("secret "+key))
		return client.ItemFromHeader(h)
	}
	itA, itNoSim, itJob := item("alice/a"), item("alice/nosim"), item("alice/job")
	att := &sim.Attester{Dir: simDir}

	// A good release works, so every failure below is due to what it breaks.
	if r, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{itA}, 0); err != nil {
		t.Fatal(err)
	} else {
		r.Zero()
	}

	expectDenied := func(t *testing.T, err error, rule string) {
		t.Helper()
		if err == nil {
			t.Fatal("release succeeded")
		}
		if got := denialRule(t, err); got != rule {
			t.Fatalf("denied by %q, want %q (%v)", got, rule, err)
		}
	}

	t.Run("malformed JSON", func(t *testing.T) {
		code, ae := rawPost(t, e, runnerTok.Token, "/v1/release", []byte(`{"nonce": "AAAA", "keys": [`))
		if code != 400 || ae.Code != "bad_request" || !strings.Contains(ae.Message, "malformed JSON") {
			t.Fatalf("%d %+v", code, ae)
		}
		code, ae = rawPost(t, e, runnerTok.Token, "/v1/release", []byte(`{"nonce":"AAAA","bogus":1}`))
		if code != 400 || !strings.Contains(ae.Message, "bogus") {
			t.Fatalf("unknown field: %d %+v", code, ae)
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		big := append([]byte(`{"nonce":"`), bytes.Repeat([]byte("A"), api.MaxBodySize+10)...)
		code, ae := rawPost(t, e, runnerTok.Token, "/v1/release", append(big, `"}`...))
		if code != http.StatusRequestEntityTooLarge || ae.Code != "too_large" {
			t.Fatalf("%d %+v", code, ae)
		}
	})
	t.Run("replayed nonce", func(t *testing.T) {
		p := prepare(t, runner, simDir, manifest, []api.ReleaseKeyItem{itA}, nil)
		if _, err := runner.ReleaseRaw(ctx, &p.req); err != nil {
			t.Fatal(err)
		}
		_, err := runner.ReleaseRaw(ctx, &p.req)
		expectDenied(t, err, api.RuleNonce)
	})
	t.Run("expired nonce", func(t *testing.T) {
		p := prepare(t, runner, simDir, manifest, []api.ReleaseKeyItem{itA}, nil)
		skew.Store(int64(61 * time.Second))
		_, err := runner.ReleaseRaw(ctx, &p.req)
		skew.Store(0)
		expectDenied(t, err, api.RuleNonce)
		if !strings.Contains(err.Error(), "expired") {
			t.Fatal(err)
		}
	})
	t.Run("evidence for another nonce", func(t *testing.T) {
		p := prepare(t, runner, simDir, manifest, []api.ReleaseKeyItem{itA}, nil)
		ch, err := runner.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.req.Nonce = ch.Nonce
		_, err = runner.ReleaseRaw(ctx, &p.req)
		expectDenied(t, err, api.RuleReportData)
	})
	t.Run("report_data mismatch", func(t *testing.T) {
		p := prepare(t, runner, simDir, manifest, []api.ReleaseKeyItem{itA}, func(n, jd, pub []byte) [64]byte {
			return api.ReportData(n, jd, append([]byte{1}, pub[1:]...)) // binds another public key
		})
		_, err := runner.ReleaseRaw(ctx, &p.req)
		expectDenied(t, err, api.RuleReportData)
	})
	t.Run("wrong tenant", func(t *testing.T) {
		// Another tenant's key answers exactly like a key that does not
		// exist: bob learns nothing about which names alice uses.
		sameAsUnknown := func(what string, call func(name string) error) {
			t.Helper()
			errA, errN := call("alice/a"), call("nobody.x")
			var a, n *client.StatusError
			if !errors.As(errA, &a) || !errors.As(errN, &n) {
				t.Fatalf("%s: bob got %v for alice's key and %v for an unknown one", what, errA, errN)
			}
			if a.Status != http.StatusNotFound || a.Status != n.Status || a.Err.Code != n.Err.Code ||
				strings.ReplaceAll(a.Err.Message, "alice/a", "K") != strings.ReplaceAll(n.Err.Message, "nobody.x", "K") {
				t.Fatalf("%s: alice's key answers %d %+v, an unknown key %d %+v", what, a.Status, a.Err, n.Status, n.Err)
			}
		}
		sameAsUnknown("datakey", func(k string) error { _, err := bob.GenerateDataKey(ctx, k, nil); return err })
		sameAsUnknown("decrypt", func(k string) error { _, err := bob.Decrypt(ctx, k, itA.Wrapped, itA.AAD); return err })
		sameAsUnknown("set policy", func(k string) error { _, err := bob.SetPolicy(ctx, k, simPolicy(measure, "")); return err })
		sameAsUnknown("get policy", func(k string) error { _, err := bob.GetPolicy(ctx, k); return err })
		sameAsUnknown("rotate", func(k string) error { _, err := bob.RotateKey(ctx, k); return err })
		sameAsUnknown("audit", func(k string) error { _, err := bob.AuditList(ctx, k, 0, 0); return err })
		if _, err := runner.CreateKey(ctx, "runner.key"); err == nil || !strings.Contains(err.Error(), "role owner") {
			t.Fatalf("runner created a key: %v", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		it := itA
		it.Ref = "kms://127.0.0.1/nobody.key"
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{it}, 0)
		expectDenied(t, err, api.RuleUnknownKey)
	})
	t.Run("revoked token", func(t *testing.T) {
		c, tok := e.party("runner2", api.RoleRunner)
		if _, err := c.Challenge(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		_, err := c.Challenge(ctx)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Status != 401 || !strings.Contains(se.Err.Message, "revoked") {
			t.Fatalf("revoked token: %v", err)
		}
	})
	t.Run("debug enclave", func(t *testing.T) {
		mv.set(func(c *attest.Claims) { c.Debug = true })
		defer mv.set(nil)
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{itA}, 0)
		expectDenied(t, err, policy.RuleDebug)
	})
	t.Run("OutOfDate TCB", func(t *testing.T) {
		mv.set(func(c *attest.Claims) { c.TCBStatus = policy.TCBOutOfDate })
		defer mv.set(nil)
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{itA}, 0)
		expectDenied(t, err, policy.RuleTCBStatus)
	})
	t.Run("sim not listed", func(t *testing.T) {
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{itNoSim}, 0)
		expectDenied(t, err, policy.RulePlatform)
	})
	t.Run("sim platform key not trusted", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "othersim")
		_, err := runner.Release(ctx, &sim.Attester{Dir: other}, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{itA}, 0)
		expectDenied(t, err, "attestation:sim_platform_key")
	})
	t.Run("job digest not in policy", func(t *testing.T) {
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{itJob}, 0)
		expectDenied(t, err, policy.RuleJob)
	})
	t.Run("tampered wrapped key", func(t *testing.T) {
		it := itA
		it.AAD = append([]byte("x"), it.AAD...)
		_, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{it}, 0)
		expectDenied(t, err, "wrapped_key")
	})

	// Every release attempt above that got past the nonce and the evidence
	// is on the key's audit trail with its rule; the ones refused before
	// are summed on the runner's tenant trail.
	entries, err := alice.AuditList(ctx, "alice/a", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, en := range entries {
		if en.Type == "denial" {
			rules[en.Rule] = true
		}
	}
	for _, r := range []string{policy.RuleDebug, policy.RuleTCBStatus, "wrapped_key"} {
		if !rules[r] {
			t.Errorf("no denial with rule %s on alice/a's trail (have %v)", r, rules)
		}
	}
	for _, r := range []string{api.RuleNonce, api.RuleReportData, "attestation:sim_platform_key"} {
		if rules[r] {
			t.Errorf("a %s refusal on alice/a's trail", r)
		}
	}
	if err := e.Core().FlushRefusals(); err != nil {
		t.Fatal(err)
	}
	rs, err := e.admin.AuditTenantList(ctx, "runner1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{} // rule -> refused requests, over the summaries
	for _, en := range rs {
		if en.Type == audit.TypeRefusals && en.Actor == runnerTok.ID {
			_, list, _ := strings.Cut(en.Reason, ": ")
			for _, part := range strings.Split(list, ", ") {
				var rule string
				var n int
				fmt.Sscanf(part, "%s %d", &rule, &n)
				counts[rule] += n
			}
		}
	}
	for r, n := range map[string]int{api.RuleNonce: 2, api.RuleReportData: 2, "attestation:sim_platform_key": 1} {
		if counts[r] != n {
			t.Errorf("the runner's refusal summaries count %d %s refusals, want %d (%v)", counts[r], r, n, counts)
		}
	}
	_ = fmt.Sprint
}

// TestHugeManifestDenialIsAudited sends a manifest close to the body limit
// that does not parse: the refusal is summed on the runner's trail (its reason bounded).
func TestHugeManifestDenialIsAudited(t *testing.T) {
	e := startServer(t, t.TempDir(), kms.Config{})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	ch, err := runner.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := []byte("version: 1\nname: " + strings.Repeat("x", 600<<10) + "\n")
	_, err = runner.ReleaseRaw(ctx, &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: attest.Evidence{Platform: "sim", Data: []byte{1}},
		PublicKey: make([]byte, 32), Manifest: big, Keys: []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: []byte{1}}}})
	if got := denialRule(t, err); got != api.RuleManifest {
		t.Fatalf("denied by %q: %v", got, err)
	}
	// Refused before any key was looked at: no entry on the key's trail,
	// a summary on the runner's tenant trail.
	es, err := alice.AuditList(ctx, "alice/k", 0, 0)
	if err != nil || es[len(es)-1].Type != audit.TypeKeyCreate {
		t.Fatalf("%v %v", es, err)
	}
	if err := e.Core().FlushRefusals(); err != nil {
		t.Fatal(err)
	}
	rs, err := e.admin.AuditTenantList(ctx, "runner", 0, 0)
	if err != nil || rs[len(rs)-1].Type != audit.TypeRefusals || rs[len(rs)-1].Rule != api.RuleManifest || len(rs[len(rs)-1].Reason) > 2048 {
		t.Fatalf("%v %v", rs, err)
	}
}
