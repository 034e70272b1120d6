// Package servespec reads the serve engine's manifest parameters (docs/serve.md, "Jobs"): the
// models to serve and the manifest inputs holding them, the HTTPS and gRPC listeners, the
// names on the attested certificate, request limits and the optional Cluster Serving queue.
// It is the pure-Go half of the serve engine (engine/serve runs the servers and links
// XGBoost): the key service and the CLI use it to compute job digests.
package servespec

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/ppml/ppml/dl/declared"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
)

// Name is the manifest's engine value.
const Name = "serve"

// Defaults.
const (
	DefaultVersion         = "1"
	DefaultMaxBatch        = 64
	DefaultHTTP            = "0.0.0.0:8443"
	DefaultGRPC            = "0.0.0.0:8444"
	DefaultValidity        = 24 * time.Hour
	DefaultMaxRequestBytes = 64 << 20
	DefaultRequestTimeout  = 30 * time.Second
	DefaultHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout     = 60 * time.Second
	DefaultWriteTimeout    = 60 * time.Second
	DefaultIdleTimeout     = 120 * time.Second
	DefaultMaxConnections  = 4096
	DefaultStream          = "serving_stream"
	DefaultClaimIdle       = 30 * time.Second
	DefaultMaxDeliveries   = 3
	DefaultRole            = "serve"
	// Off disables a listener.
	Off = "off"
	// MaxModels bounds the models of one job.
	MaxModels = 64
)

// Issuers of the serving certificate (certificate.issuer).
const (
	// IssuerSelf: the TEE certifies its own key with its evidence in an extension of a
	// self-signed certificate (attested TLS, docs/formats/attested-tls.md). The default.
	IssuerSelf = "self"
	// IssuerDeploymentCA: the key service's deployment CA issues the certificate after
	// attestation, under a certificate policy (docs/cluster.md); clients verify it with the
	// CA bundle like any TLS server certificate.
	IssuerDeploymentCA = "deployment-ca"
)

// Params are a validated serve job.
type Params struct {
	Models []Model
	// HTTP and GRPC are listen addresses ("" when Off).
	HTTP, GRPC string
	// Hosts are the DNS names and IP addresses the attested certificate names.
	Hosts []string
	// Validity is the certificate's lifetime; it is renewed at two thirds. With the
	// deployment CA the policy's lifetime, when shorter, wins.
	Validity time.Duration
	// Certificate says who issues the serving certificate.
	Certificate Certificate
	// PredictModel is the model Cluster Serving's POST /predict serves.
	PredictModel string
	Limits       Limits
	Queue        *Queue
}

// Model is one served model version.
type Model struct {
	Name, Version string
	// Input is the manifest input holding the model file (a ppml model, XGBoost JSON
	// with feature names, or a ppml linear model).
	Input string
	// MaxBatch is the most rows a dynamic batch joins (1: no batching); MaxDelay how long a
	// batch that is not full waits for more.
	MaxBatch int
	MaxDelay time.Duration
	// Declared describes a TorchScript file without ppml metadata (models[].torchscript):
	// its architecture, input and output, so that it is served on libtorch (ppml-run-dl).
	Declared *declared.Model
	// Backend is the backend that must load the file (models[].backend): BackendTorchScript
	// (a dl model, on libtorch: the job runs in ppml-run-dl), BackendTabular, or "" for the
	// one that recognizes the file. A declared model's is BackendTorchScript.
	Backend string
}

// Backends a model entry may name (serve/model's backend names).
const (
	BackendTorchScript = "torchscript"
	BackendTabular     = "tabular"
)

// Certificate says who certifies the serving TLS key.
type Certificate struct {
	Issuer string // IssuerSelf or IssuerDeploymentCA
	// Policy (TENANT/NAME) and Role are the certificate policy the deployment CA issues
	// under and the worker role the certificate names (deployment CA only).
	Policy, Role string
}

// Limits bound each client.
type Limits struct {
	MaxRequestBytes                                                           int64
	RequestTimeout, ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxConnections                                                            int
}

// Queue is a Cluster Serving queue the job serves.
type Queue struct {
	Redis  string // host:port
	Stream string
	Model  string
	// RecordKeys are the manifest inputs holding the serving record keys (32 bytes, or 64
	// hex digits).
	RecordKeys     []string
	AllowPlaintext bool
	ClaimIdle      time.Duration
	MaxDeliveries  int
	ResultTTL      time.Duration
}

// Spec is the serve engine's job.Spec.
var Spec job.Spec = spec{}

type spec struct{}

func (spec) Name() string { return Name }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseParameters reads the parameters section.
func (spec) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required for engine serve (at least models)")
		return nil
	}
	fs, ok := n.CheckedFields(c, "models", "listen", "hosts", "certificate_validity", "certificate", "predict_model", "limits", "queue")
	if !ok {
		return nil
	}
	p := &Params{HTTP: DefaultHTTP, GRPC: DefaultGRPC, Hosts: []string{"localhost", "127.0.0.1"}, Validity: DefaultValidity,
		Certificate: Certificate{Issuer: IssuerSelf},
		Limits: Limits{MaxRequestBytes: DefaultMaxRequestBytes, RequestTimeout: DefaultRequestTimeout, ReadHeaderTimeout: DefaultHeaderTimeout,
			ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout, MaxConnections: DefaultMaxConnections}}
	mn, ok := fs["models"]
	if !ok {
		c.Failf(n.Missing("models"), "required: the models to serve, each with a name and the input holding it")
	} else {
		p.Models = parseModels(mn, c)
	}
	if ln, ok := fs["listen"]; ok {
		lf, ok := ln.CheckedFields(c, "http", "grpc")
		if ok {
			if v, ok := str(lf, "http", c); ok {
				p.HTTP = listenAddr(lf["http"], v, c)
			}
			if v, ok := str(lf, "grpc", c); ok {
				p.GRPC = listenAddr(lf["grpc"], v, c)
			}
			if p.HTTP == "" && p.GRPC == "" {
				c.Failf(ln, "both listeners are off: nothing would be served")
			}
		}
	}
	if hn, ok := fs["hosts"]; ok {
		hosts, nodes, err := hn.StrList()
		if err != nil {
			c.Add(err)
		} else if len(hosts) == 0 {
			c.Failf(hn, "must not be empty (leave it out for localhost and 127.0.0.1)")
		} else {
			for i, h := range hosts {
				if h == "" || len(h) > 253 {
					c.Failf(nodes[i], "%q: want a DNS name or an IP address", h)
				}
			}
			p.Hosts = hosts
		}
	}
	p.Validity = duration(fs, "certificate_validity", p.Validity, 5*time.Minute, 90*24*time.Hour, c)
	if cn, ok := fs["certificate"]; ok {
		p.Certificate = parseCertificate(cn, c)
	}
	if v, ok := str(fs, "predict_model", c); ok {
		p.PredictModel = v
	}
	if lim, ok := fs["limits"]; ok {
		parseLimits(lim, &p.Limits, c)
	}
	if qn, ok := fs["queue"]; ok {
		p.Queue = parseQueue(qn, c)
	}
	if len(p.Models) == 0 {
		return p
	}
	known := map[string]bool{}
	for _, m := range p.Models {
		known[m.Name] = true
	}
	if p.PredictModel == "" {
		p.PredictModel = p.Models[0].Name
	} else if !known[p.PredictModel] {
		c.Failf(fs["predict_model"], "%q is not one of the models", p.PredictModel)
	}
	if p.Queue != nil {
		if p.Queue.Model == "" {
			p.Queue.Model = p.PredictModel
		} else if !known[p.Queue.Model] {
			c.Failf(fs["queue"], "model %q is not one of the models", p.Queue.Model)
		}
	}
	return p
}

func parseModels(mn job.Node, c *job.Checker) []Model {
	items, err := mn.Items()
	if err != nil {
		c.Add(err)
		return nil
	}
	if len(items) == 0 || len(items) > MaxModels {
		c.Failf(mn, "%d models: want 1 to %d", len(items), MaxModels)
		return nil
	}
	var out []Model
	seen := map[string]bool{}
	for _, it := range items {
		f, ok := it.CheckedFields(c, "name", "version", "input", "max_batch", "max_delay", "backend", "torchscript")
		if !ok {
			continue
		}
		m := Model{Version: DefaultVersion, MaxBatch: DefaultMaxBatch}
		if v, ok := str(f, "name", c); ok {
			m.Name = v
			if !nameRE.MatchString(v) {
				c.Failf(f["name"], "%q: want 1 to 64 letters, digits, '_', '.' or '-'", v)
			}
		} else if _, there := f["name"]; !there {
			c.Failf(it.Missing("name"), "required")
		}
		if v, ok := str(f, "version", c); ok {
			m.Version = v
			if !nameRE.MatchString(v) {
				c.Failf(f["version"], "%q: want 1 to 64 letters, digits, '_', '.' or '-'", v)
			}
		}
		if v, ok := str(f, "input", c); ok {
			m.Input = v
		} else if _, there := f["input"]; !there {
			c.Failf(it.Missing("input"), "required: the manifest input holding the model file")
		}
		if bn, ok := f["max_batch"]; ok {
			if v, err := bn.Int(); err != nil {
				c.Add(err)
			} else if v < 1 || v > 65536 {
				c.Failf(bn, "%d: want 1 (no batching) to 65536", v)
			} else {
				m.MaxBatch = int(v)
			}
		}
		m.MaxDelay = duration(f, "max_delay", 0, 0, time.Second, c)
		if v, ok := str(f, "backend", c); ok {
			switch v {
			case BackendTorchScript, BackendTabular:
				m.Backend = v
			default:
				c.Failf(f["backend"], "%q: want %s (a dl model, a PyTorch archive: served on libtorch, in ppml-run-dl) or %s (a ppml XGBoost or linear model)", v, BackendTorchScript, BackendTabular)
			}
		}
		if tn, ok := f["torchscript"]; ok {
			m.Declared = declared.Parse(tn, c)
			if m.Backend == BackendTabular {
				c.Failf(f["backend"], "a model declared with torchscript is served by the %s backend", BackendTorchScript)
			}
			m.Backend = BackendTorchScript
		}
		key := m.Name + "\x00" + m.Version
		if seen[key] {
			c.Failf(it, "model %q version %q is listed twice", m.Name, m.Version)
		}
		seen[key] = true
		out = append(out, m)
	}
	return out
}

func parseCertificate(n job.Node, c *job.Checker) Certificate {
	out := Certificate{Issuer: IssuerSelf}
	f, ok := n.CheckedFields(c, "issuer", "policy", "role")
	if !ok {
		return out
	}
	if v, ok := str(f, "issuer", c); ok {
		switch v {
		case IssuerSelf, IssuerDeploymentCA:
			out.Issuer = v
		default:
			c.Failf(f["issuer"], "%q: want %s (attested TLS: the TEE's evidence in a self-signed certificate) or %s (the key service's deployment CA, after attestation)", v, IssuerSelf, IssuerDeploymentCA)
			return out
		}
	}
	policyName, hasPolicy := str(f, "policy", c)
	role, hasRole := str(f, "role", c)
	if out.Issuer == IssuerSelf {
		for _, name := range []string{"policy", "role"} {
			if fn, there := f[name]; there {
				c.Failf(fn, "only for issuer %s: a self-signed attested certificate names no certificate policy or role", IssuerDeploymentCA)
			}
		}
		return out
	}
	if hasPolicy {
		if err := api.CheckCertPolicyName(policyName); err != nil {
			c.Failf(f["policy"], "%v", err)
		}
		out.Policy = policyName
	} else if _, there := f["policy"]; !there {
		c.Failf(n.Missing("policy"), "required for issuer %s: the certificate policy (TENANT/NAME) that admits this job", IssuerDeploymentCA)
	}
	out.Role = DefaultRole
	if hasRole {
		if err := policy.CheckRole(role); err != nil {
			c.Failf(f["role"], "%v", err)
		}
		out.Role = role
	}
	return out
}

func parseLimits(n job.Node, l *Limits, c *job.Checker) {
	f, ok := n.CheckedFields(c, "max_request_bytes", "request_timeout", "read_header_timeout", "read_timeout", "write_timeout", "idle_timeout", "max_connections")
	if !ok {
		return
	}
	if bn, ok := f["max_request_bytes"]; ok {
		if v, err := bn.Int(); err != nil {
			c.Add(err)
		} else if v < 1<<10 || v > 1<<30 {
			c.Failf(bn, "%d: want 1024 to 1073741824", v)
		} else {
			l.MaxRequestBytes = v
		}
	}
	l.RequestTimeout = duration(f, "request_timeout", l.RequestTimeout, time.Millisecond, time.Hour, c)
	l.ReadHeaderTimeout = duration(f, "read_header_timeout", l.ReadHeaderTimeout, 100*time.Millisecond, 10*time.Minute, c)
	l.ReadTimeout = duration(f, "read_timeout", l.ReadTimeout, 100*time.Millisecond, time.Hour, c)
	l.WriteTimeout = duration(f, "write_timeout", l.WriteTimeout, 100*time.Millisecond, time.Hour, c)
	l.IdleTimeout = duration(f, "idle_timeout", l.IdleTimeout, time.Second, 24*time.Hour, c)
	if cn, ok := f["max_connections"]; ok {
		if v, err := cn.Int(); err != nil {
			c.Add(err)
		} else if v < 1 || v > 1<<20 {
			c.Failf(cn, "%d: want 1 to 1048576", v)
		} else {
			l.MaxConnections = int(v)
		}
	}
}

func parseQueue(n job.Node, c *job.Checker) *Queue {
	f, ok := n.CheckedFields(c, "redis", "stream", "model", "record_keys", "allow_plaintext", "claim_idle", "max_deliveries", "result_ttl")
	if !ok {
		return nil
	}
	q := &Queue{Stream: DefaultStream, ClaimIdle: DefaultClaimIdle, MaxDeliveries: DefaultMaxDeliveries}
	if v, ok := str(f, "redis", c); ok {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			c.Failf(f["redis"], "%q: want host:port of the Redis server", v)
		}
		q.Redis = v
	} else if _, there := f["redis"]; !there {
		c.Failf(n.Missing("redis"), "required: host:port of the Redis server")
	}
	if v, ok := str(f, "stream", c); ok {
		if v == "" || len(v) > 200 {
			c.Failf(f["stream"], "%q: want a stream name of 1 to 200 bytes", v)
		}
		q.Stream = v
	}
	if v, ok := str(f, "model", c); ok {
		q.Model = v
	}
	if kn, ok := f["record_keys"]; ok {
		keys, _, err := kn.StrList()
		if err != nil {
			c.Add(err)
		}
		q.RecordKeys = keys
	}
	if pn, ok := f["allow_plaintext"]; ok {
		v, err := pn.Str()
		switch {
		case err != nil:
			c.Add(err)
		case v == "true":
			q.AllowPlaintext = true
		case v == "false":
		default:
			c.Failf(pn, "%q: want true or false", v)
		}
	}
	if len(q.RecordKeys) == 0 && !q.AllowPlaintext {
		c.Failf(n, "record_keys: required unless allow_plaintext is true (Redis runs outside the TEE: records are encrypted)")
	}
	q.ClaimIdle = duration(f, "claim_idle", q.ClaimIdle, time.Second, 24*time.Hour, c)
	if dn, ok := f["max_deliveries"]; ok {
		if v, err := dn.Int(); err != nil {
			c.Add(err)
		} else if v < 1 || v > 100 {
			c.Failf(dn, "%d: want 1 to 100", v)
		} else {
			q.MaxDeliveries = int(v)
		}
	}
	q.ResultTTL = duration(f, "result_ttl", 0, 0, 365*24*time.Hour, c)
	return q
}

func str(f map[string]job.Node, name string, c *job.Checker) (string, bool) {
	n, ok := f[name]
	if !ok {
		return "", false
	}
	v, err := n.Str()
	if err != nil {
		c.Add(err)
		return "", false
	}
	return v, true
}

// duration reads a Go duration ("30s", "250ms"); def when absent.
func duration(f map[string]job.Node, name string, def, lo, hi time.Duration, c *job.Checker) time.Duration {
	v, ok := str(f, name, c)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		c.Failf(f[name], "%q: want a duration from %s to %s, such as 30s or 250ms", v, lo, hi)
		return def
	}
	return d
}

func listenAddr(n job.Node, v string, c *job.Checker) string {
	if v == Off {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		c.Failf(n, "%q: want host:port (0.0.0.0:8443) or %s", v, Off)
		return v
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		c.Failf(n, "%q: port %q is not a number from 0 to 65535", v, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		c.Failf(n, "%q: listen on an IP address (0.0.0.0, 127.0.0.1) or localhost", v)
	}
	return v
}

// CheckManifest implements job.ManifestChecker: every model and record key names a file
// input, each input is used once, and the job writes no output.
func (p *Params) CheckManifest(m *job.Manifest, c *job.Checker) {
	inputs := map[string]bool{}
	for _, in := range m.Inputs {
		inputs[in.Name] = true
	}
	used := map[string]string{}
	use := func(name, by string) {
		if !inputs[name] {
			c.Add(&job.Problem{Field: "parameters", Message: fmt.Sprintf("%s names input %q, which the manifest does not have", by, name)})
			return
		}
		if prev, dup := used[name]; dup {
			c.Add(&job.Problem{Field: "parameters", Message: fmt.Sprintf("input %q is used by both %s and %s", name, prev, by)})
		}
		used[name] = by
	}
	for _, mo := range p.Models {
		use(mo.Input, fmt.Sprintf("model %s version %s", mo.Name, mo.Version))
	}
	if p.Queue != nil {
		for _, k := range p.Queue.RecordKeys {
			use(k, "queue.record_keys")
		}
	}
	for _, in := range m.Inputs {
		if _, ok := used[in.Name]; !ok {
			c.Add(&job.Problem{Line: in.Line, Field: "inputs", Message: fmt.Sprintf("input %q is neither a model nor a record key of the serve job", in.Name)})
		}
	}
	for _, o := range m.Outputs {
		c.Add(&job.Problem{Line: o.Line, Field: "outputs", Message: fmt.Sprintf("output %q: a serve job writes no outputs", o.Name)})
	}
}

// UsesLibtorch reports whether the job has a TorchScript model — declared (torchscript) or
// named (backend: torchscript): such a job runs in the runtime with libtorch (ppml-run-dl),
// which `ppml run` then picks by itself. The file itself is encrypted; the manifest says.
func (p *Params) UsesLibtorch() bool {
	for _, m := range p.Models {
		if m.Backend == BackendTorchScript {
			return true
		}
	}
	return false
}

// Canonical implements job.Parameters: every default explicit.
func (p *Params) Canonical() map[string]any {
	models := []any{}
	for _, m := range p.Models {
		mo := map[string]any{"name": m.Name, "version": m.Version, "input": m.Input,
			"max_batch": int64(m.MaxBatch), "max_delay": m.MaxDelay.String()}
		// Only a declared model names the section, so that jobs written before it existed keep
		// their digests.
		if m.Declared != nil {
			mo["torchscript"] = m.Declared.Canonical()
		} else if m.Backend != "" {
			// Likewise backend (a declared model's is torchscript, which its section says).
			mo["backend"] = m.Backend
		}
		models = append(models, mo)
	}
	hosts := []any{}
	for _, h := range p.Hosts {
		hosts = append(hosts, h)
	}
	off := func(s string) string {
		if s == "" {
			return Off
		}
		return s
	}
	out := map[string]any{
		"models":               models,
		"listen":               map[string]any{"http": off(p.HTTP), "grpc": off(p.GRPC)},
		"hosts":                hosts,
		"certificate_validity": p.Validity.String(),
		"predict_model":        p.PredictModel,
		"limits": map[string]any{
			"max_request_bytes":   p.Limits.MaxRequestBytes,
			"request_timeout":     p.Limits.RequestTimeout.String(),
			"read_header_timeout": p.Limits.ReadHeaderTimeout.String(),
			"read_timeout":        p.Limits.ReadTimeout.String(),
			"write_timeout":       p.Limits.WriteTimeout.String(),
			"idle_timeout":        p.Limits.IdleTimeout.String(),
			"max_connections":     int64(p.Limits.MaxConnections),
		},
	}
	// The issuer section appears only when it is not the default: serve jobs written before
	// it existed keep their digests, and writing issuer: self gives the same digest as
	// leaving it out (the default is no less explicit for being absent).
	if ct := p.Certificate; ct.Issuer == IssuerDeploymentCA {
		out["certificate"] = map[string]any{"issuer": ct.Issuer, "policy": ct.Policy, "role": ct.Role}
	}
	if q := p.Queue; q != nil {
		keys := []any{}
		for _, k := range q.RecordKeys {
			keys = append(keys, k)
		}
		out["queue"] = map[string]any{"redis": q.Redis, "stream": q.Stream, "model": q.Model, "record_keys": keys,
			"allow_plaintext": q.AllowPlaintext, "claim_idle": q.ClaimIdle.String(), "max_deliveries": int64(q.MaxDeliveries),
			"result_ttl": q.ResultTTL.String()}
	}
	return out
}
