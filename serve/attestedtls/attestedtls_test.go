package attestedtls_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/verifier"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/servetest"
)

// simTEE is a simulated TEE whose platform key lives in a test directory, and a verifier
// that trusts it.
func simTEE(t *testing.T) (attest.Attester, attest.Verifier) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "program")
	os.WriteFile(exe, []byte("the serving runtime"), 0o755)
	att := &sim.Attester{Dir: dir, Executable: exe}
	if _, err := att.Evidence(context.Background(), [64]byte{}); err != nil { // creates the key
		t.Fatal(err)
	}
	pub, err := sim.LoadPublicKey(filepath.Join(dir, sim.PlatformPubKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return att, verifier.New(verifier.Config{SimKeys: []ed25519.PublicKey{pub}})
}

// serveTLS answers every connection's handshake with cfg and echoes one line.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Write([]byte("hello\n"))
			}()
		}
	}()
	return l.Addr().String()
}

func TestAttestedHandshake(t *testing.T) {
	att, v := simTEE(t)
	digest := sha256.Sum256([]byte("job"))
	id, err := attestedtls.NewIdentity(context.Background(), att, digest[:], attestedtls.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	addr := serveTLS(t, id.ServerConfig())
	meas, _ := sim.Measure(att.(*sim.Attester).Executable)

	var peer atomic.Pointer[attestedtls.Peer]
	ok := attestedtls.Expect{AllowInsecure: true, Measurements: [][]byte{meas[:]}, JobDigests: [][]byte{digest[:]}}
	c, err := tls.Dial("tcp", addr, attestedtls.ClientConfig(v, ok.Accept, &peer))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	p := peer.Load()
	if p == nil || !bytes.Equal(p.JobDigest, digest[:]) || !bytes.Equal(p.Claims.Measurement, meas[:]) || p.Claims.Platform != attest.PlatformSim {
		t.Fatalf("peer %+v", p)
	}
	if c.ConnectionState().Version != tls.VersionTLS13 {
		t.Fatal("not TLS 1.3")
	}

	// The client's policy refuses: another job, another measurement, a simulated TEE.
	other := sha256.Sum256([]byte("other job"))
	for name, e := range map[string]attestedtls.Expect{
		"runs job":           {AllowInsecure: true, JobDigests: [][]byte{other[:]}},
		"measurement":        {AllowInsecure: true, Measurements: [][]byte{other[:]}},
		"no hardware protec": {},
	} {
		if _, err := tls.Dial("tcp", addr, attestedtls.ClientConfig(v, e.Accept, nil)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// A verifier that does not trust the simulation key refuses the evidence.
	if _, err := tls.Dial("tcp", addr, attestedtls.ClientConfig(verifier.New(verifier.Config{}), nil, nil)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("untrusted platform key: %v", err)
	}
}

// TestForeignKey: evidence copied into a certificate for another key (an attacker who
// recorded a genuine certificate and made his own key) does not bind that key.
func TestForeignKey(t *testing.T) {
	att, v := simTEE(t)
	digest := sha256.Sum256([]byte("job"))
	genuine, err := attestedtls.Issue(context.Background(), att, digest[:], attestedtls.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := attestedtls.Issue(context.Background(), att, digest[:], attestedtls.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The forged certificate's key with the genuine certificate's evidence: re-sign the
	// template with the forged key.
	tmpl := *forged.Leaf
	tmpl.ExtraExtensions = nil
	for _, e := range genuine.Leaf.Extensions {
		if e.Id.Equal(attestedtls.OIDEvidence) {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, e)
		}
	}
	tmpl.Extensions = nil
	der, err := x509.CreateCertificate(nil, &tmpl, &tmpl, forged.Leaf.PublicKey, forged.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	addr := serveTLS(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: forged.PrivateKey, Leaf: leaf}}})
	_, err = tls.Dial("tcp", addr, attestedtls.ClientConfig(v, attestedtls.Expect{AllowInsecure: true}.Accept, nil))
	if err == nil || !strings.Contains(err.Error(), "does not bind its TLS key") {
		t.Fatalf("forged certificate: %v", err)
	}
	// A certificate without evidence.
	plain, _ := servetest.TLS(t)
	addr = serveTLS(t, plain)
	if _, err = tls.Dial("tcp", addr, attestedtls.ClientConfig(v, nil, nil)); err == nil || !strings.Contains(err.Error(), "carries no attestation evidence") {
		t.Fatalf("plain certificate: %v", err)
	}
}

// TestRenewalWhileServing renews a short-lived certificate while clients keep handshaking
// and the renewal callback is replaced mid-flight, as the serve engine sets it after
// NewIdentity returned. Under -race it catches unsynchronised access to the callback; in any
// build it checks that a renewal is published before it is announced (the callback's
// certificate is the one new handshakes get, so what the engine logs is the key it serves),
// that clients see the new keys, and that Close ends the renewals.
func TestRenewalWhileServing(t *testing.T) {
	att, v := simTEE(t)
	digest := sha256.Sum256([]byte("job"))
	id, err := attestedtls.NewIdentity(context.Background(), att, digest[:], attestedtls.Options{Validity: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	pin := func(c *x509.Certificate) string { s := sha256.Sum256(c.RawSubjectPublicKeyInfo); return string(s[:]) }

	var mu sync.Mutex
	issued := map[string]bool{pin(id.Certificate().Leaf): true}
	renewed := make(chan struct{}, 16)
	var calls atomic.Int32
	record := func(c *tls.Certificate, err error) {
		calls.Add(1)
		if err != nil {
			t.Errorf("renewal failed: %v", err)
			return
		}
		if cur := id.Certificate(); cur != c {
			t.Errorf("told of a renewal before it was published: callback has key %x, handshakes get %x", pin(c.Leaf)[:4], pin(cur.Leaf)[:4])
		}
		mu.Lock()
		issued[pin(c.Leaf)] = true
		mu.Unlock()
		select {
		case renewed <- struct{}{}:
		default:
		}
	}
	addr := serveTLS(t, id.ServerConfig())

	// Clients handshake without pause for the whole test.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seenMu sync.Mutex
	seen := map[string]bool{}
	var handshakes atomic.Int32
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var peer atomic.Pointer[attestedtls.Peer]
				c, err := tls.Dial("tcp", addr, attestedtls.ClientConfig(v, attestedtls.Expect{AllowInsecure: true}.Accept, &peer))
				if err != nil {
					t.Errorf("handshake during renewal: %v", err)
					return
				}
				c.Close()
				handshakes.Add(1)
				seenMu.Lock()
				seen[pin(peer.Load().Leaf)] = true
				seenMu.Unlock()
			}
		}()
	}

	// The callback is set while handshakes run, and replaced after the first renewal.
	id.OnRenew(record)
	wait := func(what string) {
		select {
		case <-renewed:
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s renewal within 30s of a 1.5s certificate", what)
		}
	}
	wait("first")
	id.OnRenew(func(c *tls.Certificate, err error) { record(c, err) })
	wait("second")
	wait("third")
	close(stop)
	wg.Wait()

	seenMu.Lock()
	defer seenMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 {
		t.Errorf("%d handshakes saw %d key(s); renewals should have changed the key clients get", handshakes.Load(), len(seen))
	}
	for k := range seen {
		if !issued[k] {
			t.Errorf("a client got key %x, which no renewal announced", k[:4])
		}
	}

	id.Close()
	n := calls.Load()
	time.Sleep(1200 * time.Millisecond) // past the next renewal time
	if m := calls.Load(); m != n {
		t.Errorf("%d renewals after Close", m-n)
	}
	id.Close() // twice is harmless
}

func FuzzEvidenceExtension(f *testing.F) {
	dir := f.TempDir()
	exe := filepath.Join(dir, "program")
	os.WriteFile(exe, []byte("x"), 0o755)
	digest := sha256.Sum256([]byte("job"))
	c, err := attestedtls.Issue(context.Background(), &sim.Attester{Dir: dir, Executable: exe}, digest[:], attestedtls.Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range c.Leaf.Extensions {
		if e.Id.Equal(attestedtls.OIDEvidence) {
			f.Add(e.Value)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		leaf := &x509.Certificate{Extensions: c.Leaf.Extensions[:0:0]}
		leaf.Extensions = append(leaf.Extensions, pkix.Extension{Id: attestedtls.OIDEvidence, Value: b})
		attestedtls.Evidence(leaf)
	})
}
