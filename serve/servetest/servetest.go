// Package servetest holds what the serving tests share: a real redis-server started on a
// free loopback port in a temporary directory, a trained XGBoost model, and a TLS 1.3
// certificate for 127.0.0.1.
package servetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/ml/synth"
	"github.com/ppml/ppml/ml/xgboost"
)

// Redis is a redis-server a test started, with append-only persistence (fsync always) so a
// restart keeps every acknowledged write.
type Redis struct {
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server on a free port; it is stopped when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (make deps installs it)")
	}
	r := &Redis{Port: FreePort(t), dir: t.TempDir()}
	r.start(t)
	t.Cleanup(func() { r.Stop() })
	return r
}

func (r *Redis) start(t testing.TB) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--protected-mode", "yes", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if i > 100 {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			t.Fatalf("redis-server did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addr is the server's address.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// Client returns a client closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop shuts the server down (SIGTERM: Redis fsyncs and exits).
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// Kill ends the server with SIGKILL (no shutdown; the append-only file has every write).
func (r *Redis) Kill() {
	if r.cmd != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Restart starts the server again on the same port and data directory.
func (r *Redis) Restart(t testing.TB) { r.start(t) }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Features names n features f0, f1, ...
func Features(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "f" + strconv.Itoa(i)
	}
	return names
}

// XGBoostModel trains a regression model (rounds trees of depth) on synthetic data with n
// features named f0… and returns it as XGBoost JSON (what Python's save_model writes), plus
// the training rows for tests that want realistic inputs.
func XGBoostModel(t testing.TB, features, rounds, depth int) (model []byte, x []float32) {
	t.Helper()
	rows := 2000
	x, y := synth.Regression(rows, features, 7)
	d, err := xgboost.NewDMatrix(x, rows, features, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		t.Fatal(err)
	}
	if err := d.SetFeatureNames(Features(features)); err != nil {
		t.Fatal(err)
	}
	b, err := xgboost.Train(d, xgboost.Config{Rounds: rounds, NThread: 1, Params: []xgboost.Param{
		{Name: "objective", Value: "reg:squarederror"}, {Name: "max_depth", Value: strconv.Itoa(depth)}, {Name: "seed", Value: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	model, err = b.SaveJSON()
	if err != nil {
		t.Fatal(err)
	}
	return model, x
}

// TLS returns a server configuration (TLS 1.3 only) with a fresh certificate for 127.0.0.1
// and a client configuration that trusts it.
func TLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "servetest"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Sprint(err))
	}
}
