package kms

import (
	"encoding/pem"
	"errors"
	"io"
	"net/http"

	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/core"
)

// certRoutes serves the deployment CA and workload certificates
// (docs/api/workload-certificates.md): the CA certificate and its
// revocation list are public, like the token keys; certificate policies
// are their owners'; certificates are issued to attested runners.
func (s *Server) certRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/ca", "", func(w http.ResponseWriter, r *http.Request, c *core.Core, _ *core.Caller) (any, error) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.CACertificate()}))
		return nil, nil
	})
	s.route(mux, "GET /v1/ca/crl", "", func(w http.ResponseWriter, r *http.Request, c *core.Core, _ *core.Caller) (any, error) {
		der, err := c.CRL(r.Context())
		if err != nil {
			return nil, err
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(der)
		return nil, nil
	})
	s.route(mux, "PUT /v1/cert-policies", api.RoleOwner, func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		doc, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge()
			}
			return nil, core.Errorf(core.KindBadRequest, "bad_request", "%v", err)
		}
		return c.SetCertPolicy(r.Context(), who, r.URL.Query().Get("name"), doc)
	})
	s.route(mux, "GET /v1/cert-policies", "owner|admin", func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		if name := r.URL.Query().Get("name"); name != "" {
			return c.GetCertPolicy(r.Context(), who, name)
		}
		return c.ListCertPolicies(r.Context(), who)
	})
	s.route(mux, "DELETE /v1/cert-policies", api.RoleOwner, func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		return c.DeleteCertPolicy(r.Context(), who, r.URL.Query().Get("name"))
	})
	s.route(mux, "POST /v1/certs", api.RoleRunner, withBody((*core.Core).IssueCert))
	s.route(mux, "GET /v1/certs", "owner|admin", func(w http.ResponseWriter, r *http.Request, c *core.Core, who *core.Caller) (any, error) {
		return c.ListCerts(r.Context(), who, r.URL.Query().Get("policy"))
	})
}
