// Package server runs the network side of a serving job: one HTTPS listener answering KServe
// v2 REST (/v2/...), Cluster Serving's HTTP frontend (/predict, /models...) and Prometheus
// metrics (/metrics), and one gRPC listener answering KServe v2 gRPC. Both speak TLS 1.3 only
// and bound what a client can hold: header and body sizes, the time to send a request and to
// read an answer, idle connections, connections at once, streams per connection and the
// time one inference may take. Shutdown drains: readiness turns false, new inferences are
// refused in the protocol's form, admitted ones finish, then the listeners close.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/ppml/ppml/serve/clusterserving/frontend"
	"github.com/ppml/ppml/serve/kserve"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/metrics"
	"github.com/ppml/ppml/serve/model"
)

// Limits bound what one client can take from the server. Zero fields take the defaults.
type Limits struct {
	MaxRequestBytes   int64         // a request body or gRPC message (default 64 MiB)
	MaxHeaderBytes    int           // HTTP request headers (default 64 KiB)
	ReadHeaderTimeout time.Duration // to send the request headers, TLS handshake included (default 10s)
	ReadTimeout       time.Duration // to send a whole request (default 60s)
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer (default 60s)
	IdleTimeout       time.Duration // a keep-alive connection without requests (default 120s)
	RequestTimeout    time.Duration // one inference, queueing and batching included (default 30s)
	MaxConnections    int           // open connections per listener (default 4096)
	MaxStreams        uint32        // concurrent gRPC streams per connection (default 256)
}

// WithDefaults fills the zero fields.
func (l Limits) WithDefaults() Limits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = 64 << 20
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	def(&l.ReadHeaderTimeout, 10*time.Second)
	def(&l.ReadTimeout, 60*time.Second)
	def(&l.WriteTimeout, 60*time.Second)
	def(&l.IdleTimeout, 120*time.Second)
	def(&l.RequestTimeout, 30*time.Second)
	if l.MaxConnections <= 0 {
		l.MaxConnections = 4096
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = 256
	}
	return l
}

// Config is what to serve and where.
type Config struct {
	Registry *model.Registry
	// TLS is the server's TLS configuration (its certificate); TLS 1.3 is enforced.
	TLS *tls.Config
	// HTTPAddr and GRPCAddr are the listen addresses ("" serves no such listener; port 0
	// picks a free port).
	HTTPAddr, GRPCAddr string
	// PredictModel and PredictVersion are what the Cluster Serving frontend's POST /predict
	// serves (version "": the default version).
	PredictModel, PredictVersion string
	// Name and Version are reported by KServe's server metadata.
	Name, Version string
	Limits        Limits
	// Metrics records requests; Gatherer, if set, is served at /metrics.
	Metrics  *metrics.Metrics
	Gatherer prometheus.Gatherer
	// Log receives operational lines (listen addresses, errors; never request contents).
	Log func(format string, args ...any)
}

// Server is a running server.
type Server struct {
	cfg      Config
	http     *http.Server
	grpc     *grpc.Server
	httpLn   net.Listener
	grpcLn   net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	serveErr error
}

// Start listens and serves until Shutdown.
func Start(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("serve: no model registry")
	}
	if cfg.TLS == nil {
		return nil, errors.New("serve: no TLS configuration: the serving endpoints speak TLS 1.3 only")
	}
	if cfg.HTTPAddr == "" && cfg.GRPCAddr == "" {
		return nil, errors.New("serve: neither an HTTP nor a gRPC address")
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	s := &Server{cfg: cfg}
	ks := &kserve.Server{Registry: cfg.Registry, Name: cfg.Name, Version: cfg.Version,
		MaxRequestBytes: cfg.Limits.MaxRequestBytes, Metrics: cfg.Metrics}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("serve: HTTPS listener: %w", err)
		}
		s.httpLn = netutil.LimitListener(ln, cfg.Limits.MaxConnections)
		s.http = &http.Server{
			Handler:           s.handler(ks),
			TLSConfig:         tls13(cfg.TLS, "h2", "http/1.1"),
			ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout,
			ReadTimeout:       cfg.Limits.ReadTimeout,
			WriteTimeout:      cfg.Limits.WriteTimeout,
			IdleTimeout:       cfg.Limits.IdleTimeout,
			MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
			// Handshake failures and the like: addresses and TLS alerts, no content.
			ErrorLog: log.New(logWriter(cfg.Log), "", 0),
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.ServeTLS(s.httpLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(fmt.Errorf("HTTPS server: %w", err))
			}
		}()
		cfg.Log("serving HTTPS (KServe v2 REST, Cluster Serving frontend, /metrics) on %s", s.httpLn.Addr())
	}
	if cfg.GRPCAddr != "" {
		ln, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("serve: gRPC listener: %w", err)
		}
		s.grpcLn = netutil.LimitListener(ln, cfg.Limits.MaxConnections)
		opts := append(ks.ServerOptions(),
			grpc.Creds(credentials.NewTLS(tls13(cfg.TLS, "h2"))),
			grpc.ConnectionTimeout(cfg.Limits.ReadHeaderTimeout),
			grpc.MaxConcurrentStreams(cfg.Limits.MaxStreams),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.Limits.IdleTimeout}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
			grpc.UnaryInterceptor(s.deadline),
		)
		s.grpc = grpc.NewServer(opts...)
		inferencepb.RegisterGRPCInferenceServiceServer(s.grpc, ks.GRPC())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.grpc.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.fail(fmt.Errorf("gRPC server: %w", err))
			}
		}()
		cfg.Log("serving gRPC (KServe v2) on %s", s.grpcLn.Addr())
	}
	return s, nil
}

// tls13 copies c with TLS 1.3 as the minimum and the given application protocols.
func tls13(c *tls.Config, protos ...string) *tls.Config {
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = protos
	return c
}

func (s *Server) fail(err error) {
	s.mu.Lock()
	if s.serveErr == nil {
		s.serveErr = err
	}
	s.mu.Unlock()
	s.cfg.Log("%v", err)
}

// Err is the first error a listener stopped with (nil while serving).
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serveErr
}

// HTTPAddr and GRPCAddr are the listening addresses ("" when not listening).
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

func (s *Server) GRPCAddr() string {
	if s.grpcLn == nil {
		return ""
	}
	return s.grpcLn.Addr().String()
}

// handler routes the HTTPS listener's paths and bounds each request's time.
func (s *Server) handler(ks *kserve.Server) http.Handler {
	fe := (&frontend.Frontend{Registry: s.cfg.Registry, Model: s.cfg.PredictModel, Version: s.cfg.PredictVersion,
		MaxRequestBytes: s.cfg.Limits.MaxRequestBytes, Metrics: s.cfg.Metrics}).Handler()
	v2 := ks.Handler()
	var metricsH http.Handler
	if s.cfg.Gatherer != nil {
		metricsH = promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})
	}
	timeout := s.cfg.Limits.RequestTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Strict-Transport-Security"] = hsts
		switch {
		case r.URL.Path == "/metrics" && metricsH != nil:
			metricsH.ServeHTTP(w, r)
			return
		case r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/"):
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			v2.ServeHTTP(w, r.WithContext(ctx))
		default:
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			fe.ServeHTTP(w, r.WithContext(ctx))
		}
	})
}

// hsts is the Strict-Transport-Security header every HTTPS answer carries (one shared value:
// net/http only reads it).
var hsts = []string{"max-age=31536000"}

// deadline gives a gRPC call without a deadline (or a longer one) the request timeout.
func (s *Server) deadline(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > s.cfg.Limits.RequestTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Limits.RequestTimeout)
		defer cancel()
	}
	return h(ctx, req)
}

// Shutdown drains: the registry refuses new inferences (readiness false, protocol-form
// "unavailable" answers), admitted requests finish, idle connections close. When ctx ends
// first, the remaining connections are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cfg.Registry.Drain()
	var errs []error
	var wg sync.WaitGroup
	if s.grpc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				s.grpc.Stop()
			}
		}()
	}
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
			errs = append(errs, fmt.Errorf("HTTPS drain: %w", err))
		}
	}
	wg.Wait()
	s.wg.Wait()
	return errors.Join(errs...)
}

// Close stops at once.
func (s *Server) Close() {
	if s.http != nil {
		s.http.Close()
	} else if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	} else if s.grpcLn != nil {
		s.grpcLn.Close()
	}
	s.wg.Wait()
}

// logWriter turns the HTTP server's error log lines into Log calls.
type logWriter func(format string, args ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
