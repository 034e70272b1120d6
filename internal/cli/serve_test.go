package cli_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/workload/workloadtest"
)

// TestServeVerify runs ppml serve verify against a TLS 1.3 server on 127.0.0.1 whose
// certificate was issued with simulated evidence.
func TestServeVerify(t *testing.T) {
	simDir := t.TempDir()
	exe := filepath.Join(simDir, "runtime")
	os.WriteFile(exe, []byte("serving runtime"), 0o755)
	att := &sim.Attester{Dir: simDir, Executable: exe}
	digest := sha256.Sum256([]byte("serve job"))
	id, err := attestedtls.NewIdentity(context.Background(), att, digest[:], attestedtls.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	l, err := tls.Listen("tcp", "127.0.0.1:0", id.ServerConfig("h2", "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	addr := l.Addr().String()
	pub := filepath.Join(simDir, sim.PlatformPubKeyFile)
	meas, _ := sim.Measure(exe)
	jd := "sha256:" + hex.EncodeToString(digest[:])
	pemPath := filepath.Join(t.TempDir(), "server.pem")

	out, code := runMain(t, "serve", "verify", "https://"+addr, "--sim-key", pub, "--measurement", hex.EncodeToString(meas[:]),
		"--job-digest", jd, "--write-cert", pemPath)
	if code != 0 || !strings.Contains(out, "platform: sim") || !strings.Contains(out, "job digest: "+jd) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(pemPath); err != nil || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("--write-cert: %v", err)
	}
	var r struct {
		Valid     bool   `json:"valid"`
		JobDigest string `json:"job_digest"`
	}
	out, code = runMain(t, "serve", "verify", addr, "--sim-key", pub, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Valid || r.JobDigest != jd {
		t.Fatalf("--json: exit %d %s", code, out)
	}
	// Another job, an untrusted simulation key, plain http, no argument.
	other := sha256.Sum256([]byte("other"))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{addr, "--sim-key", pub, "--job-digest", "sha256:" + hex.EncodeToString(other[:])}, 1, "not one expected"},
		{[]string{addr}, 1, "does not verify"},
		{[]string{"http://" + addr}, 2, ""},
		{[]string{addr, "--job-digest", "abc"}, 2, ""},
	} {
		out, code := runMain(t, append([]string{"serve", "verify"}, c.args...)...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
}

// TestServeVerifyDeploymentCA runs ppml serve verify --deployment-ca against a TLS 1.3
// server on 127.0.0.1 presenting a certificate a real key service's deployment CA issued
// after (simulated) attestation.
func TestServeVerifyDeploymentCA(t *testing.T) {
	c := workloadtest.New(t)
	c.SetPolicy(t, "  roles: [serve]\n  ip_addresses: [127.0.0.1]\n")
	cert, err := c.Runner.IssueCert(context.Background(), c.Sim.Attester(), c.Manifest, c.JobDigest,
		client.CertOptions{Policy: c.PolicyName, Role: "serve", IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	addr := l.Addr().String()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "deployment-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.CA.Raw}), 0o644)
	jd := "sha256:" + hex.EncodeToString(c.JobDigest)

	out, code := runMain(t, "serve", "verify", "https://"+addr, "--deployment-ca", caFile, "--allow-insecure", "--job-digest", jd,
		"--measurement", hex.EncodeToString(c.Sim.Measurement[:]), "--write-cert", filepath.Join(dir, "server.pem"))
	if code != 0 || !strings.Contains(out, "platform: sim") || !strings.Contains(out, "job digest: "+jd) ||
		!strings.Contains(out, "certificate policy: "+c.PolicyName) || !strings.Contains(out, "role: serve") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "server.pem")); err != nil || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("--write-cert: %v", err)
	}

	// Another CA: a fresh key service's.
	other := workloadtest.New(t)
	otherCA := filepath.Join(dir, "other-ca.pem")
	os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.CA.Raw}), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{addr, "--deployment-ca", caFile}, 1, "no hardware protection"},
		{[]string{addr, "--deployment-ca", caFile, "--allow-insecure", "--job-digest", "sha256:" + strings.Repeat("0", 64)}, 1, "not one expected"},
		{[]string{addr, "--deployment-ca", otherCA, "--allow-insecure"}, 1, "certificate signed by unknown authority"},
		{[]string{"localhost:" + strings.Split(addr, ":")[1], "--deployment-ca", caFile, "--allow-insecure"}, 1, "localhost"},
		{[]string{addr, "--deployment-ca", caFile, "--sim-key", caFile}, 2, ""},
		{[]string{addr, "--allow-insecure"}, 2, ""},
		{[]string{addr, "--deployment-ca", filepath.Join(dir, "missing.pem")}, 1, ""}, // stderr names the file
	} {
		out, code := runMain(t, append([]string{"serve", "verify"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
}
