package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
)

// TestDenialNamesPolicyField: a key whose policy refuses the TEE names the
// policy field that refused, in the release answer and on the owner's
// trail (ppml audit list, its --json, and an exported trail that still
// verifies); a key without a policy and a key that does not exist still
// answer alike, with no field.
func TestDenialNamesPolicyField(t *testing.T) {
	simTEE, err := kmstest.NewSim(t.TempDir(), writeExe(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := kmstest.New(t, kmstest.Options{Sim: simTEE})
	ctx := context.Background()
	alice, _, err := srv.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	runner, _, err := srv.Party(ctx, "runner", api.RoleRunner)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"alice/k", "alice/nopol"} {
		if _, err := alice.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// The simulated TEE reports security version 0.
	if _, err := alice.SetPolicy(ctx, "alice/k", simTEE.Policy("    min_security_version: 1\n")); err != nil {
		t.Fatal(err)
	}
	dk, err := alice.GenerateDataKey(ctx, "alice/k", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte("version: 1\nname: x\nengine: exec\nparameters:\n  command: [cat]\n")
	items := []api.ReleaseKeyItem{
		{Ref: "alice/k", Wrapped: dk.Wrapped, AAD: []byte("a")},
		{Ref: "alice/nopol", Wrapped: dk.Wrapped, AAD: []byte("a")},
		{Ref: "alice/missing", Wrapped: dk.Wrapped, AAD: []byte("a")},
	}
	_, err = runner.Release(ctx, simTEE.Attester(), manifest, jobDigest(t, manifest), items, 0)
	var se *client.StatusError
	if !errors.As(err, &se) || len(se.Err.Denials) != 3 {
		t.Fatalf("want three denials, got %v", err)
	}
	const field = "platforms.sim.min_security_version"
	ds := se.Err.Denials
	if ds[0].Rule != "security_version" || ds[0].Field != field || !strings.Contains(ds[0].Reason, "below the policy's minimum 1") {
		t.Fatalf("policy denial: %+v", ds[0])
	}
	// Nothing tells the key without a policy from the missing one: the
	// answers are the same bytes but for the name.
	nopol, _ := json.Marshal(ds[1])
	missing, _ := json.Marshal(ds[2])
	if ds[1].Rule != api.RuleUnknownKey || strings.Contains(string(nopol), `"field"`) ||
		strings.ReplaceAll(string(nopol), "nopol", "missing") != string(missing) {
		t.Fatalf("unknown keys answer differently:\n%s\n%s", nopol, missing)
	}

	tok, err := srv.Admin.CreateToken(ctx, "alice", "cli")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PPML_SERVER", srv.URL)
	t.Setenv("PPML_SERVER_FINGERPRINT", srv.Fingerprint)
	t.Setenv("PPML_TOKEN", tok.Token)
	code, out, errs := runKMS(t, "", "audit", "list", "--key", "alice/k")
	if code != 0 || !strings.Contains(out, "denial") || !strings.Contains(out, "rule=security_version field="+field+" (security version 0 is below") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	// The owner's entry for its key without a policy says so, with no field.
	code, out, errs = runKMS(t, "", "audit", "list", "--key", "alice/nopol")
	if code != 0 || !strings.Contains(out, "rule=no_policy (") || strings.Contains(out, "field=") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	code, out, errs = runKMS(t, "", "audit", "list", "--key", "alice/k", "--json")
	var es []audit.Entry
	if err := json.Unmarshal([]byte(out), &es); code != 0 || err != nil {
		t.Fatalf("%d %v %s %s", code, err, out, errs)
	}
	var denials int
	for _, e := range es {
		if e.Type == audit.TypeDenial {
			denials++
			if e.Field != field || e.Rule != "security_version" {
				t.Fatalf("denial entry %+v", e)
			}
		}
	}
	if denials != 1 {
		t.Fatalf("%d denial entries: %s", denials, out)
	}

	w := t.TempDir()
	pub, trail := filepath.Join(w, "audit.pub"), filepath.Join(w, "k.trail")
	if code, _, errs := runKMS(t, "", "audit", "public-key", "-o", pub); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := runKMS(t, "", "audit", "export", "--key", "alice/k", "-o", trail); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(trail)
	if !strings.Contains(string(b), `"rule":"security_version","field":"`+field+`","reason":`) {
		t.Fatalf("export:\n%s", b)
	}
	if code, out, errs := runKMS(t, "", "audit", "verify", "--file", trail, "--public-key", pub, "--key", "alice/k"); code != 0 || !strings.Contains(out, "trail verifies") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	// Changing the field breaks the trail: it is part of the signed entry.
	os.WriteFile(trail, []byte(strings.Replace(string(b), field, "platforms.sim.measurements", 1)), 0o600)
	if code, _, errs := runKMS(t, "", "audit", "verify", "--file", trail, "--public-key", pub, "--key", "alice/k"); code != 1 || !strings.Contains(errs, "modified") {
		t.Fatalf("edited field: %d %s", code, errs)
	}
}
