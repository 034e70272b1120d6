package kms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/core"
)

// handlerFunc serves one route: it decodes the request, calls the core and
// returns what to encode (nil when it wrote the response itself).
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error)

// Handler returns the HTTP handler of the whole API (docs/api/openapi.yaml).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.Sealed() {
			http.Error(w, "sealed\n", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.route(mux, "GET /.well-known/jwks.json", "", s.jwks)
	s.route(mux, "GET /v1/sys/status", "", func(w http.ResponseWriter, r *http.Request, _ *core.Core, _ *core.Caller) (any, error) {
		return s.Status(), nil
	})
	s.route(mux, "POST /v1/sys/unseal", "", s.unseal)
	s.route(mux, "GET /v1/audit/public-key", "", s.auditPublicKey)

	s.route(mux, "POST /v1/tenants", api.RoleAdmin, withBody((*core.Core).CreateTenant))
	s.route(mux, "GET /v1/tenants", api.RoleAdmin, noBody((*core.Core).ListTenants))
	s.route(mux, "POST /v1/tokens", api.RoleAdmin, withBody((*core.Core).CreateToken))
	s.route(mux, "GET /v1/tokens", api.RoleAdmin, noBody((*core.Core).ListTokens))
	s.route(mux, "DELETE /v1/tokens/{id}", api.RoleAdmin, func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		return c.RevokeToken(r.Context(), who, r.PathValue("id"))
	})
	s.route(mux, "POST /v1/tokens/renew", "admin|owner|runner", withBody((*core.Core).RenewToken))

	s.route(mux, "POST /v1/keys", api.RoleOwner, withBody((*core.Core).CreateKey))
	s.route(mux, "GET /v1/keys", "owner|admin", noBody((*core.Core).ListKeys))
	s.route(mux, "POST /v1/keys/rotate", api.RoleOwner, withBody((*core.Core).RotateKey))
	s.route(mux, "POST /v1/keys/versions/disable", api.RoleOwner, withBody((*core.Core).DisableKeyVersion))
	s.route(mux, "POST /v1/keys/versions/enable", api.RoleOwner, withBody((*core.Core).EnableKeyVersion))
	s.route(mux, "POST /v1/keys/versions/destroy", api.RoleOwner, withBody((*core.Core).DestroyKeyVersion))
	s.route(mux, "GET /v1/keys/{name...}", "owner|runner|admin", publicKey)
	s.route(mux, "PUT /v1/policy", api.RoleOwner, setPolicy)
	s.route(mux, "GET /v1/policy", api.RoleOwner, func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		return c.GetPolicy(r.Context(), who, r.URL.Query().Get("key"))
	})
	s.route(mux, "POST /v1/datakey", api.RoleOwner, withBody((*core.Core).GenerateDataKey))
	s.route(mux, "POST /v1/decrypt", api.RoleOwner, withBody((*core.Core).Decrypt))

	s.route(mux, "POST /v1/attest/challenge", api.RoleRunner, noBody((*core.Core).Challenge))
	s.route(mux, "POST /v1/release", api.RoleRunner, withBody((*core.Core).Release))

	s.route(mux, "GET /v1/audit", "owner|admin", auditList)
	s.route(mux, "GET /v1/audit/head", "owner|admin|runner", noBody((*core.Core).AuditHead))
	s.route(mux, "GET /v1/audit/export", "owner|admin", s.auditExport)
	s.route(mux, "GET /v1/audit/proof", "owner|admin", auditProof)
	s.route(mux, "GET /v1/audit/consistency", "owner|admin", auditConsistency)
	s.route(mux, "GET /v1/sys/backup", api.RoleAdmin, s.backup)
	s.certRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeErr(w, core.Errorf(core.KindNotFound, "not_found", "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// withBody serves an operation whose request is the JSON body.
func withBody[Req any, Resp any](op func(*core.Core, context.Context, *core.Caller, *Req) (Resp, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		var req Req
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return op(c, r.Context(), who, &req)
	}
}

// noBody serves an operation that takes no request.
func noBody[Resp any](op func(*core.Core, context.Context, *core.Caller) (Resp, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		return op(c, r.Context(), who)
	}
}

// status maps a core error kind to its HTTP status.
var status = map[core.Kind]int{
	core.KindInternal:     http.StatusInternalServerError,
	core.KindBadRequest:   http.StatusBadRequest,
	core.KindUnauthorized: http.StatusUnauthorized,
	core.KindForbidden:    http.StatusForbidden,
	core.KindNotFound:     http.StatusNotFound,
	core.KindConflict:     http.StatusConflict,
	core.KindTooLarge:     http.StatusRequestEntityTooLarge,
	core.KindRateLimited:  http.StatusTooManyRequests,
	core.KindDenied:       http.StatusForbidden,
	core.KindUnavailable:  http.StatusServiceUnavailable,
}

func writeJSONResp(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	// Raw audit entries travel inside answers (receipts): HTML escaping
	// would change their bytes (<, >, & as \u003c...) and so their hash.
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeErr writes err as an api.Error with its status; an error that is
// not a *core.Error is the service's fault and says nothing more.
func (s *Server) writeErr(w http.ResponseWriter, err error) int {
	var ce *core.Error
	if !errors.As(err, &ce) {
		ce = core.Errorf(core.KindInternal, "internal", "internal error")
	}
	code, ok := status[ce.Kind]
	if !ok {
		code = http.StatusInternalServerError
	}
	writeJSONResp(w, code, ce.API())
	return code
}

func tooLarge() error {
	return core.Errorf(core.KindTooLarge, "too_large", "request body larger than %d bytes", api.MaxBodySize)
}

// route wraps h with the body limit, the sealing check, authentication
// (roles "" means none, else "role|role"), rate limiting, logging and
// metrics.
func (s *Server) route(mux *http.ServeMux, pattern, roles string, h handlerFunc) {
	name := pattern
	public := roles == ""
	unsealRoute := strings.HasSuffix(pattern, "/v1/sys/status") || strings.HasSuffix(pattern, "/v1/sys/unseal")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodySize)
		var who *core.Caller
		code := http.StatusOK
		defer func() {
			d := time.Since(start)
			s.metrics.latency.WithLabelValues(name).Observe(d.Seconds())
			s.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			attrs := []any{"route", name, "status", code, "duration_ms", float64(d.Microseconds()) / 1000}
			if who != nil {
				attrs = append(attrs, "token_id", who.TokenID, "tenant", who.Tenant)
			}
			s.logger.Info("request", attrs...)
		}()
		// Requests without an accepted token are limited by source address:
		// the routes that need none, and every request once this address's
		// refused tokens have used up its bucket.
		addr := sourceAddr(r)
		if public && !s.addrs.allow(addr) || !public && s.addrs.blocked(addr) {
			code = s.rateLimited(w, "address", "too many requests without an accepted API token from this address; slow down")
			return
		}
		c := s.core.Load()
		if c == nil && !unsealRoute {
			code = s.writeErr(w, core.Errorf(core.KindUnavailable, "sealed", "the key service is sealed: operators must unseal it (ppml server unseal)"))
			return
		}
		if !public {
			var err error
			if who, err = s.authenticate(r, c, roles); err != nil {
				s.metrics.authFailed.Inc()
				s.addrs.allow(addr)
				code = s.writeErr(w, err)
				return
			}
			if !s.limiter.allow(who.TokenID) {
				code = s.rateLimited(w, "token", "too many requests for this API token; slow down")
				return
			}
		}
		v, err := h(w, r, c, who)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = tooLarge()
			}
			var ce *core.Error
			if !errors.As(err, &ce) {
				s.logger.Error("request failed", "route", name, "error", err.Error())
			}
			code = s.writeErr(w, err)
			return
		}
		if v == nil { // the handler wrote the response
			return
		}
		writeJSONResp(w, http.StatusOK, v)
	})
}

func (s *Server) rateLimited(w http.ResponseWriter, by, msg string) int {
	s.metrics.rateLimited.WithLabelValues(by).Inc()
	w.Header().Set("Retry-After", "1")
	return s.writeErr(w, core.Errorf(core.KindRateLimited, "rate_limited", "%s", msg))
}

// sourceAddr is the request's remote IP address (forwarding headers are
// not trusted: a proxy in front should rate-limit by itself).
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate reads the bearer token and checks the route's roles before
// anything of the request is read.
func (s *Server) authenticate(r *http.Request, c *core.Core, roles string) (*core.Caller, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, core.Errorf(core.KindUnauthorized, "unauthorized", "missing API token (Authorization: Bearer TOKEN)")
	}
	who, err := c.Authenticate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if err := core.Require(who, strings.Split(roles, "|")...); err != nil {
		return nil, err
	}
	return who, nil
}

// decode reads the JSON body into v (api.Decode: bounded, strict, checked).
func decode(r *http.Request, v any) error {
	if err := api.Decode(r.Body, v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		if errors.Is(err, api.ErrTooLarge) {
			return core.Errorf(core.KindTooLarge, "too_large", "%v", err)
		}
		return core.Errorf(core.KindBadRequest, "bad_request", "%v", err)
	}
	return nil
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request, c *core.Core, _ *core.Caller) (any, error) {
	return c.JWKS(), nil
}

func (s *Server) auditPublicKey(w http.ResponseWriter, r *http.Request, c *core.Core, _ *core.Caller) (any, error) {
	b, err := audit.MarshalPublicKey(c.AuditPublicKey())
	if err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(b)
	return nil, nil
}

func (s *Server) unseal(w http.ResponseWriter, r *http.Request, _ *core.Core, _ *core.Caller) (any, error) {
	var req api.UnsealRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	st, err := s.Unseal(req.Share)
	if err != nil {
		return nil, core.Errorf(core.KindBadRequest, "bad_share", "%v", err)
	}
	return st, nil
}

// setPolicy takes the policy document (YAML or JSON) as the body, as is.
func setPolicy(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, core.Errorf(core.KindTooLarge, "too_large", "policy larger than %d bytes", api.MaxBodySize)
		}
		return nil, core.Errorf(core.KindBadRequest, "bad_request", "%v", err)
	}
	return c.SetPolicy(r.Context(), who, r.URL.Query().Get("key"), doc)
}

// publicKey serves GET /v1/keys/NAME/public[?version=N]; key names may
// hold slashes, so the route takes the rest of the path.
func publicKey(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	name, ok := strings.CutSuffix(r.PathValue("name"), "/public")
	if !ok {
		return nil, core.Errorf(core.KindNotFound, "not_found", "no route %s %s", r.Method, r.URL.Path)
	}
	var v uint32
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.ParseUint(q, 10, 32)
		if err != nil || n == 0 {
			return nil, core.Errorf(core.KindBadRequest, "bad_request", "version %q: want a number from 1 to 4294967295", q)
		}
		v = uint32(n)
	}
	return c.PublicKey(r.Context(), who, name, v)
}

func auditList(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	q := r.URL.Query()
	from, _ := strconv.ParseUint(q.Get("from"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	return c.AuditList(r.Context(), who, core.AuditQuery{Key: q.Get("key"), Tenant: q.Get("tenant"), From: from, Limit: limit})
}

func auditProof(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil {
		return nil, core.Errorf(core.KindBadRequest, "bad_request", "give ?index=N (an entry index)")
	}
	return c.AuditProof(r.Context(), who, idx)
}

func auditConsistency(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	from, err := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	if err != nil {
		return nil, core.Errorf(core.KindBadRequest, "bad_request", "give ?from=SIZE (the size of the tree head you hold)")
	}
	return c.AuditConsistency(r.Context(), who, from)
}

// auditExport streams the whole log (admin), or with ?key= or ?tenant=
// the trail export of those trails (owner: its own), with a consistency
// proof from each ?from= size.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	q := r.URL.Query()
	tw := &trackWriter{w: w}
	w.Header().Set("Content-Type", "application/x-ndjson")
	var err error
	if q.Has("key") || q.Has("tenant") {
		tq := core.TrailQuery{Keys: q["key"], Tenant: q.Get("tenant")}
		for _, f := range q["from"] {
			n, perr := strconv.ParseUint(f, 10, 64)
			if perr != nil {
				return nil, core.Errorf(core.KindBadRequest, "bad_request", "from=%s: give the size of a tree head you trust", strconv.Quote(f))
			}
			tq.From = append(tq.From, n)
		}
		err = c.AuditTrail(r.Context(), who, tq, tw)
	} else {
		err = c.AuditExport(r.Context(), who, tw)
	}
	if err != nil && !tw.wrote {
		return nil, err
	}
	if err != nil {
		// Headers are gone; the truncated stream fails verification.
		s.logger.Error("audit export failed", "error", err.Error())
	}
	return nil, nil
}

// trackWriter says whether anything was written, so that an error before
// the first byte can still be answered with its status.
type trackWriter struct {
	w     io.Writer
	wrote bool
}

func (t *trackWriter) Write(p []byte) (int, error) {
	t.wrote = t.wrote || len(p) > 0
	return t.w.Write(p)
}

// backup streams a consistent copy of the database, as encrypted as the
// database itself (restoring it needs the same root key and seal.json).
func (s *Server) backup(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := c.Backup(r.Context(), who, w); err != nil {
		s.logger.Error("backup failed", "error", err.Error())
	}
	return nil, nil
}

// shutdown stops srv, giving in-flight requests up to d.
func shutdown(srv *http.Server, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return srv.Shutdown(ctx)
}
