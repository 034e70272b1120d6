package kms_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/core"
	"github.com/ppml/ppml/kms/jwt"
	"github.com/ppml/ppml/kms/kmstest"
)

var tokenRE = regexp.MustCompile(`ppml_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`)

// testEnv is a key service on 127.0.0.1 over real TLS (package kmstest).
type testEnv struct {
	*kmstest.Server
	t       testing.TB
	srv     *kms.Server
	host    string
	port    int
	url     string
	fp      string
	admin   *client.Client
	dataDir string
	tokens  map[string]string // tenant -> token made by party
}

// mutVerifier verifies simulated evidence and then lets a test change the
// claims, to produce claims (debug, OutOfDate TCB) the simulator cannot.
type mutVerifier struct {
	inner attest.Verifier
	mu    sync.Mutex
	mut   func(*attest.Claims)
}

func (v *mutVerifier) Verify(ctx context.Context, ev *attest.Evidence, o attest.VerifyOptions) (*attest.Claims, error) {
	c, err := v.inner.Verify(ctx, ev, o)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mut != nil {
		v.mut(c)
	}
	return c, nil
}

func (v *mutVerifier) set(f func(*attest.Claims)) { v.mu.Lock(); v.mut = f; v.mu.Unlock() }

// simSetup makes a simulated TEE whose measurement is this test binary's.
func simSetup(t testing.TB) (string, ed25519.PublicKey, [48]byte) {
	s, err := kmstest.NewSim(filepath.Join(t.TempDir(), "sim"), "")
	if err != nil {
		t.Fatal(err)
	}
	return s.Dir, s.PublicKey, s.Measurement
}

// startServer starts a key service on dataDir (fresh or existing).
func startServer(t testing.TB, dataDir string, cfg kms.Config) *testEnv {
	t.Helper()
	cfg.DataDir = dataDir
	s := kmstest.New(t, kmstest.Options{Config: cfg})
	return &testEnv{Server: s, t: t, srv: s.Server, host: s.Host, port: s.Port, url: s.URL, fp: s.Fingerprint,
		admin: s.Admin, dataDir: dataDir, tokens: map[string]string{}}
}

func (e *testEnv) stop() { e.Stop() }

func (e *testEnv) client(token string) *client.Client {
	c, err := e.Client(token)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// party creates a tenant with a role and returns a client with its token.
func (e *testEnv) party(name, role string) (*client.Client, *api.TokenInfo) {
	c, tok, err := e.Party(context.Background(), name, role)
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens[name] = tok.Token
	return c, tok
}

func (e *testEnv) ref(name string) envelope.KeyRef { return e.KeyRef(name) }

var manifest = []byte(`version: 1
name: kms-test
engine: exec
inputs:
  sales: {path: sales.csv.ppml}
outputs:
  summary: {path: out/summary.json.ppml, key: "kms://127.0.0.1/alice/results"}
parameters:
  command: [cat]
`)

func jobDigest(t testing.TB, m []byte) []byte {
	d, err := core.JobDigest(m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func simPolicy(measure [48]byte, extra string) []byte {
	return fmt.Appendf(nil, "version: 1\nplatforms:\n  sim:\n    measurements: [%x]\n%s", measure[:], extra)
}

func encrypt(t testing.TB, path string, kw envelope.KeyWrapper, plain []byte) *envelope.Header {
	t.Helper()
	w, err := envelope.CreateFile(path, kw, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := envelope.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func decryptFile(t testing.TB, path string, kr envelope.KeyResolver) ([]byte, error) {
	f, err := envelope.OpenFile(path, kr)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func denialRule(t testing.TB, err error) string {
	t.Helper()
	var se *client.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("want a key service error, got %v", err)
	}
	if len(se.Err.Denials) == 0 {
		return se.Err.Code
	}
	return se.Err.Denials[0].Rule
}

func TestEndToEnd(t *testing.T) {
	simDir, simPub, measure := simSetup(t)
	var logs syncBuffer
	e := startServer(t, t.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx := context.Background()
	if e.admin == nil {
		t.Fatalf("no bootstrap token: %q", e.Output())
	}
	alice, aliceTok := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner1", api.RoleRunner)

	if _, err := alice.CreateKey(ctx, "alice/sales"); err != nil {
		t.Fatal(err)
	}
	jd := jobDigest(t, manifest)
	pol := simPolicy(measure, fmt.Sprintf("jobs: [%x]\n", jd))
	if _, err := alice.SetPolicy(ctx, "alice/sales", pol); err != nil {
		t.Fatal(err)
	}

	// The owner encrypts with kms://.
	dir := t.TempDir()
	plain := bytes.Repeat([]byte("region,amount\nnorth,42\n"), 1000)
	ek := &client.EnvelopeKey{Client: alice, Ref: e.ref("alice/sales")}
	path := filepath.Join(dir, "sales.csv.ppml")
	h := encrypt(t, path, ek, plain)
	if h.KeyRef.Scheme != envelope.SchemeKMS || h.KeyRef.Name != "alice/sales" || h.KeyRef.Version != 1 {
		t.Fatalf("header key ref %s", h.KeyRef)
	}

	// Inside the simulated TEE: release and decrypt.
	items := []api.ReleaseKeyItem{client.ItemFromHeader(h)}
	rel, err := runner.Release(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), items, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decryptFile(t, path, rel.Resolver(items))
	dataKeyB64 := base64.StdEncoding.EncodeToString(rel.Keys[0])
	dataKeyHex := hex.EncodeToString(rel.Keys[0])
	rel.Zero()
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt in TEE: %v (equal=%v)", err, bytes.Equal(got, plain))
	}

	// The attestation token verifies against the published key.
	jwks, err := runner.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	claims := verifyToken(t, rel.Token, jwks)
	if claims.Platform != "sim" || !claims.Insecure || claims.JobDigest != fmt.Sprintf("%x", jd) || claims.Measurement != fmt.Sprintf("%x", measure) {
		t.Fatalf("token claims %+v", claims)
	}

	// The hybrid post-quantum KEM works too.
	rel2, err := runner.Release(ctx, &sim.Attester{Dir: simDir}, manifest, [32]byte(jobDigest(t, manifest)), items, api.KEMMLKEM768X25519)
	if err != nil {
		t.Fatal(err)
	}
	rel2.Zero()

	// The owner decrypts with its token.
	got, err = decryptFile(t, path, ek)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("owner decrypt: %v", err)
	}

	// The audit trail shows the release with measurement and job.
	entries, err := alice.AuditList(ctx, "alice/sales", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var rel0 *struct{}
	var relIndex uint64
	for _, en := range entries {
		types = append(types, string(en.Type))
		if en.Type == "release" {
			rel0 = &struct{}{}
			relIndex = en.Index
			if !bytes.Equal(en.Measurement, measure[:]) || !bytes.Equal(en.JobDigest, jd) || en.Platform != "sim" || !en.Insecure || en.Tenant != "alice" || en.KeyVersion != 1 {
				t.Fatalf("release entry %+v", en)
			}
		}
	}
	if rel0 == nil || fmt.Sprint(types) != "[key_create policy_set data_key release release decrypt]" {
		t.Fatalf("audit trail of alice.sales: %v", types)
	}
	// Owners see only their own trails: without a key, their tenant's.
	own, err := alice.AuditList(ctx, "", 0, 0)
	if err != nil || len(own) == 0 {
		t.Fatalf("owner's tenant trail: %v %v", own, err)
	}
	for _, en := range own {
		if en.Tenant != "alice" || en.Key != "" {
			t.Fatalf("owner's tenant trail holds %+v", en)
		}
	}
	// The logs name requests, tenants and token ids, never secrets.
	if !strings.Contains(logs.String(), `"route":"POST /v1/release"`) {
		t.Fatalf("no release in the logs: %.500s", logs.String())
	}
	for what, secret := range map[string]string{"admin token": e.AdminToken(), "owner token": aliceTok.Token, "data key (base64)": dataKeyB64, "data key (hex)": dataKeyHex} {
		_, sec, _ := strings.Cut(secret, "_")
		if strings.Contains(logs.String(), secret) || (sec != "" && strings.Contains(logs.String(), sec[17:])) {
			t.Errorf("the %s appears in the logs", what)
		}
	}

	// A receipt for the release verifies against the tree-head key alone,
	// and later tree heads are consistent with it.
	pub := e.srv.AuditPublicKey()
	en, head, err := alice.AuditReceipt(ctx, relIndex, pub)
	if err != nil || en.Type != "release" || en.Key != "alice/sales" {
		t.Fatalf("receipt: %+v %v", en, err)
	}
	if _, err := runner.AuditList(ctx, "alice/sales", 0, 0); err == nil {
		t.Fatal("a runner read the audit trail")
	}
	if _, err := alice.RotateKey(ctx, "alice/sales"); err != nil {
		t.Fatal(err)
	}
	newer, err := alice.AuditConsistency(ctx, head, pub)
	if err != nil || newer.Size <= head.Size {
		t.Fatalf("consistency: %+v %v", newer, err)
	}
	forged := *head
	forged.RootHash = append([]byte{}, head.RootHash...)
	forged.RootHash[0] ^= 1
	if _, err := alice.AuditConsistency(ctx, &forged, pub); err == nil {
		t.Fatal("a forged tree head passed")
	}

	// The whole log exports and verifies offline; a tampered copy does not.
	exp, err := e.admin.AuditExport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyExport(bytes.NewReader(exp), audit.VerifyOptions{PublicKey: pub}); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(exp, []byte(`"platform":"sim"`), []byte(`"platform":"sgx"`), 1)
	if bytes.Equal(tampered, exp) {
		t.Fatal("tamper did not change the export")
	}
	_, err = audit.VerifyExport(bytes.NewReader(tampered), audit.VerifyOptions{PublicKey: pub})
	if err == nil || !regexp.MustCompile(`entry \d+|line \d+`).MatchString(err.Error()) {
		t.Fatalf("tampered export: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func verifyToken(t testing.TB, tok string, jwks []byte) *jwt.Claims {
	t.Helper()
	keys, err := jwt.ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jwt.Verify(tok, keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
