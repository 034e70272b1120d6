// Package serve is the serve engine: a long-running job that serves the models its manifest
// names — decrypted by the launcher into sealed in-memory files, loaded into memory — over
// KServe v2 REST and gRPC, Cluster Serving's HTTP frontend and, optionally, Cluster Serving's
// Redis queue, until it is stopped. Its TLS key is made inside the TEE and certified either
// by the TEE's own evidence (serve/attestedtls, the default), so a client checks what it
// talks to before it sends anything, or by the key service's deployment CA after
// attestation (kms/client.Identity), so a client verifies it like any TLS server with the
// CA bundle; either way the certificate is renewed with a new key at two thirds of its
// lifetime while connections stay up. Stopping the job (SIGTERM to ppml-run) drains: readiness turns false,
// new requests are refused, admitted requests and queue records are answered, then the
// engine returns and the launcher ends the run.
//
// The parameters are read by the pure-Go package engine/serve/servespec (docs/serve.md).
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/engine/serve/servespec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/clusterserving/queue"
	"github.com/ppml/ppml/serve/metrics"
	"github.com/ppml/ppml/serve/model"
	_ "github.com/ppml/ppml/serve/model/tabular" // ppml's XGBoost and linear models
	"github.com/ppml/ppml/serve/record"
	"github.com/ppml/ppml/serve/server"
)

func init() { launcher.Register(engine{}) }

type engine struct{}

func (engine) Spec() job.Spec { return servespec.Spec }

// LongRunning implements launcher.LongRunning: the end of the context is the normal end of a
// serve job.
func (engine) LongRunning() {}

func (engine) Run(ctx context.Context, j *launcher.Job) error {
	p, ok := j.Manifest.Parameters.(*servespec.Params)
	if !ok {
		return fmt.Errorf("serve engine: parameters are %T", j.Manifest.Parameters)
	}
	if j.Attester == nil {
		return errors.New("serve engine: no TEE to attest the TLS key with: run with a key service (--server) or, for development, --tee sim")
	}
	inputs := map[string]launcher.Input{}
	for _, in := range j.Inputs {
		inputs[in.Name] = in
	}
	digest := j.Manifest.Digest()
	// resources.memory bounds libtorch's tensors (TorchScript models) beside the decrypted
	// inputs, which stay in memory for the job's life.
	var held int64
	for _, in := range j.Inputs {
		for _, f := range in.Files {
			if f.Mem != nil {
				if n, err := f.Mem.Size(); err == nil {
					held += n
				}
			}
		}
	}
	s, err := Start(ctx, Config{Params: p, JobDigest: digest[:], Attester: j.Attester, Threads: j.Manifest.Resources.Threads,
		Memory: j.Manifest.Resources.Memory, Held: held,
		KeyService: j.KeyService, Manifest: j.RawManifest,
		Logf: j.Logf, Input: func(name string) ([]byte, error) { return readInput(inputs, name) }})
	if err != nil {
		return err
	}
	<-ctx.Done()
	j.Logf("serve engine: stopping: draining requests and queue records")
	// The launcher bounds the whole drain by Job.Grace; the servers get most of it.
	grace := j.Grace
	if grace <= 0 {
		grace = launcher.DefaultGrace
	}
	dctx, cancel := context.WithTimeout(context.Background(), grace*9/10)
	defer cancel()
	return s.Stop(dctx)
}

// readInput reads a decrypted input file from its sealed memfd.
func readInput(inputs map[string]launcher.Input, name string) ([]byte, error) {
	in, ok := inputs[name]
	if !ok || in.IsDir || len(in.Files) != 1 || in.Files[0].Mem == nil {
		return nil, fmt.Errorf("input %s: want one decrypted file", name)
	}
	f := in.Files[0].Mem
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f.OSFile(), 0, size), b); err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	return b, nil
}

// Config is a serving job outside the launcher's wrapping (tests and benchmarks use it
// directly).
type Config struct {
	Params    *servespec.Params
	JobDigest []byte
	Attester  attest.Attester
	// Threads is the number of model calls in flight per model (≤ 0: 1).
	Threads int
	// Memory (resources.memory; 0: none) bounds what TorchScript models allocate on
	// libtorch, beside Held bytes the job holds otherwise (its decrypted inputs).
	Memory, Held int64
	// Input returns a manifest input's plaintext (a model file, a record key).
	Input func(name string) ([]byte, error)
	Logf  func(format string, args ...any)
	// KeyService (a runner's client) and Manifest (the manifest as attested, which the
	// service digests) are needed when the deployment CA issues the certificate.
	KeyService *client.Client
	Manifest   []byte
}

// Server is a running serving job.
type Server struct {
	Registry *model.Registry
	// Identity is the self-certified attested identity (certificate.issuer self) and
	// CAIdentity the one the deployment CA issues (deployment-ca); the other is nil.
	Identity   *attestedtls.Identity
	CAIdentity *client.Identity
	Net        *server.Server
	Gatherer   *prometheus.Registry

	redis       *redis.Client
	queueCancel context.CancelFunc
	queueDone   chan struct{}
	logf        func(format string, args ...any)
	stopped     atomic.Bool
}

// Start loads the models, obtains the attested certificate and starts the listeners and the
// queue worker.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	p := cfg.Params
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	threads := max(cfg.Threads, 1)
	prom := prometheus.NewRegistry()
	prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mets := metrics.New(prom)
	s := &Server{Registry: model.NewRegistry(), Gatherer: prom, logf: logf}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	for _, m := range p.Models {
		b, err := cfg.Input(m.Input)
		if err != nil {
			return nil, fmt.Errorf("serve engine: model %s: %w", m.Name, err)
		}
		var limit int64
		if cfg.Memory > 0 {
			if limit = cfg.Memory - cfg.Held; limit <= 0 {
				return nil, fmt.Errorf("serve engine: the decrypted inputs (%d MiB) take all of resources.memory (%d MiB)", cfg.Held>>20, cfg.Memory>>20)
			}
		}
		tm, err := model.Load(b, model.LoadOptions{Name: m.Name, Version: m.Version, Threads: threads, MaxBatch: m.MaxBatch,
			Declared: m.Declared, Backend: m.Backend, MemoryLimit: limit})
		clear(b)
		if err != nil {
			return nil, fmt.Errorf("serve engine: model %s version %s (input %s): %w", m.Name, m.Version, m.Input, err)
		}
		if _, err := s.Registry.Add(tm, model.BatchOptions{MaxBatch: m.MaxBatch, MaxDelay: m.MaxDelay, Workers: threads,
			Observe: mets.BatchObserver(m.Name)}); err != nil {
			tm.Close()
			return nil, fmt.Errorf("serve engine: %w", err)
		}
		md := tm.Metadata()
		var ins []string
		for _, in := range md.Inputs {
			ins = append(ins, fmt.Sprintf("%s %s %v", in.Name, in.DataType, in.Shape))
		}
		logf("serve engine: model %s version %s (%s, input %s) loaded", m.Name, m.Version, md.Platform, strings.Join(ins, ", "))
	}

	tlsConfig, err := s.certify(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("serve engine: %w", err)
	}

	l := p.Limits
	s.Net, err = server.Start(server.Config{Registry: s.Registry, TLS: tlsConfig,
		HTTPAddr: p.HTTP, GRPCAddr: p.GRPC, PredictModel: p.PredictModel, Name: "ppml", Version: "1",
		Limits: server.Limits{MaxRequestBytes: l.MaxRequestBytes, RequestTimeout: l.RequestTimeout,
			ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout, WriteTimeout: l.WriteTimeout,
			IdleTimeout: l.IdleTimeout, MaxConnections: l.MaxConnections},
		Metrics: mets, Gatherer: prom, Log: func(f string, a ...any) { logf("serve engine: "+f, a...) }})
	if err != nil {
		return nil, fmt.Errorf("serve engine: %w", err)
	}

	if q := p.Queue; q != nil {
		var keys record.Keyring
		for _, name := range q.RecordKeys {
			b, err := cfg.Input(name)
			if err != nil {
				return nil, fmt.Errorf("serve engine: record key: %w", err)
			}
			k, err := parseRecordKey(b)
			clear(b)
			if err != nil {
				return nil, fmt.Errorf("serve engine: record key (input %s): %w", name, err)
			}
			keys = append(keys, k)
		}
		s.redis = redis.NewClient(&redis.Options{Addr: q.Redis, MaxRetries: -1})
		w, err := queue.New(queue.Config{Redis: s.redis, Stream: q.Stream, Registry: s.Registry, Model: q.Model,
			Keys: keys, AllowPlaintext: q.AllowPlaintext, ClaimIdle: q.ClaimIdle, MaxDeliveries: int64(q.MaxDeliveries),
			ResultTTL: q.ResultTTL, Metrics: mets, Log: func(f string, a ...any) { logf("serve engine: "+f, a...) }})
		if err != nil {
			return nil, fmt.Errorf("serve engine: %w", err)
		}
		qctx, cancel := context.WithCancel(context.Background())
		s.queueCancel, s.queueDone = cancel, make(chan struct{})
		go func() {
			defer close(s.queueDone)
			w.Run(qctx)
		}()
		if q.AllowPlaintext {
			logf("serve engine: WARNING: queue %s accepts plaintext records", q.Stream)
		}
	}
	return s, nil
}

// parseRecordKey reads a serving record key file: 32 bytes, or 64 hex digits (a trailing
// newline allowed).
func parseRecordKey(b []byte) (*record.Key, error) {
	if len(b) != 32 {
		t := strings.TrimSpace(string(b))
		raw, err := hex.DecodeString(t)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("a record key file holds 32 bytes or 64 hex digits, not %d bytes", len(b))
		}
		defer clear(raw)
		return record.NewKey(raw)
	}
	return record.NewKey(b)
}

func spkiPin(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// certify obtains the first serving certificate from the issuer the job names and returns
// the TLS configuration that presents the newest one (tls.Config.GetCertificate): a renewal
// changes what new handshakes get and leaves established connections alone.
func (s *Server) certify(ctx context.Context, cfg Config) (*tls.Config, error) {
	p, logf := cfg.Params, s.logf
	if p.Certificate.Issuer != servespec.IssuerDeploymentCA {
		id, err := attestedtls.NewIdentity(ctx, cfg.Attester, cfg.JobDigest, attestedtls.Options{Hosts: p.Hosts, Validity: p.Validity})
		if err != nil {
			return nil, err
		}
		s.Identity = id
		id.OnRenew(func(c *tls.Certificate, err error) {
			if err != nil {
				logf("serve engine: renewing the attested certificate failed (the current one stays until it expires): %v", err)
			} else {
				logf("serve engine: attested certificate renewed, key sha256:%s, valid until %s",
					spkiPin(c.Leaf), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
		})
		leaf := id.Certificate().Leaf
		logf("serve engine: attested TLS certificate from %s evidence, key sha256:%s, valid until %s",
			cfg.Attester.Name(), spkiPin(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
		return id.ServerConfig(), nil
	}

	ct := p.Certificate
	if cfg.KeyService == nil {
		return nil, fmt.Errorf("certificate.issuer %s: the certificate comes from the key service's deployment CA, and this run has no key service: run with --server (and a runner token)", servespec.IssuerDeploymentCA)
	}
	o := client.CertOptions{Policy: ct.Policy, Role: ct.Role, TTL: p.Validity}
	for _, h := range p.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			o.IPAddresses = append(o.IPAddresses, ip)
		} else {
			o.DNSNames = append(o.DNSNames, h)
		}
	}
	id, err := cfg.KeyService.NewIdentity(ctx, cfg.Attester, cfg.Manifest, cfg.JobDigest, o)
	if err != nil {
		return nil, fmt.Errorf("serving certificate from the deployment CA (certificate policy %s, role %s, hosts %s): %w",
			ct.Policy, ct.Role, strings.Join(p.Hosts, ", "), err)
	}
	s.CAIdentity = id
	id.OnRenew(func(c *client.Cert, err error) {
		if err != nil {
			logf("serve engine: renewing the serving certificate failed (the current one stays; retried with back-off): %v", err)
		} else {
			logf("serve engine: serving certificate renewed: serial %x, key sha256:%s, valid until %s",
				c.Leaf.SerialNumber, spkiPin(c.Leaf), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	})
	c := id.Current()
	logf("serve engine: serving certificate from deployment CA %q after %s attestation: policy %s version %d, role %s, serial %x, key sha256:%s, valid until %s",
		c.CA.Subject.CommonName, cfg.Attester.Name(), c.Identity.Policy, c.Identity.PolicyVersion, c.Identity.Role,
		c.Leaf.SerialNumber, spkiPin(c.Leaf), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.Certificate() },
	}, nil
}

// Stop drains and stops: the listeners finish admitted requests, the queue worker answers
// the records it read, and the models are closed. ctx bounds the drain.
func (s *Server) Stop(ctx context.Context) error {
	if !s.stopped.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	var wg sync.WaitGroup
	var queueErr error
	if s.queueCancel != nil {
		s.queueCancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-s.queueDone:
			case <-ctx.Done():
				queueErr = errors.New("the queue worker did not finish its records in time")
			}
		}()
	}
	if s.Net != nil {
		if err := s.Net.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	wg.Wait()
	if queueErr != nil {
		errs = append(errs, queueErr)
	}
	s.close()
	if len(errs) > 0 {
		return fmt.Errorf("serve engine: drain: %w", errors.Join(errs...))
	}
	s.logf("serve engine: drained")
	return nil
}

func (s *Server) close() {
	if s.Net != nil {
		s.Net.Close()
	}
	if s.queueCancel != nil {
		s.queueCancel()
		select {
		case <-s.queueDone:
		case <-time.After(5 * time.Second): // a stuck Redis call; the process ends soon
		}
	}
	if s.redis != nil {
		s.redis.Close()
	}
	if s.Identity != nil {
		s.Identity.Close()
	}
	if s.CAIdentity != nil {
		s.CAIdentity.Close()
	}
	s.Registry.Close()
}
