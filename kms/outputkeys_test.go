package kms_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"errors"
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
)

func randAAD(t *testing.T) []byte {
	b := make([]byte, 63)
	rand.Read(b)
	return b
}

// TestReleaseOutputKeys: in one attested release, a TEE gets the input
// keys and a fresh data key per output, wrapped under the output key's
// newest version with the header fixed part it sent; the owner unwraps the
// wrapped form with that header; output keys are policy-gated, audited as
// output_key, and granted all or nothing together with the input keys.
func TestReleaseOutputKeys(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}})
	ctx := context.Background()
	alice, aliceTok := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner1", api.RoleRunner)
	for _, k := range []string{"alice/in", "alice/out", "alice/nopolicy"} {
		if _, err := alice.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// The output key's policy names the job: releases of outputs alone
	// (a job that reads nothing encrypted) need it.
	if _, err := alice.SetPolicy(ctx, "alice/in", simPolicy(measure, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/out", simPolicy(measure, fmt.Sprintf("jobs: [%x]\n", jobDigest(t, manifest)))); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RotateKey(ctx, "alice/out"); err != nil {
		t.Fatal(err)
	}
	h := encrypt(t, filepath.Join(t.TempDir(), "in.ppml"), &client.EnvelopeKey{Client: alice, Ref: e.ref("alice/in")}, []byte("input"))
	in := client.ItemFromHeader(h)
	att := &sim.Attester{Dir: simDir}
	outRef := e.ref("alice/out").String()
	aad1, aad2 := randAAD(t), randAAD(t)
	outs := []api.ReleaseOutputItem{{Ref: outRef, AAD: aad1}, {Ref: outRef, AAD: aad2}}

	rel, err := runner.ReleaseWithOutputs(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{in}, outs, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Zero()
	if len(rel.Keys) != 1 || len(rel.Outputs) != 2 {
		t.Fatalf("got %d keys and %d outputs", len(rel.Keys), len(rel.Outputs))
	}
	var dks [][]byte
	for i, o := range rel.Outputs {
		aad := outs[i].AAD
		if _, _, _, err := o.NewDataKey(randAAD(t)); err == nil {
			t.Fatal("an output key wrapped for one header served another")
		}
		dk, wrapped, ref, err := o.NewDataKey(aad)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Name != "alice/out" || ref.Version != 2 || ref.Host != e.host || ref.Port != e.port {
			t.Fatalf("output ref %s, want alice.out@2 on the server", ref)
		}
		if _, _, _, err := o.NewDataKey(aad); err == nil {
			t.Fatal("an output key handed its data key out twice")
		}
		// The owner unwraps it with the same header, as ppml decrypt does.
		got, err := alice.Decrypt(ctx, "alice/out", wrapped, aad)
		if err != nil || !bytes.Equal(got, dk) || len(dk) != 32 {
			t.Fatalf("owner unwraps output key %d: %v", i, err)
		}
		if _, err := alice.Decrypt(ctx, "alice/out", wrapped, outs[1-i].AAD); err == nil {
			t.Fatal("the wrapped output key unwrapped with another header")
		}
		dks = append(dks, dk)
	}
	if bytes.Equal(dks[0], dks[1]) {
		t.Fatal("two outputs got the same data key")
	}
	entries, err := alice.AuditList(ctx, "alice/out", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, en := range entries {
		if en.Type == audit.TypeOutputKey {
			n++
			if en.Decision != "allow" || en.KeyVersion != 2 || en.Tenant != "alice" || !bytes.Equal(en.Measurement, measure[:]) || !bytes.Equal(en.JobDigest, jobDigest(t, manifest)) {
				t.Fatalf("output_key entry %+v", en)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d output_key entries, want 2", n)
	}

	// The sealed keys are bound to their position: output 1's sealed key
	// does not open as output 0's.
	p := prepare(t, runner, simDir, manifest, nil, nil)
	p.req.Outputs = outs
	resp, err := runner.ReleaseRaw(ctx, &p.req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hpke.Open(p.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), api.OutputInfo(p.req.Nonce, 0, outRef), resp.Outputs[1].Sealed); err == nil {
		t.Fatal("output 1's key opened as output 0's")
	}
	if dk, err := hpke.Open(p.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), api.OutputInfo(p.req.Nonce, 1, outRef), resp.Outputs[1].Sealed); err != nil || len(dk) != 32 {
		t.Fatalf("output 1's key: %v", err)
	}

	countReleases := func(key string) int {
		es, err := alice.AuditList(ctx, key, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, en := range es {
			if en.Type == "release" || en.Type == audit.TypeOutputKey {
				c++
			}
		}
		return c
	}
	inBefore := countReleases("alice/in")
	denials := []struct {
		name, ref, rule string
	}{
		{"no policy", e.ref("alice/nopolicy").String(), api.RuleUnknownKey}, // answers as unknown; the trail says no_policy
		{"unknown key", e.ref("alice/gone").String(), api.RuleUnknownKey},
		{"old version", outRef + "@1", "key_version"},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			_, err := runner.ReleaseWithOutputs(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{in}, []api.ReleaseOutputItem{{Ref: d.ref, AAD: aad1}}, 0)
			var se *client.StatusError
			if !errors.As(err, &se) || se.Status != 403 || len(se.Err.Denials) != 1 || se.Err.Denials[0].Rule != d.rule || se.Err.Denials[0].Key != d.ref ||
				!strings.HasPrefix(se.Err.Denials[0].Reason, "output key: ") {
				t.Fatalf("want one %s denial of %s, got %v", d.rule, d.ref, err)
			}
		})
	}
	if got := countReleases("alice/in"); got != inBefore {
		t.Fatalf("the input key was released %d times with a denied output key", got-inBefore)
	}

	// Outputs only, no input key: a job that reads nothing encrypted.
	rel2, err := runner.ReleaseWithOutputs(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), nil, outs[:1], 0)
	if err != nil {
		t.Fatal(err)
	}
	rel2.Zero()
	if _, _, _, err := rel2.Outputs[0].NewDataKey(aad1); err == nil {
		t.Fatal("a zeroed output key handed out a key")
	}
	// An owner token cannot ask for output keys: releases are for runners.
	if _, err := e.client(aliceTok.Token).ReleaseWithOutputs(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), nil, outs[:1], 0); err == nil {
		t.Fatal("an owner token got output keys")
	}
}

func TestGenerateDataKeyAudited(t *testing.T) {
	e := startServer(t, t.TempDir(), kms.Config{})
	ctx := context.Background()
	alice, tok := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	d, err := alice.GenerateDataKey(ctx, "alice/k", []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := alice.AuditList(ctx, "alice/k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if last.Type != audit.TypeDataKey || last.Tenant != "alice" || last.Actor != tok.ID || last.Key != "alice/k" || last.KeyVersion != d.Version || last.Decision != "allow" {
		t.Fatalf("data key entry %+v", last)
	}
}

func TestBootstrapTokenCallback(t *testing.T) {
	dir := t.TempDir()
	var got []string
	var out bytes.Buffer
	cfg := kms.Config{DataDir: dir, Out: &out, BootstrapToken: func(tok string) { got = append(got, tok) }}
	srv, err := kms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if len(got) != 1 || !tokenRE.MatchString(got[0]) || !strings.Contains(out.String(), got[0]) {
		t.Fatalf("callback got %q, printed %q", got, out.String())
	}
	// A restart issues no token, so the callback is not called.
	srv, err = kms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if len(got) != 1 {
		t.Fatalf("callback called on restart: %q", got)
	}
	// The token works.
	e := startServer(t, dir, kms.Config{})
	if _, err := e.client(got[0]).ListTenants(context.Background()); err != nil {
		t.Fatalf("bootstrap token from the callback: %v", err)
	}
}

// The self-signed certificate and key appear whole, with their modes, and
// nothing else is left in the directory; a key left without its
// certificate (a crash between the two writes) is replaced.
func TestSelfSignedCertFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, kms.TLSKeyFile), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, fp, err := kms.LoadOrCreateCert(dir, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	if len(names) != 2 {
		t.Fatalf("data dir holds %v, want only %s and %s", names, kms.TLSCertFile, kms.TLSKeyFile)
	}
	for f, mode := range map[string]os.FileMode{kms.TLSCertFile: 0o644, kms.TLSKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want mode %v", f, st.Mode(), err, mode)
		}
	}
	_, fp2, err := kms.LoadOrCreateCert(dir, "", "", nil)
	if err != nil || fp2 != fp {
		t.Fatalf("second start: fingerprint %s (was %s): %v", fp2, fp, err)
	}
}

func TestClientAuditHead(t *testing.T) {
	e := startServer(t, t.TempDir(), kms.Config{})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	pub := e.srv.AuditPublicKey()
	h1, err := alice.AuditHead(ctx, pub)
	if err != nil || h1.Size == 0 {
		t.Fatalf("head: %+v %v", h1, err)
	}
	if _, err := alice.RotateKey(ctx, "alice/k"); err != nil {
		t.Fatal(err)
	}
	h2, err := e.admin.AuditHead(ctx, pub)
	if err != nil || h2.Size != h1.Size+1 {
		t.Fatalf("head after one more entry: %+v %v (was size %d)", h2, err, h1.Size)
	}
	if _, err := alice.AuditConsistency(ctx, h1, pub); err != nil {
		t.Fatalf("the log does not extend the first head: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := alice.AuditHead(ctx, &other.PublicKey); err == nil {
		t.Fatal("a head verified under another key")
	}
	// Any role may keep a tree head (a runner, too, can later prove a
	// rollback).
	runner, _ := e.party("runner1", api.RoleRunner)
	if h, err := runner.AuditHead(ctx, pub); err != nil || h.Size < h2.Size {
		t.Fatalf("runner's tree head: %+v %v", h, err)
	}
}
