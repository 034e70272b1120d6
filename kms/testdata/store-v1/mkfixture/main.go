// Command mkfixture made the database in ../data with the key service as it
// was before the authenticated state (store value format 1, commit c7e8fa8):
//
//	git worktree add /tmp/ppml-old c7e8fa8
//	mkdir /tmp/ppml-old/cmd/mkfixture && cp main.go /tmp/ppml-old/cmd/mkfixture/
//	(cd /tmp/ppml-old && go run ./cmd/mkfixture OUT)
//
// It is kept for reference (a testdata directory is not built): the
// migration test (kms/migrate_test.go) starts today's server on a copy of
// that data directory. It writes OUT/data (seal.json, root.key, ppml.db,
// TLS files) and OUT/fixture.json (the tokens and a wrapped data key the
// test uses).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
)

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(out string) error {
	ctx := context.Background()
	data := filepath.Join(out, "data")
	exe := filepath.Join(out, "tee-program")
	if err := os.WriteFile(exe, []byte("the program the simulated TEE measures\n"), 0o644); err != nil {
		return err
	}
	sim, err := kmstest.NewSim(filepath.Join(out, "sim"), exe)
	if err != nil {
		return err
	}
	srv, err := kmstest.Start(kmstest.Options{Sim: sim, Config: kms.Config{DataDir: data}})
	if err != nil {
		return err
	}
	defer srv.Stop()
	alice, aliceTok, err := srv.Party(ctx, "alice", api.RoleOwner)
	if err != nil {
		return err
	}
	runner, runnerTok, err := srv.Party(ctx, "runner", api.RoleRunner)
	if err != nil {
		return err
	}
	_, bobTok, err := srv.Party(ctx, "bob", api.RoleOwner)
	if err != nil {
		return err
	}
	if _, err := srv.Admin.RevokeToken(ctx, bobTok.ID); err != nil {
		return err
	}
	if _, err := alice.CreateKey(ctx, "alice.sales"); err != nil {
		return err
	}
	dk, err := alice.GenerateDataKey(ctx, "alice.sales", []byte("fixture aad"))
	if err != nil {
		return err
	}
	if _, err := alice.RotateKey(ctx, "alice.sales"); err != nil {
		return err
	}
	manifest := []byte("version: 1\nname: fixture\nengine: exec\nparameters:\n  command: [cat]\n")
	if _, err := alice.SetPolicy(ctx, "alice.sales", sim.Policy("")); err != nil {
		return err
	}
	items := []api.ReleaseKeyItem{{Ref: "alice.sales", Wrapped: dk.Wrapped, AAD: []byte("fixture aad")}}
	rel, err := runner.Release(ctx, sim.Attester(), manifest, items, 0)
	if err != nil {
		return err
	}
	rel.Zero()
	fx := map[string]any{
		"admin_token":  srv.AdminToken(),
		"alice_token":  aliceTok.Token,
		"runner_token": runnerTok.Token,
		"bob_token":    bobTok.Token, // revoked
		"key":          "alice.sales",
		"wrapped":      dk.Wrapped,
		"aad":          []byte("fixture aad"),
		"data_key":     dk.DataKey,
		"manifest":     manifest,
	}
	_ = client.ServerURL
	b, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "fixture.json"), b, 0o644)
}
