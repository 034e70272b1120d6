package kms_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/kmstest"
)

// TestMain doubles as the key service process for the crash test: with
// PPML_KMS_CHILD set, the test binary runs the real server until killed.
func TestMain(m *testing.M) {
	if os.Getenv("PPML_KMS_CHILD") == "1" {
		os.Exit(childServer())
	}
	code := m.Run()
	if fuzzSrv.dir != "" {
		os.RemoveAll(fuzzSrv.dir)
	}
	os.Exit(code)
}

func childServer() int {
	dir, addr := os.Getenv("PPML_KMS_DIR"), os.Getenv("PPML_KMS_ADDR")
	pub, err := sim.LoadPublicKey(os.Getenv("PPML_KMS_SIMPUB"))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	srv, err := kmstest.Start(kmstest.Options{Addr: addr, Config: kms.Config{DataDir: dir, Out: os.Stdout, SimKeys: []ed25519.PublicKey{pub}}})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if tok := srv.AdminToken(); tok != "" {
		fmt.Println("ADMIN", tok)
	}
	fmt.Println("READY", srv.Fingerprint)
	select {} // until killed
}

type child struct {
	cmd   *exec.Cmd
	fp    string
	admin string // the admin token, when this start issued one
	out   string
}

func startChild(t *testing.T, dir, addr, simPub string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PPML_KMS_CHILD=1", "PPML_KMS_DIR="+dir, "PPML_KMS_ADDR="+addr, "PPML_KMS_SIMPUB="+simPub)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	for sc.Scan() {
		l := sc.Text()
		out.WriteString(l + "\n")
		if tok, ok := strings.CutPrefix(l, "ADMIN "); ok {
			c.admin = tok
		}
		if f, ok := strings.CutPrefix(l, "READY "); ok {
			c.fp = f
			break
		}
		if strings.HasPrefix(l, "ERROR") {
			t.Fatal(l)
		}
	}
	if c.fp == "" {
		cmd.Process.Kill()
		t.Fatalf("server did not start: %q", out.String())
	}
	go io.Copy(io.Discard, stdout)
	c.out = out.String()
	return c
}

func (c *child) kill9() {
	c.cmd.Process.Kill() // SIGKILL
	c.cmd.Wait()
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	simDir, _, measure := simSetup(t)
	simPub := filepath.Join(simDir, sim.PlatformPubKeyFile)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx := context.Background()

	c := startChild(t, dir, addr, simPub)
	defer func() { c.kill9() }()
	adminTok := c.admin
	if adminTok == "" {
		t.Fatalf("no bootstrap token in %q", c.out)
	}
	mk := func(tok string) *client.Client {
		cl, err := client.New("https://"+addr, tok, client.Options{Fingerprint: c.fp, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	admin := mk(adminTok)
	if _, err := admin.CreateTenant(ctx, "alice", api.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateTenant(ctx, "runner", api.RoleRunner); err != nil {
		t.Fatal(err)
	}
	at, err := admin.CreateToken(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := admin.CreateToken(ctx, "runner", "")
	if err != nil {
		t.Fatal(err)
	}
	att := &sim.Attester{Dir: simDir}
	acked := map[string]bool{} // keys whose creation was acknowledged
	releases := 0              // acknowledged releases
	n := 0
	for round := 0; round < 4; round++ {
		alice, runner := mk(at.Token), mk(rt.Token)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var mu sync.Mutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				n++
				name := fmt.Sprintf("alice/k%d", n)
				mu.Unlock()
				if _, err := alice.CreateKey(ctx, name); err != nil {
					return
				}
				mu.Lock()
				acked[name] = true
				mu.Unlock()
				if _, err := alice.SetPolicy(ctx, name, simPolicy(measure, "")); err != nil {
					return
				}
				d, err := alice.GenerateDataKey(ctx, name, []byte("aad"))
				if err != nil {
					return
				}
				ref := "kms://127.0.0.1/" + name + "@1"
				r, err := runner.Release(ctx, att, manifest, [32]byte(jobDigest(t, manifest)), []api.ReleaseKeyItem{{Ref: ref, Wrapped: d.Wrapped, AAD: []byte("aad")}}, 0)
				if err != nil {
					return
				}
				if !bytes.Equal(r.Keys[0], d.DataKey) {
					t.Error("released key differs from the generated one")
				}
				mu.Lock()
				releases++
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(300+200*round) * time.Millisecond)
		c.kill9()
		close(stop)
		wg.Wait()
		c = startChild(t, dir, addr, simPub)
		if c.admin != "" || strings.Contains(c.out, "ppml_") {
			t.Fatal("a restart printed a new bootstrap token")
		}
	}
	admin = mk(adminTok)
	keys, err := admin.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, k := range keys {
		have[k.Name] = true
	}
	for k := range acked {
		if !have[k] {
			t.Errorf("acknowledged key %s is missing after kill -9", k)
		}
	}
	exp, err := admin.AuditExport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := admin.AuditPublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyExport(bytes.NewReader(exp), audit.VerifyOptions{PublicKey: pub}); err != nil {
		t.Fatalf("audit log after crashes: %v", err)
	}
	// Every key has its creation entry and every creation entry its key:
	// the state change and its audit entry commit together or not at all.
	entries, err := admin.AuditList(ctx, "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	rel := 0
	for _, e := range entries {
		switch e.Type {
		case "key_create":
			created[e.Key] = true
		case "release":
			rel++
		}
	}
	for k := range have {
		if !created[k] {
			t.Errorf("key %s exists without its key_create audit entry", k)
		}
	}
	for k := range created {
		if !have[k] {
			t.Errorf("key_create entry for %s but no key", k)
		}
	}
	if rel < releases {
		t.Errorf("%d acknowledged releases but %d release entries", releases, rel)
	}
	if len(acked) < 4 || releases < 1 {
		t.Errorf("the loop did too little to test anything: %d keys, %d releases", len(acked), releases)
	}
	t.Logf("%d keys acknowledged (%d present), %d releases acknowledged, %d audit entries, 4 kill -9", len(acked), len(have), releases, len(entries))
}
