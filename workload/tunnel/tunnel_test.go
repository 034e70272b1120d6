package tunnel_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/workload"
	"github.com/ppml/ppml/workload/mtls"
	"github.com/ppml/ppml/workload/tunnel"
	"github.com/ppml/ppml/workload/workloadtest"
)

// echo is a plaintext local service: it answers each connection with what
// it read, once the writer half-closed.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(b)
			}()
		}
	}()
	return ln.Addr().String()
}

func serve(t *testing.T, cfg *tls.Config, targets map[string]tunnel.Target) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tunnel.Server{TLS: cfg, Targets: targets}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

func roundTrip(ctx context.Context, addr, target string, cfg *tls.Config, msg []byte) ([]byte, error) {
	c, err := tunnel.Dial(ctx, addr, target, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	return io.ReadAll(c)
}

// Two workers holding certificates from the key service's CA talk through
// the tunnel with TLS 1.3; a local client reaches the remote service
// through Forward as if it were local.
func TestTunnel(t *testing.T) {
	cl := workloadtest.New(t)
	a, b := cl.Issue(t, workloadtest.Role), cl.Issue(t, workloadtest.Role)
	srvCfg, _ := cl.TLS(b, tunnel.ALPN, workloadtest.Role)
	var seen *workload.Identity
	addr := serve(t, srvCfg, map[string]tunnel.Target{"echo": func() (string, error) { return echo(t), nil }})
	_, cliCfg := cl.TLS(a, tunnel.ALPN, workloadtest.Role)
	cliCfg.VerifyConnection = wrapVerify(cliCfg.VerifyConnection, &seen)
	ctx := context.Background()
	msg := bytes.Repeat([]byte("rabit allreduce "), 1<<14)
	got, err := roundTrip(ctx, addr, "echo", cliCfg, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(msg))
	}
	if seen == nil {
		t.Fatal("the client verified no server identity")
	}

	// Forward: plaintext on loopback, TLS between workers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tunnel.Forward(ln, func() (net.Conn, error) { return tunnel.Dial(ctx, addr, "echo", cliCfg) }, func(err error) { t.Error(err) })
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("through the forwarder"))
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	c.Close()
	if string(out) != "through the forwarder" {
		t.Fatalf("forwarded echo %q", out)
	}

	// A target the server does not have is refused with its name.
	if _, err := tunnel.Dial(ctx, addr, "ssh", cliCfg); err == nil || !strings.Contains(err.Error(), `no tunnel target "ssh"`) {
		t.Fatalf("unknown target: %v", err)
	}
}

func wrapVerify(f func(tls.ConnectionState) error, seen **workload.Identity) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if err := f(cs); err != nil {
			return err
		}
		if cs.Version != tls.VersionTLS13 {
			return io.ErrUnexpectedEOF
		}
		id, err := workload.FromCertificate(cs.PeerCertificates[0])
		if err != nil {
			return err
		}
		*seen = id
		return nil
	}
}

// A peer is refused, on both sides, when its certificate names another
// job, another certificate policy, a role not accepted, has been revoked
// or expired, or is missing; a TLS 1.2 client is refused.
func TestTunnelRefusesPeers(t *testing.T) {
	cl := workloadtest.New(t)
	ctx := context.Background()
	good := cl.Issue(t, workloadtest.Role)
	srvCfg, _ := cl.TLS(good, tunnel.ALPN, workloadtest.Role)
	addr := serve(t, srvCfg, map[string]tunnel.Target{"echo": func() (string, error) { return echo(t), nil }})

	// Another job admitted by another policy of the same owner, same CA.
	other := []byte("version: 1\nname: other-job\nengine: exec\nparameters:\n  command: [cat]\n")
	otherCl := &workloadtest.Cluster{KMS: cl.KMS, Sim: cl.Sim, Owner: cl.Owner, Runner: cl.Runner, Manifest: other,
		JobDigest: workloadtest.Digest(t, other), PolicyName: "alice/other", CA: cl.CA, CRL: cl.CRL}
	otherCl.SetPolicy(t, "  roles: ["+workloadtest.Role+"]\n")
	otherJob := otherCl.Issue(t, workloadtest.Role)
	// The same job under another policy.
	samePolicy2 := &workloadtest.Cluster{KMS: cl.KMS, Sim: cl.Sim, Owner: cl.Owner, Runner: cl.Runner, Manifest: cl.Manifest,
		JobDigest: cl.JobDigest, PolicyName: "alice/second", CA: cl.CA, CRL: cl.CRL}
	samePolicy2.SetPolicy(t, "  roles: ["+workloadtest.Role+"]\n")
	otherPolicy := samePolicy2.Issue(t, workloadtest.Role)
	tracker := cl.Issue(t, "tracker")

	clientWith := func(cert *client.Cert) *tls.Config {
		return mtls.ClientConfig(mtls.Static{Cert: &cert.TLS}, cl.Peer(workloadtest.Role), tunnel.ALPN)
	}
	for _, c := range []struct {
		name string
		cert *client.Cert
	}{{"other job", otherJob}, {"other policy", otherPolicy}, {"role not accepted", tracker}} {
		if _, err := roundTrip(ctx, addr, "echo", clientWith(c.cert), []byte("x")); err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Fatalf("%s: server accepted the client: %v", c.name, err)
		}
	}
	// The client refuses a server of another job, naming the check.
	otherSrv, _ := otherCl.TLS(otherJob, tunnel.ALPN, workloadtest.Role)
	otherAddr := serve(t, otherSrv, map[string]tunnel.Target{"echo": func() (string, error) { return echo(t), nil }})
	_, err := roundTrip(ctx, otherAddr, "echo", clientWith(good), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "job_digest") {
		t.Fatalf("client accepted a server of another job: %v", err)
	}
	// No client certificate.
	noCert := clientWith(good)
	noCert.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	if _, err := roundTrip(ctx, addr, "echo", noCert, []byte("x")); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	// TLS 1.2 is refused.
	old := clientWith(good)
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := roundTrip(ctx, addr, "echo", old, []byte("x")); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.2 client: %v", err)
	}
	// An expired certificate: the client's clock is past NotAfter.
	late := mtls.ClientConfig(mtls.Static{Cert: &good.TLS}, &mtls.Peer{Trust: func() *workload.Trust {
		tr := cl.Trust()
		tr.Now = func() time.Time { return good.Leaf.NotAfter.Add(time.Second) }
		return tr
	}(), Expect: cl.Peer().Expect}, tunnel.ALPN)
	if _, err := roundTrip(ctx, addr, "echo", late, []byte("x")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired server certificate: %v", err)
	}

	// Revocation: the owner changes the policy; once the peers' list is
	// refreshed, the old certificates are refused both ways.
	fresh := clientWith(good)
	if _, err := roundTrip(ctx, addr, "echo", fresh, []byte("x")); err != nil {
		t.Fatal(err)
	}
	cl.SetPolicy(t, "  roles: ["+workloadtest.Role+", tracker]\n  ttl: 30m\n")
	if err := cl.CRL.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(ctx, addr, "echo", fresh, []byte("x")); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a revoked server certificate was accepted: %v", err)
	}
	renewed := cl.Issue(t, workloadtest.Role)
	if _, err := roundTrip(ctx, addr, "echo", clientWith(renewed), []byte("x")); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a server with a revoked certificate still accepted: %v", err)
	}
}
