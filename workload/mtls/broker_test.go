package mtls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/workload/mtls"
	"github.com/ppml/ppml/workload/workloadtest"
)

// operatorCA makes the broker operator's CA and a server certificate for
// 127.0.0.1, written as PEM files in dir.
func operatorCA(t *testing.T, dir string) (roots *x509.CertPool, certFile, keyFile string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker operator CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return roots, certFile, keyFile
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A worker reaches a real redis-server over TLS 1.3 with its workload
// certificate; Redis requires client certificates of the deployment CA,
// so a client without one, or with another CA's, is refused.
func TestRedisWithWorkloadCertificate(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (make deps installs it)")
	}
	cl := workloadtest.New(t)
	cert := cl.Issue(t, workloadtest.Role)
	dir := t.TempDir()
	roots, certFile, keyFile := operatorCA(t, dir)
	deploymentCA := filepath.Join(dir, "deployment-ca.pem")
	os.WriteFile(deploymentCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cl.CA.Raw}), 0o644)
	port := freePort(t)
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", deploymentCA, "--tls-auth-clients", "yes",
		"--tls-protocols", "TLSv1.3", "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := mtls.BrokerConfig(mtls.Static{Cert: &cert.TLS}, roots, "127.0.0.1")
	c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: cfg, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	var err error
	for i := 0; i < 100; i++ {
		if err = c.Set(ctx, "k", "v", 0).Err(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		t.Fatalf("redis over TLS with the workload certificate: %v\n%s", err, log)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	var state tls.ConnectionState
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	state = conn.ConnectionState()
	conn.Close()
	if state.Version != tls.VersionTLS13 {
		t.Fatalf("TLS version %x", state.Version)
	}

	// No client certificate, or one of another CA: refused.
	none := cfg.Clone()
	none.GetClientCertificate = nil
	other := workloadtest.New(t).Issue(t, workloadtest.Role) // another key service, another CA
	wrong := mtls.BrokerConfig(mtls.Static{Cert: &other.TLS}, roots, "127.0.0.1")
	for name, cfg := range map[string]*tls.Config{"no certificate": none, "another deployment CA": wrong} {
		rc := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: cfg, MaxRetries: -1})
		if err := rc.Ping(ctx).Err(); err == nil {
			t.Fatalf("%s: redis accepted the client", name)
		}
		rc.Close()
	}
}
