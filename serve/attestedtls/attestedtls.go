// Package attestedtls gives a serving TEE a TLS identity a client can check before it sends
// anything: the TEE makes its TLS key in memory (it never leaves the process), binds the
// key and the job digest into attestation evidence, and carries the evidence in an extension
// of its self-signed certificate (the RA-TLS construction). A client completes a TLS 1.3
// handshake — which proves the server holds the certificate's key — then verifies the
// evidence and checks that it binds that key and the job it expects.
//
// The evidence extension is 1.3.9957.2.1 (ppml's arc, see docs/formats/attested-tls.md):
//
//	AttestedTLS ::= SEQUENCE {
//	    version    INTEGER (1),
//	    platform   UTF8String,   -- sgx, tdx, snp, sim
//	    jobDigest  OCTET STRING, -- 32 bytes: the job the TEE runs
//	    evidence   OCTET STRING, -- quote, report or simulated evidence
//	    aux        OCTET STRING, -- SNP certificate table (may be empty)
//	    eventLog   OCTET STRING  -- TDX CCEL event log (may be empty)
//	}
//
// and the evidence's report data is SHA-512("ppml attested tls v1" ‖ 0x00 ‖ jobDigest ‖
// SubjectPublicKeyInfo of the certificate).
package attestedtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppml/ppml/attest"
)

// OIDEvidence identifies the evidence extension, version 1.
var OIDEvidence = asn1.ObjectIdentifier{1, 3, 9957, 2, 1}

const (
	version     = 1
	domain      = "ppml attested tls v1"
	digestSize  = 32
	maxExtBytes = 512 << 10 // a TDX quote with its event log is tens of KiB
)

// ReportData is what the evidence binds: the job digest and the certificate's key.
func ReportData(jobDigest, spki []byte) [attest.ReportDataSize]byte {
	h := sha512.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write(jobDigest)
	h.Write(spki)
	var rd [attest.ReportDataSize]byte
	copy(rd[:], h.Sum(nil))
	return rd
}

type extension struct {
	Version   int
	Platform  string `asn1:"utf8"`
	JobDigest []byte
	Evidence  []byte
	Aux       []byte
	EventLog  []byte
}

// Options shape the certificate.
type Options struct {
	// Hosts are the DNS names and IP addresses the certificate names (clients that check
	// names need the one they dial). Empty: "localhost" and 127.0.0.1.
	Hosts []string
	// Validity is the certificate's lifetime (default 24h); Identity renews it — a new key,
	// new evidence — when two thirds of it have passed.
	Validity time.Duration
}

// Issue makes a key and a self-signed certificate carrying evidence from att that binds
// the key and jobDigest.
func Issue(ctx context.Context, att attest.Attester, jobDigest []byte, o Options) (*tls.Certificate, error) {
	if len(jobDigest) != digestSize {
		return nil, fmt.Errorf("attested TLS: job digest of %d bytes, want %d", len(jobDigest), digestSize)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	ev, err := att.Evidence(ctx, ReportData(jobDigest, spki))
	if err != nil {
		return nil, fmt.Errorf("attested TLS: evidence from %s: %w", att.Name(), err)
	}
	ext, err := asn1.Marshal(extension{Version: version, Platform: string(ev.Platform), JobDigest: jobDigest,
		Evidence: ev.Data, Aux: ev.Aux, EventLog: ev.EventLog})
	if err != nil {
		return nil, err
	}
	if len(ext) > maxExtBytes {
		return nil, fmt.Errorf("attested TLS: evidence of %d bytes is more than the %d a certificate carries", len(ext), maxExtBytes)
	}
	validity := o.Validity
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ppml serve " + fmt.Sprintf("%x", jobDigest[:8])},
		NotBefore:    now.Add(-5 * time.Minute), NotAfter: now.Add(validity),
		// No key usage extension: clients that pin this self-signed certificate as their
		// trust anchor (curl --cacert, Python's ssl) then accept it as its own issuer.
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		ExtraExtensions: []pkix.Extension{{Id: OIDEvidence, Value: ext}},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Identity is a serving TEE's attested certificate, renewed (new key, new evidence) when two
// thirds of its lifetime have passed. A failed renewal keeps the current certificate and is
// retried every minute until it expires.
//
// Renewal runs on its own goroutine while handshakes read the certificate: the certificate
// is an atomic pointer, the renewal callback is guarded by a mutex (it may be set at any
// time, also while a renewal is under way), and a renewal is published before it is
// announced, so a callback that looks at Certificate sees the certificate it is told of.
type Identity struct {
	att       attest.Attester
	jobDigest []byte
	opts      Options
	cur       atomic.Pointer[tls.Certificate]
	mu        sync.Mutex
	onRenew   func(cert *tls.Certificate, err error)
	ctx       context.Context // cancelled by Close: ends a renewal under way
	cancel    context.CancelFunc
	done      chan struct{}
}

// NewIdentity issues the first certificate and starts renewing it until Close.
func NewIdentity(ctx context.Context, att attest.Attester, jobDigest []byte, o Options) (*Identity, error) {
	c, err := Issue(ctx, att, jobDigest, o)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	id := &Identity{att: att, jobDigest: jobDigest, opts: o, ctx: rctx, cancel: cancel, done: make(chan struct{})}
	id.cur.Store(c)
	go id.renew()
	return id, nil
}

// OnRenew has f told of each later renewal (cert set: already the one new handshakes get)
// or failed attempt (err set). f runs on the renewal goroutine and must not block; it may be
// set, or replaced, at any time.
func (id *Identity) OnRenew(f func(cert *tls.Certificate, err error)) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.onRenew = f
}

func (id *Identity) notify(c *tls.Certificate, err error) {
	id.mu.Lock()
	f := id.onRenew
	id.mu.Unlock()
	if f != nil {
		f(c, err)
	}
}

// Certificate is the current certificate.
func (id *Identity) Certificate() *tls.Certificate { return id.cur.Load() }

// ServerConfig is a TLS 1.3 server configuration presenting the current certificate.
func (id *Identity) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.cur.Load(), nil
		},
	}
}

// Close stops renewing (a renewal under way is abandoned) and waits for the renewal
// goroutine to end. Closing twice is harmless.
func (id *Identity) Close() {
	id.cancel()
	<-id.done
}

// renewAt is when c is renewed: two thirds into the lifetime it was issued with. NotBefore
// is backdated for clock skew and does not count, or a short validity would be renewed at
// once, again and again.
func (id *Identity) renewAt(c *tls.Certificate) time.Time {
	validity := id.opts.Validity
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	return c.Leaf.NotAfter.Add(-validity / 3)
}

func (id *Identity) renew() {
	defer close(id.done)
	for {
		t := time.NewTimer(time.Until(id.renewAt(id.cur.Load())))
		select {
		case <-id.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		for {
			ctx, cancel := context.WithTimeout(id.ctx, time.Minute)
			c, err := Issue(ctx, id.att, id.jobDigest, id.opts)
			cancel()
			if id.ctx.Err() != nil {
				return
			}
			if err == nil {
				id.cur.Store(c) // published before it is announced
				id.notify(c, nil)
				break
			}
			id.notify(nil, err)
			select {
			case <-id.ctx.Done():
				return
			case <-time.After(time.Minute):
			}
		}
	}
}

// Peer is what a client learned about a server from its certificate.
type Peer struct {
	Claims    *attest.Claims
	JobDigest []byte
	// SPKISHA256 is the SHA-256 of the certificate's key, for pinning.
	SPKISHA256 []byte
	Leaf       *x509.Certificate
}

// Evidence reads the evidence extension of a certificate.
func Evidence(leaf *x509.Certificate) (*attest.Evidence, []byte, error) {
	var raw []byte
	for _, e := range leaf.Extensions {
		if e.Id.Equal(OIDEvidence) {
			if raw != nil {
				return nil, nil, errors.New("the certificate has two evidence extensions")
			}
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, nil, fmt.Errorf("the server's certificate carries no attestation evidence (extension %s): it is not an attested ppml serving endpoint", OIDEvidence)
	}
	return parseExtension(raw)
}

func parseExtension(raw []byte) (*attest.Evidence, []byte, error) {
	if len(raw) > maxExtBytes {
		return nil, nil, fmt.Errorf("evidence extension of %d bytes (at most %d)", len(raw), maxExtBytes)
	}
	var x extension
	rest, err := asn1.Unmarshal(raw, &x)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence extension does not parse: %v", err)
	}
	if len(rest) > 0 {
		return nil, nil, errors.New("evidence extension has trailing bytes")
	}
	if x.Version != version {
		return nil, nil, fmt.Errorf("evidence extension version %d (this client reads %d)", x.Version, version)
	}
	if len(x.JobDigest) != digestSize {
		return nil, nil, fmt.Errorf("evidence extension: job digest of %d bytes", len(x.JobDigest))
	}
	ev := &attest.Evidence{Platform: attest.Platform(x.Platform), Data: x.Evidence, Aux: x.Aux, EventLog: x.EventLog}
	if len(ev.Aux) == 0 {
		ev.Aux = nil
	}
	if len(ev.EventLog) == 0 {
		ev.EventLog = nil
	}
	return ev, x.JobDigest, nil
}

// Check verifies a server certificate: its evidence with v, and that the evidence binds
// the certificate's key and the job digest the extension names. It does not judge the
// claims (measurement, TCB, insecure platform): the caller's policy does.
func Check(ctx context.Context, leaf *x509.Certificate, v attest.Verifier, opts attest.VerifyOptions) (*Peer, error) {
	ev, digest, err := Evidence(leaf)
	if err != nil {
		return nil, err
	}
	cl, err := v.Verify(ctx, ev, opts)
	if err != nil {
		return nil, fmt.Errorf("the server's evidence does not verify: %w", err)
	}
	want := ReportData(digest, leaf.RawSubjectPublicKeyInfo)
	if subtle.ConstantTimeCompare(cl.ReportData, want[:]) != 1 {
		return nil, errors.New("the server's evidence does not bind its TLS key and job digest (report data differs): the certificate was not made by the attested TEE")
	}
	now := opts.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("the server's certificate is valid from %s to %s, not at %s", leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	pin := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return &Peer{Claims: cl, JobDigest: digest, SPKISHA256: pin[:], Leaf: leaf}, nil
}

// ClientConfig is a TLS 1.3 client configuration that accepts a server only if its
// certificate passes Check and then accept (the caller's policy: measurement, job digest,
// platform). The verified peer of the last handshake is stored in *peer when peer is set.
// Certificate chains and names are not used: the evidence is the trust.
func ClientConfig(v attest.Verifier, accept func(*Peer) error, peer *atomic.Pointer[Peer]) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection's evidence check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			p, err := Check(context.Background(), cs.PeerCertificates[0], v, attest.VerifyOptions{})
			if err != nil {
				return err
			}
			if accept != nil {
				if err := accept(p); err != nil {
					return err
				}
			}
			if peer != nil {
				peer.Store(p)
			}
			return nil
		},
	}
}

// Expect is a client's policy for a serving TEE.
type Expect struct {
	// Measurements, if any, are the code measurements accepted (hex in the CLI).
	Measurements [][]byte
	// JobDigests, if any, are the jobs accepted.
	JobDigests [][]byte
	// AllowInsecure accepts a simulated TEE (or any without hardware protection);
	// AllowDebug a TEE whose memory a debugger can read.
	AllowInsecure, AllowDebug bool
}

// Accept implements the policy for ClientConfig.
func (e Expect) Accept(p *Peer) error {
	if p.Claims.Insecure && !e.AllowInsecure {
		return fmt.Errorf("the server runs on %s, which offers no hardware protection", p.Claims.Platform)
	}
	if p.Claims.Debug && !e.AllowDebug {
		return errors.New("the server's TEE is in debug mode: its memory is readable")
	}
	if len(e.Measurements) > 0 && !containsCT(e.Measurements, p.Claims.Measurement) {
		return fmt.Errorf("the server's measurement %x is not one expected", []byte(p.Claims.Measurement))
	}
	if len(e.JobDigests) > 0 && !containsCT(e.JobDigests, p.JobDigest) {
		return fmt.Errorf("the server runs job %x, not one expected", p.JobDigest)
	}
	return nil
}

func containsCT(set [][]byte, v []byte) bool {
	for _, s := range set {
		if subtle.ConstantTimeCompare(s, v) == 1 {
			return true
		}
	}
	return false
}
