// Package local starts a key service on loopback: the server of package
// kms on 127.0.0.1 with its bbolt store in a temporary data directory
// (removed by Stop) unless given one, TLS 1.3 with the self-signed
// certificate it creates, and a simulated TEE it trusts when asked. The
// admin token comes from the server's bootstrap callback
// (kms.Config.BootstrapToken), never from its printed output. `ppml demo`
// and `ppml bench release` run their key service with it; tests use the
// thin wrapper kms/kmstest, which ties it to a test's lifetime.
//
//	srv, err := local.Start(local.Options{Sim: sim})
//	defer srv.Stop()
//	alice, _, err := srv.Party(ctx, "alice", api.RoleOwner)
package local

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

// Options configure a server.
type Options struct {
	// Config configures the server. DataDir defaults to a new temporary
	// directory (removed by Stop); Out defaults to a buffer (Output);
	// Logger defaults to discarding.
	// BootstrapToken, when set, is called too.
	Config kms.Config
	// Addr is the address to listen on (default 127.0.0.1:0).
	Addr string
	// Sim, when set, is a simulated TEE the server trusts (its platform
	// key joins Config.SimKeys).
	Sim *Sim
}

// Server is a running key service.
type Server struct {
	*kms.Server
	URL         string // https://127.0.0.1:PORT
	Host        string // 127.0.0.1
	Port        int
	Fingerprint string            // hex SHA-256 of the certificate, as clients pin it
	Cert        *x509.Certificate // the self-signed certificate (a CA for clients that do not pin)
	CertFile    string            // its PEM file in the data directory
	DataDir     string
	Sim         *Sim
	// Admin is a client with the admin token; nil when the server started
	// sealed or on an existing data directory.
	Admin *client.Client

	out      *lockedBuffer
	mu       sync.Mutex
	admin    string
	stopOnce sync.Once
	stopErr  error
	stop     func() error
}

// Start starts a server; Stop stops it and removes the temporary data
// directory it made.
func Start(o Options) (s *Server, err error) {
	cfg := o.Config
	tmp := ""
	if cfg.DataDir == "" {
		if tmp, err = os.MkdirTemp("", "ppml-kms-"); err != nil {
			return nil, err
		}
		cfg.DataDir = tmp
		defer func() {
			if err != nil {
				os.RemoveAll(tmp)
			}
		}()
	}
	s = &Server{DataDir: cfg.DataDir, Sim: o.Sim, out: &lockedBuffer{}}
	if cfg.Out == nil {
		cfg.Out = s.out
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sim != nil {
		cfg.SimKeys = append(cfg.SimKeys, o.Sim.PublicKey)
	}
	userBoot := cfg.BootstrapToken
	cfg.BootstrapToken = func(tok string) {
		s.mu.Lock()
		s.admin = tok
		s.mu.Unlock()
		if userBoot != nil {
			userBoot(tok)
		}
	}
	srv, err := kms.New(cfg)
	if err != nil {
		return nil, err
	}
	cert, fp, err := kms.LoadOrCreateCert(cfg.DataDir, "", "", nil)
	if err != nil {
		srv.Close()
		return nil, err
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	s.Server = srv
	s.Host, s.Port, s.Fingerprint = tcp.IP.String(), tcp.Port, fp
	s.URL = client.ServerURL(s.Host, s.Port)
	s.CertFile = filepath.Join(cfg.DataDir, kms.TLSCertFile)
	if s.Cert, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		ln.Close()
		srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln, cert) }()
	s.stop = func() error {
		cancel()
		err := <-errc
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return err
	}
	if tok := s.AdminToken(); tok != "" {
		if s.Admin, err = s.Client(tok); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// Stop shuts the server down (in-flight requests finish) and closes its
// store; later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

// AdminToken is the last admin token the server issued since it started
// (at first start, or with Config.NewAdminToken once unsealed); "" if none.
func (s *Server) AdminToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin
}

// Output is what the server printed (Shamir shares, the admin token),
// when Options.Config.Out was not set.
func (s *Server) Output() string { return s.out.String() }

// CAPEM is the server certificate in PEM, for clients that trust it as a CA.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Cert.Raw})
}

// Client returns a client of the server that pins its certificate.
func (s *Server) Client(token string) (*client.Client, error) {
	return client.New(s.URL, token, client.Options{Fingerprint: s.Fingerprint})
}

// Party creates a tenant with a role (as admin) and returns a client with a
// new token of it.
func (s *Server) Party(ctx context.Context, name, role string) (*client.Client, *api.TokenInfo, error) {
	if s.Admin == nil {
		return nil, nil, errors.New("local: no admin token (the server started sealed or on an existing data directory)")
	}
	if _, err := s.Admin.CreateTenant(ctx, name, role); err != nil {
		return nil, nil, err
	}
	tok, err := s.Admin.CreateToken(ctx, name, "kms/local")
	if err != nil {
		return nil, nil, err
	}
	c, err := s.Client(tok.Token)
	if err != nil {
		return nil, nil, err
	}
	return c, tok, nil
}

// KeyRef is the kms:// reference of key name on this server.
func (s *Server) KeyRef(name string) envelope.KeyRef {
	return envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: s.Host, Port: s.Port, Name: name}
}

// Sim is a simulated TEE: a platform key in Dir, whose evidence measures
// Executable.
type Sim struct {
	Dir         string
	PublicKey   ed25519.PublicKey
	Executable  string
	Measurement [48]byte
}

// NewSim makes a simulation platform key in dir (created if needed) for
// evidence measuring executable ("" = this program; a small file keeps the
// simulator from hashing a large binary for every piece of evidence).
func NewSim(dir, executable string) (*Sim, error) {
	k, err := sim.PlatformKey(dir)
	if err != nil {
		return nil, err
	}
	s := &Sim{Dir: dir, PublicKey: k.Public().(ed25519.PublicKey), Executable: executable}
	exe := executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if s.Measurement, err = sim.Measure(exe); err != nil {
		return nil, err
	}
	return s, nil
}

// Attester produces this TEE's evidence.
func (s *Sim) Attester() *sim.Attester { return &sim.Attester{Dir: s.Dir, Executable: s.Executable} }

// Policy is a release policy admitting this TEE's measurement, followed by
// extra YAML (e.g. "jobs: [DIGEST]\n").
func (s *Sim) Policy(extra string) []byte {
	return fmt.Appendf(nil, "version: 1\nplatforms:\n  sim:\n    measurements: [%x]\n%s", s.Measurement[:], extra)
}

// lockedBuffer is the server's output, written by request goroutines
// (unseal) while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ io.Writer = (*lockedBuffer)(nil)
