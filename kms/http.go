package kms

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/store"
)

// httpError is an API error with its status.
type httpError struct {
	status int
	body   api.Error
}

func (e *httpError) Error() string { return e.body.Message }

func apiErr(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, body: api.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func badRequest(err error) *httpError {
	if errors.Is(err, api.ErrTooLarge) {
		return apiErr(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	}
	return apiErr(http.StatusBadRequest, "bad_request", "%v", err)
}

type caller struct {
	tokenID string
	tenant  string
	role    string
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error)

// Handler returns the HTTP handler of the whole API.
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
	s.routePublic(mux, "GET /v1/sys/status", func(w http.ResponseWriter, r *http.Request) (any, error) { return s.Status(), nil })
	s.routePublic(mux, "POST /v1/sys/unseal", s.unseal)
	s.route(mux, "GET /v1/audit/public-key", "", s.auditPublicKey)

	s.route(mux, "POST /v1/tenants", api.RoleAdmin, s.createTenant)
	s.route(mux, "GET /v1/tenants", api.RoleAdmin, s.listTenants)
	s.route(mux, "POST /v1/tokens", api.RoleAdmin, s.createToken)
	s.route(mux, "GET /v1/tokens", api.RoleAdmin, s.listTokens)
	s.route(mux, "DELETE /v1/tokens/{id}", api.RoleAdmin, s.revokeToken)

	s.route(mux, "POST /v1/keys", api.RoleOwner, s.createKey)
	s.route(mux, "GET /v1/keys", "owner|admin", s.listKeys)
	s.route(mux, "POST /v1/keys/rotate", api.RoleOwner, s.rotateKey)
	s.route(mux, "PUT /v1/policy", api.RoleOwner, s.setPolicy)
	s.route(mux, "GET /v1/policy", api.RoleOwner, s.getPolicy)
	s.route(mux, "POST /v1/datakey", api.RoleOwner, s.generateDataKey)
	s.route(mux, "POST /v1/decrypt", api.RoleOwner, s.decrypt)

	s.route(mux, "POST /v1/attest/challenge", api.RoleRunner, s.challenge)
	s.route(mux, "POST /v1/release", api.RoleRunner, s.release)

	s.route(mux, "GET /v1/audit", "owner|admin", s.auditList)
	s.route(mux, "GET /v1/audit/head", "owner|admin", s.auditHead)
	s.route(mux, "GET /v1/audit/export", api.RoleAdmin, s.auditExport)
	s.route(mux, "GET /v1/audit/proof", "owner|admin", s.auditProof)
	s.route(mux, "GET /v1/audit/consistency", "owner|admin", s.auditConsistency)
	s.route(mux, "GET /v1/sys/backup", api.RoleAdmin, s.backup)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, apiErr(http.StatusNotFound, "not_found", "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) int {
	var he *httpError
	if !errors.As(err, &he) {
		he = apiErr(http.StatusInternalServerError, "internal", "internal error")
	}
	writeJSONResp(w, he.status, he.body)
	return he.status
}

// routePublic serves an unauthenticated route.
func (s *Server) routePublic(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request) (any, error)) {
	s.route(mux, pattern, "", func(w http.ResponseWriter, r *http.Request, _ *caller, _ *state) (any, error) { return h(w, r) })
}

// route wraps h with the body limit, sealing check, authentication (roles
// "" means none), rate limiting, logging and metrics.
func (s *Server) route(mux *http.ServeMux, pattern, roles string, h handlerFunc) {
	name := pattern
	public := roles == ""
	unsealRoute := strings.HasSuffix(pattern, "/v1/sys/status") || strings.HasSuffix(pattern, "/v1/sys/unseal")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodySize)
		var c *caller
		status := http.StatusOK
		defer func() {
			d := time.Since(start)
			s.metrics.latency.WithLabelValues(name).Observe(d.Seconds())
			s.metrics.requests.WithLabelValues(name, strconv.Itoa(status)).Inc()
			attrs := []any{"route", name, "status", status, "duration_ms", float64(d.Microseconds()) / 1000}
			if c != nil {
				attrs = append(attrs, "token_id", c.tokenID, "tenant", c.tenant)
			}
			s.logger.Info("request", attrs...)
		}()
		st := s.st.Load()
		if st == nil && !unsealRoute {
			status = writeErr(w, apiErr(http.StatusServiceUnavailable, "sealed", "the key service is sealed: operators must unseal it (ppml server unseal)"))
			return
		}
		if !public {
			var err error
			if c, err = s.authenticate(r, st, roles); err != nil {
				status = writeErr(w, err)
				return
			}
			if !s.limiter.allow(c.tokenID) {
				w.Header().Set("Retry-After", "1")
				status = writeErr(w, apiErr(http.StatusTooManyRequests, "rate_limited", "too many requests for this API token; slow down"))
				return
			}
		}
		v, err := h(w, r, c, st)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = apiErr(http.StatusRequestEntityTooLarge, "too_large", "request body larger than %d bytes", api.MaxBodySize)
			}
			var he *httpError
			if !errors.As(err, &he) {
				s.logger.Error("request failed", "route", name, "error", err.Error())
			}
			status = writeErr(w, err)
			return
		}
		if v == nil { // the handler wrote the response
			return
		}
		writeJSONResp(w, http.StatusOK, v)
	})
}

func (s *Server) authenticate(r *http.Request, st *state, roles string) (*caller, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil, apiErr(http.StatusUnauthorized, "unauthorized", "missing API token (Authorization: Bearer TOKEN)")
	}
	var rec *tokenRec
	err := st.db.View(func(tx *store.Tx) error {
		var err error
		rec, err = lookupToken(tx, strings.TrimSpace(tok))
		return err
	})
	if err != nil {
		return nil, apiErr(http.StatusUnauthorized, "unauthorized", "API token refused: %v", err)
	}
	allowed := false
	for _, role := range strings.Split(roles, "|") {
		allowed = allowed || role == rec.Role
	}
	if !allowed {
		return nil, apiErr(http.StatusForbidden, "forbidden", "this route needs role %s; the token's tenant %s has role %s", strings.ReplaceAll(roles, "|", " or "), rec.Tenant, rec.Role)
	}
	return &caller{tokenID: rec.ID, tenant: rec.Tenant, role: rec.Role}, nil
}

func decode(r *http.Request, v any) error {
	if err := api.Decode(r.Body, v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiErr(http.StatusRequestEntityTooLarge, "too_large", "request body larger than %d bytes", api.MaxBodySize)
		}
		return badRequest(err)
	}
	return nil
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request, _ *caller, st *state) (any, error) {
	return map[string][]JWK{"keys": {jwkOf(&st.jwtKey.PublicKey)}}, nil
}

func (s *Server) auditPublicKey(w http.ResponseWriter, r *http.Request, _ *caller, st *state) (any, error) {
	der, err := x509.MarshalPKIXPublicKey(&st.auditKey.PublicKey)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	pem.Encode(w, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return nil, nil
}

func (s *Server) unseal(w http.ResponseWriter, r *http.Request) (any, error) {
	var req api.UnsealRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	st, err := s.Unseal(req.Share)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, "bad_share", "%v", err)
	}
	return st, nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.CreateTenantRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	t := &tenantRec{Name: req.Name, Role: req.Role, Created: st.now().UTC()}
	err := st.db.Update(func(tx *store.Tx) error {
		k := tenantKey(st.db, t.Name)
		if _, err := tx.Get(bktTenants, k); err == nil {
			return apiErr(http.StatusConflict, "conflict", "tenant %s exists", t.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := putJSON(tx, bktTenants, k, t); err != nil {
			return err
		}
		_, err := st.log.Append(tx.Bolt(), audit.Entry{Type: audit.TypeTenant, Tenant: t.Name, Actor: c.tokenID, Reason: "created tenant " + t.Name + " (" + t.Role + ")"})
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.Tenant{Name: t.Name, Role: t.Role, Created: t.Created}, nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	out := []api.Tenant{}
	err := st.db.View(func(tx *store.Tx) error {
		return tx.ForEach(bktTenants, func(_, v []byte) error {
			var t tenantRec
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, api.Tenant{Name: t.Name, Role: t.Role, Created: t.Created})
			return nil
		})
	})
	return out, ignoreMissing(err)
}

func ignoreMissing(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.CreateTokenRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var info *api.TokenInfo
	err := st.db.Update(func(tx *store.Tx) error {
		var t tenantRec
		if err := getJSON(tx, bktTenants, tenantKey(st.db, req.Tenant), &t); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return apiErr(http.StatusNotFound, "not_found", "no tenant %s (create it first: ppml tenant create)", req.Tenant)
			}
			return err
		}
		var err error
		info, err = st.issueToken(tx, &t, req.Description, c.tokenID)
		return err
	})
	return info, err
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	out := []api.TokenInfo{}
	err := st.db.View(func(tx *store.Tx) error {
		return tx.ForEach(bktTokens, func(_, v []byte) error {
			var t tokenRec
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, api.TokenInfo{ID: t.ID, Tenant: t.Tenant, Role: t.Role, Description: t.Description, Created: t.Created, Revoked: t.Revoked})
			return nil
		})
	})
	return out, ignoreMissing(err)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	id := r.PathValue("id")
	var info api.TokenInfo
	err := st.db.Update(func(tx *store.Tx) error {
		var t tokenRec
		if err := getJSON(tx, bktTokens, []byte(id), &t); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return apiErr(http.StatusNotFound, "not_found", "no token with id %q", id)
			}
			return err
		}
		t.Revoked = true
		if err := putJSON(tx, bktTokens, []byte(id), &t); err != nil {
			return err
		}
		info = api.TokenInfo{ID: t.ID, Tenant: t.Tenant, Role: t.Role, Description: t.Description, Created: t.Created, Revoked: true}
		_, err := st.log.Append(tx.Bolt(), audit.Entry{Type: audit.TypeTokenRevoke, Tenant: t.Tenant, Actor: c.tokenID, Reason: "revoked token " + id})
		return err
	})
	return info, err
}

// ownedKey loads key name and checks that c's tenant owns it.
func ownedKey(tx *store.Tx, st *state, c *caller, name string) (*keyRec, error) {
	var k keyRec
	if err := getJSON(tx, bktKeys, keyKey(st.db, name), &k); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apiErr(http.StatusNotFound, "not_found", "no key %s", name)
		}
		return nil, err
	}
	// Another tenant's key answers exactly like a missing one, so that
	// names cannot be probed for existence.
	if c.role != api.RoleAdmin && k.Tenant != c.tenant {
		return nil, apiErr(http.StatusNotFound, "not_found", "no key %s", name)
	}
	return &k, nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.CreateKeyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var out api.Key
	err := st.db.Update(func(tx *store.Tx) error {
		kk := keyKey(st.db, req.Name)
		if _, err := tx.Get(bktKeys, kk); err == nil {
			return apiErr(http.StatusConflict, "conflict", "key %s exists", req.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		m, err := newKeyMaterial()
		if err != nil {
			return err
		}
		now := st.now().UTC()
		k := &keyRec{Name: req.Name, Tenant: c.tenant, Versions: []keyVersionRec{{Version: 1, Material: m, Created: now}}, Created: now}
		if err := putJSON(tx, bktKeys, kk, k); err != nil {
			return err
		}
		clear(m)
		out = k.api()
		_, err = st.log.Append(tx.Bolt(), audit.Entry{Type: audit.TypeKeyCreate, Tenant: c.tenant, Actor: c.tokenID, Key: req.Name, KeyVersion: 1})
		return err
	})
	return out, err
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.CreateKeyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var out api.Key
	err := st.db.Update(func(tx *store.Tx) error {
		k, err := ownedKey(tx, st, c, req.Name)
		if err != nil {
			return err
		}
		m, err := newKeyMaterial()
		if err != nil {
			return err
		}
		v := k.newest().Version + 1
		k.Versions = append(k.Versions, keyVersionRec{Version: v, Material: m, Created: st.now().UTC()})
		if err := putJSON(tx, bktKeys, keyKey(st.db, k.Name), k); err != nil {
			return err
		}
		out = k.api()
		_, err = st.log.Append(tx.Bolt(), audit.Entry{Type: audit.TypeKeyRotate, Tenant: k.Tenant, Actor: c.tokenID, Key: k.Name, KeyVersion: v})
		return err
	})
	return out, err
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	out := []api.Key{}
	err := st.db.View(func(tx *store.Tx) error {
		return tx.ForEach(bktKeys, func(_, v []byte) error {
			var k keyRec
			if err := json.Unmarshal(v, &k); err != nil {
				return err
			}
			if c.role == api.RoleAdmin || k.Tenant == c.tenant {
				out = append(out, k.api())
			}
			return nil
		})
	})
	return out, ignoreMissing(err)
}

func (s *Server) setPolicy(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	name := r.URL.Query().Get("key")
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apiErr(http.StatusRequestEntityTooLarge, "too_large", "policy larger than %d bytes", api.MaxBodySize)
		}
		return nil, badRequest(err)
	}
	p, err := policy.Parse(doc)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, "bad_policy", "%v", err)
	}
	js, err := p.JSON()
	if err != nil {
		return nil, err
	}
	err = st.db.Update(func(tx *store.Tx) error {
		k, err := ownedKey(tx, st, c, name)
		if err != nil {
			return err
		}
		k.Policy = js
		if err := putJSON(tx, bktKeys, keyKey(st.db, k.Name), k); err != nil {
			return err
		}
		_, err = st.log.Append(tx.Bolt(), audit.Entry{Type: audit.TypePolicySet, Tenant: k.Tenant, Actor: c.tokenID, Key: k.Name, Reason: policySummary(p)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// policySummary records what a policy accepts in its audit entry (the
// digest identifies the exact document).
func policySummary(p *policy.Policy) string {
	js, _ := p.JSON()
	var plats []string
	for k := range p.Platforms {
		plats = append(plats, string(k))
	}
	return fmt.Sprintf("policy sha256:%x platforms=%s jobs=%d", sha256Sum(js), strings.Join(sortStrings(plats), ","), len(p.Jobs))
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	name := r.URL.Query().Get("key")
	var out json.RawMessage
	err := st.db.View(func(tx *store.Tx) error {
		k, err := ownedKey(tx, st, c, name)
		if err != nil {
			return err
		}
		if len(k.Policy) == 0 {
			return apiErr(http.StatusNotFound, "not_found", "key %s has no policy (nothing is ever released without one)", name)
		}
		out = k.Policy
		return nil
	})
	return out, err
}

func (s *Server) generateDataKey(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.GenerateDataKeyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var out api.DataKey
	err := st.db.Batch(func(tx *store.Tx) error {
		clear(out.DataKey) // Batch may rerun fn
		k, err := ownedKey(tx, st, c, req.Key)
		if err != nil {
			return err
		}
		dk, wrapped, v, err := wrapDataKey(k, req.AAD)
		if err != nil {
			return err
		}
		out = api.DataKey{Key: k.Name, Version: v, DataKey: dk, Wrapped: wrapped}
		_, err = st.log.Append(tx.Bolt(), audit.Entry{Type: TypeDataKey, Tenant: k.Tenant, Actor: c.tokenID, Key: k.Name, KeyVersion: v, Decision: audit.Allow})
		return err
	})
	if err != nil {
		clear(out.DataKey)
		return nil, err
	}
	return out, nil
}

func (s *Server) decrypt(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.DecryptRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var out api.DataKey
	err := st.db.Batch(func(tx *store.Tx) error {
		k, err := ownedKey(tx, st, c, req.Key)
		if err != nil {
			return err
		}
		dk, v, err := unwrapDataKey(k, req.Wrapped, req.AAD)
		if err != nil {
			var ue *errUnwrap
			if errors.As(err, &ue) {
				return apiErr(http.StatusBadRequest, ue.rule, "%v", err)
			}
			return err
		}
		out = api.DataKey{Key: k.Name, Version: v, DataKey: dk, Wrapped: req.Wrapped}
		_, err = st.log.Append(tx.Bolt(), audit.Entry{Type: audit.TypeDecrypt, Tenant: k.Tenant, Actor: c.tokenID, Key: k.Name, KeyVersion: v, Decision: audit.Allow})
		return err
	})
	return out, err
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	q := r.URL.Query()
	key := q.Get("key")
	from, _ := strconv.ParseUint(q.Get("from"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	if c.role != api.RoleAdmin && key == "" {
		return nil, apiErr(http.StatusBadRequest, "bad_request", "owners list the audit trail of one key: give ?key=NAME")
	}
	var out []audit.Entry
	err := st.db.View(func(tx *store.Tx) error {
		var err error
		if key == "" {
			out, err = st.log.List(tx.Bolt(), from, limit)
			return err
		}
		k, err := ownedKey(tx, st, c, key)
		if err != nil {
			return err
		}
		out, err = st.log.ListByKey(tx.Bolt(), k.Tenant, k.Name, from, limit)
		return err
	})
	if out == nil {
		out = []audit.Entry{}
	}
	return out, err
}

func (s *Server) auditHead(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var h *audit.TreeHead
	err := st.db.View(func(tx *store.Tx) error {
		var err error
		h, err = st.log.SignTreeHead(tx.Bolt())
		return err
	})
	return h, err
}

func (s *Server) auditExport(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	err := st.db.View(func(tx *store.Tx) error {
		_, err := st.log.Export(tx.Bolt(), w)
		return err
	})
	if err != nil {
		// Headers are gone; the truncated stream fails verification.
		s.logger.Error("audit export failed", "error", err.Error())
	}
	return nil, nil
}

func hexList(in [][]byte) []attest.Hex {
	out := make([]attest.Hex, len(in))
	for i, h := range in {
		out[i] = h
	}
	return out
}

func (s *Server) auditProof(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, "bad_request", "give ?index=N (an entry index)")
	}
	var out api.InclusionProof
	err = st.db.View(func(tx *store.Tx) error {
		head, err := st.log.SignTreeHead(tx.Bolt())
		if err != nil {
			return err
		}
		if idx >= head.Size {
			return apiErr(http.StatusNotFound, "not_found", "no entry %d: the log has %d entries", idx, head.Size)
		}
		e, raw, err := st.log.Entry(tx.Bolt(), idx)
		if err != nil {
			return err
		}
		if c.role != api.RoleAdmin && e.Tenant != c.tenant {
			return apiErr(http.StatusForbidden, "forbidden", "entry %d is not about your tenant", idx)
		}
		p, err := st.log.InclusionProof(tx.Bolt(), idx, head.Size)
		if err != nil {
			return err
		}
		hj, _ := json.Marshal(head)
		out = api.InclusionProof{Index: idx, Entry: raw, TreeHead: hj, Proof: hexList(p)}
		return nil
	})
	return out, err
}

func (s *Server) auditConsistency(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	from, err := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, "bad_request", "give ?from=SIZE (the size of the tree head you hold)")
	}
	var out api.ConsistencyProof
	err = st.db.View(func(tx *store.Tx) error {
		head, err := st.log.SignTreeHead(tx.Bolt())
		if err != nil {
			return err
		}
		if from > head.Size {
			return apiErr(http.StatusConflict, "conflict", "you hold a tree head of size %d but the log has %d entries: it was rolled back (restored from a backup?) or forked", from, head.Size)
		}
		p, err := st.log.ConsistencyProof(tx.Bolt(), from, head.Size)
		if err != nil {
			return err
		}
		hj, _ := json.Marshal(head)
		out = api.ConsistencyProof{From: from, TreeHead: hj, Proof: hexList(p)}
		return nil
	})
	return out, err
}

// backup streams a consistent copy of the database, as encrypted as the
// database itself (restoring it needs the same root key and seal.json).
func (s *Server) backup(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := st.db.Backup(w); err != nil {
		s.logger.Error("backup failed", "error", err.Error())
	}
	return nil, nil
}

// Shutdown is a convenience for tests and the CLI.
func shutdown(srv *http.Server, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return srv.Shutdown(ctx)
}
