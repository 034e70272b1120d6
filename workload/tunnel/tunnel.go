// Package tunnel carries TCP streams between ppml workers over mutually
// attested TLS: the transparent tunnel for engines whose own traffic is
// plaintext (XGBoost's rabit collective). A worker runs one Server; a peer
// opens a stream with Dial, naming a target the server was configured with
// ("tracker", "rabit"), and the server connects it to the local address
// behind that name and nothing else — a tunnel is never an open proxy.
//
// Each stream is one TLS 1.3 connection whose two sides verified each
// other's workload certificate (package workload/mtls: the chain to the
// deployment CA, validity, revocation, job digest, role, certificate
// policy). The stream protocol (docs/api/worker-tunnel.md) is, after the
// handshake with ALPN "ppml-tunnel/1":
//
//	client → server: uint8 len | target name (1-32 bytes of a-z 0-9 '-')
//	server → client: 0x00 (connected) | 0x01 uint8 len | message (refused)
//
// then bytes both ways until either side closes.
package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ALPN is the application protocol of a tunnel stream.
const ALPN = "ppml-tunnel/1"

// TargetPing is served by every tunnel server itself: it answers
// "connected" and closes, so a worker learns that a peer is up and that
// the two accept each other's certificates before its engine starts.
const TargetPing = "ping"

// headerTimeout bounds the handshake and the target exchange, so a peer
// that connects and says nothing does not hold a goroutine for ever.
const headerTimeout = 30 * time.Second

// Target resolves a target name to the local address it reaches now (the
// address may be learned late: the rabit port once the worker reported it).
type Target func() (string, error)

// Server accepts tunnel streams. TLS is a configuration from
// mtls.ServerConfig with ALPN among its NextProtos.
type Server struct {
	TLS     *tls.Config
	Targets map[string]Target
	Logger  *slog.Logger
	// OnStream, when set, is told of each stream connected to a target,
	// with the peer's certificate (for logs and metrics).
	OnStream func(target string, peer *x509.Certificate)

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Serve accepts on ln until Close (it then returns nil).
func (s *Server) Serve(ln net.Listener) error {
	if s.TLS == nil {
		return errors.New("tunnel: server without a TLS configuration")
	}
	s.mu.Lock()
	if s.closed {
		// Closed before it served: Close could not close ln.
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.ln == nil
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("tunnel: accept: %w", err)
		}
		s.track(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			s.handle(c)
		}()
	}
}

func (s *Server) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

// Close stops accepting, closes every stream and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) handle(raw net.Conn) {
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(headerTimeout))
	c := tls.Server(raw, s.TLS)
	if err := c.Handshake(); err != nil {
		// The peer's certificate was refused (or it is not a ppml worker).
		s.logger().Warn("tunnel: handshake refused", "remote", raw.RemoteAddr().String(), "err", err.Error())
		return
	}
	if c.ConnectionState().NegotiatedProtocol != ALPN {
		s.logger().Warn("tunnel: peer did not negotiate " + ALPN)
		return
	}
	name, err := readTarget(c)
	if err != nil {
		s.logger().Warn("tunnel: bad stream header", "remote", raw.RemoteAddr().String(), "err", err.Error())
		return
	}
	if name == TargetPing {
		c.Write([]byte{0})
		return
	}
	resolve, ok := s.Targets[name]
	if !ok {
		refuseStream(c, fmt.Sprintf("this worker serves no tunnel target %q", name))
		return
	}
	addr, err := resolve()
	if err != nil {
		refuseStream(c, fmt.Sprintf("tunnel target %s is not ready: %v", name, err))
		return
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	local, err := d.DialContext(ctx, "tcp", addr)
	cancel()
	if err != nil {
		refuseStream(c, fmt.Sprintf("tunnel target %s (%s) refused the connection", name, addr))
		return
	}
	defer local.Close()
	// Close ends the local side too: an engine may keep its end open
	// after the peer's side finished.
	s.track(local, true)
	defer s.track(local, false)
	if _, err := c.Write([]byte{0}); err != nil {
		return
	}
	if s.OnStream != nil {
		s.OnStream(name, c.ConnectionState().PeerCertificates[0])
	}
	raw.SetDeadline(time.Time{})
	Splice(c, local)
}

func readTarget(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	name := string(b)
	if err := CheckTarget(name); err != nil {
		return "", err
	}
	return name, nil
}

// CheckTarget says why name is not a target name.
func CheckTarget(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("tunnel target %q: want 1 to 32 characters", name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("tunnel target %q: want a-z, 0-9 and '-'", name)
		}
	}
	return nil
}

func refuseStream(c net.Conn, msg string) {
	if len(msg) > 255 {
		msg = msg[:255]
	}
	c.Write(append([]byte{1, byte(len(msg))}, msg...))
}

// Dial opens a stream to target at the tunnel server addr with cfg (from
// mtls.ClientConfig with ALPN). Errors name the address and, when the
// server refused, its reason.
func Dial(ctx context.Context, addr, target string, cfg *tls.Config) (net.Conn, error) {
	if err := CheckTarget(target); err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: cfg}
	hctx, cancel := context.WithTimeout(ctx, headerTimeout)
	defer cancel()
	c, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", addr, err)
	}
	tc := c.(*tls.Conn)
	if dl, ok := hctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	fail := func(err error) (net.Conn, error) {
		tc.Close()
		return nil, fmt.Errorf("tunnel to %s (%s): %w", addr, target, err)
	}
	if _, err := tc.Write(append([]byte{byte(len(target))}, target...)); err != nil {
		return fail(err)
	}
	var st [2]byte
	if _, err := io.ReadFull(tc, st[:1]); err != nil {
		// TLS 1.3 client certificates are checked after the client's
		// handshake returns: a refusal of ours shows up here.
		return fail(err)
	}
	if st[0] != 0 {
		if _, err := io.ReadFull(tc, st[1:]); err != nil {
			return fail(err)
		}
		msg := make([]byte, st[1])
		io.ReadFull(tc, msg)
		return fail(errors.New(string(msg)))
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// Ping checks that the tunnel server at addr is up and that both sides
// accept each other's certificates.
func Ping(ctx context.Context, addr string, cfg *tls.Config) error {
	c, err := Dial(ctx, addr, TargetPing, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// Forward accepts local connections on ln (a loopback listener) and joins
// each to a stream from dial, until ln is closed; it then closes the
// streams still open and returns. A failed dial closes the local
// connection and is reported to onErr.
func Forward(ln net.Listener, dial func() (net.Conn, error), onErr func(error)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			open[c] = struct{}{}
		} else {
			delete(open, c)
		}
	}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		track(c, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer track(c, false)
			defer c.Close()
			remote, err := dial()
			if err != nil {
				if onErr != nil {
					onErr(err)
				}
				return
			}
			track(remote, true)
			defer track(remote, false)
			defer remote.Close()
			Splice(c, remote)
		}()
	}
}

// closeWriter is a connection whose sending half can be closed (TCP's FIN,
// TLS's close_notify).
type closeWriter interface{ CloseWrite() error }

// Splice copies both ways until both directions ended, passing each
// direction's end on as a half-close so protocols that shut down one side
// first keep working.
func Splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil {
			// A reset or a failed peer: end the stream both ways.
			a.Close()
			b.Close()
		} else if cw, ok := dst.(closeWriter); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
}
