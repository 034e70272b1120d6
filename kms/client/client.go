// Package client is the Go client of the key service: owner and admin
// calls, the TEE side of the release protocol (Release), and an envelope
// key (EnvelopeKey) that wraps and unwraps file data keys at the service.
package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
)

// DefaultPort is the port of a kms:// reference without one.
const DefaultPort = 8443

// Options configure how the client trusts the server.
type Options struct {
	// Fingerprint pins the server's certificate: hex SHA-256 of its DER
	// (as `ppml server` prints it). Colons are ignored.
	Fingerprint string
	// CAFile is a PEM bundle of CAs to trust instead of the system roots.
	CAFile string
	// Timeout per request (default 30 s).
	Timeout time.Duration
}

// Client talks to one key service.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for server (https://HOST:PORT) authenticating with token.
func New(server, token string, opts Options) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q: want https://HOST[:PORT]", server)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	switch {
	case opts.Fingerprint != "":
		want, err := hex.DecodeString(strings.ReplaceAll(strings.ToLower(opts.Fingerprint), ":", ""))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("server fingerprint: want 64 hex digits (SHA-256 of the certificate)")
		}
		// The pin replaces chain validation: the leaf must be exactly this certificate.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("server certificate fingerprint %x does not match the pinned %x", got, want)
			}
			return nil
		}
	case opts.CAFile != "":
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", opts.CAFile)
		}
		tc.RootCAs = pool
	}
	to := opts.Timeout
	if to == 0 {
		to = 30 * time.Second
	}
	return &Client{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: to, Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}}}, nil
}

// ServerURL is the https URL of a kms:// reference's host and port.
func ServerURL(host string, port int) string {
	if port == 0 {
		port = DefaultPort
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("https://%s:%d", host, port)
}

// do sends body (JSON-encoded unless []byte) and decodes a JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("key service %s: %w", c.base, explainTLS(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("key service %s: read answer: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return &StatusError{Status: resp.StatusCode, Err: api.Error{Code: "http", Message: strings.TrimSpace(string(data))}}
		}
		return &StatusError{Status: resp.StatusCode, Err: e}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = data
		return nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("key service %s: bad answer to %s %s: %w", c.base, method, path, err)
		}
	}
	return nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status int
	Err    api.Error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("key service: %d %s: %s", e.Status, e.Err.Code, e.Err.Message)
}

// Status returns the server's status: seal, shares given, build and,
// once unsealed, state version and audit log size (no token needed).
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, "GET", "/v1/sys/status", nil, &s)
}

// Unseal submits one Shamir share.
func (c *Client) Unseal(ctx context.Context, share string) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, "POST", "/v1/sys/unseal", api.UnsealRequest{Share: share}, &s)
}

// CreateTenant creates a tenant (admin).
func (c *Client) CreateTenant(ctx context.Context, name, role string) (*api.Tenant, error) {
	var t api.Tenant
	return &t, c.do(ctx, "POST", "/v1/tenants", api.CreateTenantRequest{Name: name, Role: role}, &t)
}

// ListTenants lists tenants (admin).
func (c *Client) ListTenants(ctx context.Context) ([]api.Tenant, error) {
	var t []api.Tenant
	return t, c.do(ctx, "GET", "/v1/tenants", nil, &t)
}

// CreateToken issues an API token for tenant (admin).
func (c *Client) CreateToken(ctx context.Context, tenant, desc string) (*api.TokenInfo, error) {
	var t api.TokenInfo
	return &t, c.do(ctx, "POST", "/v1/tokens", api.CreateTokenRequest{Tenant: tenant, Description: desc}, &t)
}

// IssueToken issues an API token as req says (admin): tenant,
// description and lifetime (TTL, e.g. "24h"; empty: the server's default).
func (c *Client) IssueToken(ctx context.Context, req api.CreateTokenRequest) (*api.TokenInfo, error) {
	var t api.TokenInfo
	return &t, c.do(ctx, "POST", "/v1/tokens", req, &t)
}

// RenewToken extends a token's expiry by ttl ("" keeps its own TTL): the
// client's own token when id is "", any token for an admin.
func (c *Client) RenewToken(ctx context.Context, id, ttl string) (*api.TokenInfo, error) {
	var t api.TokenInfo
	return &t, c.do(ctx, "POST", "/v1/tokens/renew", api.RenewTokenRequest{ID: id, TTL: ttl}, &t)
}

// ListTokens lists tokens (admin), never their secrets.
func (c *Client) ListTokens(ctx context.Context) ([]api.TokenInfo, error) {
	var t []api.TokenInfo
	return t, c.do(ctx, "GET", "/v1/tokens", nil, &t)
}

// RevokeToken revokes a token by id (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) (*api.TokenInfo, error) {
	var t api.TokenInfo
	return &t, c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, &t)
}

// CreateKey creates a primary key (owner).
func (c *Client) CreateKey(ctx context.Context, name string) (*api.Key, error) {
	var k api.Key
	return &k, c.do(ctx, "POST", "/v1/keys", api.CreateKeyRequest{Name: name}, &k)
}

// CreateRecipientKey creates a recipient key of the given KEM
// (envelope.KEMMLKEM768X25519 or KEMX25519): its public half encrypts, the
// service keeps the private half (owner).
func (c *Client) CreateRecipientKey(ctx context.Context, name, kem string) (*api.Key, error) {
	var k api.Key
	return &k, c.do(ctx, "POST", "/v1/keys", api.CreateKeyRequest{Name: name, Recipient: kem}, &k)
}

// PublicKey fetches the public half of a recipient key's version (0: the
// newest); any API token may.
func (c *Client) PublicKey(ctx context.Context, name string, version uint32) (*api.PublicKey, error) {
	path := "/v1/keys/" + name + "/public"
	if version != 0 {
		path += "?version=" + strconv.FormatUint(uint64(version), 10)
	}
	var pk api.PublicKey
	return &pk, c.do(ctx, "GET", path, nil, &pk)
}

// RotateKey adds a version to a key (owner).
func (c *Client) RotateKey(ctx context.Context, name string) (*api.Key, error) {
	var k api.Key
	return &k, c.do(ctx, "POST", "/v1/keys/rotate", api.CreateKeyRequest{Name: name}, &k)
}

// DisableKeyVersion disables a key version (owner): it wraps, unwraps and
// releases nothing until enabled.
func (c *Client) DisableKeyVersion(ctx context.Context, key string, version uint32) (*api.Key, error) {
	return c.keyVersion(ctx, "disable", key, version)
}

// EnableKeyVersion enables a disabled key version again (owner).
func (c *Client) EnableKeyVersion(ctx context.Context, key string, version uint32) (*api.Key, error) {
	return c.keyVersion(ctx, "enable", key, version)
}

// DestroyKeyVersion erases a disabled key version's material for good (owner).
func (c *Client) DestroyKeyVersion(ctx context.Context, key string, version uint32) (*api.Key, error) {
	return c.keyVersion(ctx, "destroy", key, version)
}

func (c *Client) keyVersion(ctx context.Context, op, key string, version uint32) (*api.Key, error) {
	var k api.Key
	return &k, c.do(ctx, "POST", "/v1/keys/versions/"+op, api.KeyVersionRequest{Key: key, Version: version}, &k)
}

// ListKeys lists the caller's keys (all keys for an admin).
func (c *Client) ListKeys(ctx context.Context) ([]api.Key, error) {
	var k []api.Key
	return k, c.do(ctx, "GET", "/v1/keys", nil, &k)
}

// SetPolicy sets a key's release policy from a YAML or JSON document (owner).
func (c *Client) SetPolicy(ctx context.Context, key string, doc []byte) (*policy.Policy, error) {
	var p policy.Policy
	return &p, c.do(ctx, "PUT", "/v1/policy?key="+url.QueryEscape(key), doc, &p)
}

// GetPolicy returns a key's policy (owner).
func (c *Client) GetPolicy(ctx context.Context, key string) (*policy.Policy, error) {
	var p policy.Policy
	return &p, c.do(ctx, "GET", "/v1/policy?key="+url.QueryEscape(key), nil, &p)
}

// GenerateDataKey returns a fresh data key and its wrapped form bound to aad (owner).
func (c *Client) GenerateDataKey(ctx context.Context, key string, aad []byte) (*api.DataKey, error) {
	var d api.DataKey
	return &d, c.do(ctx, "POST", "/v1/datakey", api.GenerateDataKeyRequest{Key: key, AAD: aad}, &d)
}

// Decrypt unwraps a data key of the caller's own key (owner).
func (c *Client) Decrypt(ctx context.Context, key string, wrapped, aad []byte) ([]byte, error) {
	var d api.DataKey
	if err := c.do(ctx, "POST", "/v1/decrypt", api.DecryptRequest{Key: key, Wrapped: wrapped, AAD: aad}, &d); err != nil {
		return nil, err
	}
	return d.DataKey, nil
}

// AuditList lists audit entries: of one key (owners must give one), or all (admin).
func (c *Client) AuditList(ctx context.Context, key string, from uint64, limit int) ([]audit.Entry, error) {
	q := url.Values{}
	if key != "" {
		q.Set("key", key)
	}
	q.Set("from", fmt.Sprint(from))
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out []audit.Entry
	return out, c.do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &out)
}

// AuditTenantList lists a tenant's own trail: its tokens, tenant changes,
// what administrators did and refusal summaries (owners: their own tenant,
// with tenant ""; admin: any).
func (c *Client) AuditTenantList(ctx context.Context, tenant string, from uint64, limit int) ([]audit.Entry, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	q.Set("from", fmt.Sprint(from))
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out []audit.Entry
	return out, c.do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &out)
}

// AuditTrail returns the trail export (audit.VerifyTrail) of keys and of
// their tenants' own trails (and of tenant, when given; an owner's is
// always included), with a consistency proof from each size in from (the
// sizes of tree heads the caller trusts).
func (c *Client) AuditTrail(ctx context.Context, keys []string, tenant string, from []uint64) ([]byte, error) {
	q := url.Values{}
	for _, k := range keys {
		q.Add("key", k)
	}
	if tenant != "" || len(keys) == 0 {
		q.Set("tenant", tenant)
	}
	for _, f := range from {
		q.Add("from", fmt.Sprint(f))
	}
	var b []byte
	return b, c.do(ctx, "GET", "/v1/audit/export?"+q.Encode(), nil, &b)
}

// AuditExport returns the whole log in the export format (admin).
func (c *Client) AuditExport(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, "GET", "/v1/audit/export", nil, &b)
}

// AuditPublicKey returns the PEM public key that signs tree heads.
func (c *Client) AuditPublicKey(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, "GET", "/v1/audit/public-key", nil, &b)
}

// Backup streams a consistent, still encrypted copy of the database to w (admin).
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/sys/backup", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := *c.http
	hc.Timeout = 0 // a backup takes as long as it takes
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("key service %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e api.Error
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		return 0, &StatusError{Status: resp.StatusCode, Err: e}
	}
	return io.Copy(w, resp.Body)
}

// AuditReceipt fetches the inclusion proof of entry index and verifies it
// against pub (the tree-head key, kept from a trusted source): the signed
// tree head, then the entry's inclusion in it. It returns the entry and head.
func (c *Client) AuditReceipt(ctx context.Context, index uint64, pub crypto.PublicKey) (*audit.Entry, *audit.TreeHead, error) {
	var p api.InclusionProof
	if err := c.do(ctx, "GET", fmt.Sprintf("/v1/audit/proof?index=%d", index), nil, &p); err != nil {
		return nil, nil, err
	}
	var head audit.TreeHead
	if err := json.Unmarshal(p.TreeHead, &head); err != nil {
		return nil, nil, fmt.Errorf("receipt: tree head: %w", err)
	}
	if err := head.Verify(pub); err != nil {
		return nil, nil, fmt.Errorf("receipt: %w", err)
	}
	proof := make([][]byte, len(p.Proof))
	for i, h := range p.Proof {
		proof[i] = h
	}
	if err := audit.VerifyInclusion(p.Entry, index, proof, &head); err != nil {
		return nil, nil, fmt.Errorf("receipt: %w", err)
	}
	e, err := audit.DecodeEntry(p.Entry)
	if err != nil {
		return nil, nil, fmt.Errorf("receipt: %w", err)
	}
	if e.Index != index {
		return nil, nil, fmt.Errorf("receipt: entry says index %d, asked for %d", e.Index, index)
	}
	return e, &head, nil
}

// AuditConsistency checks that the log still extends older (a tree head
// kept earlier) and returns the newer, verified tree head.
func (c *Client) AuditConsistency(ctx context.Context, older *audit.TreeHead, pub crypto.PublicKey) (*audit.TreeHead, error) {
	if err := older.Verify(pub); err != nil {
		return nil, fmt.Errorf("consistency: the tree head you hold: %w", err)
	}
	var p api.ConsistencyProof
	if err := c.do(ctx, "GET", fmt.Sprintf("/v1/audit/consistency?from=%d", older.Size), nil, &p); err != nil {
		return nil, err
	}
	var head audit.TreeHead
	if err := json.Unmarshal(p.TreeHead, &head); err != nil {
		return nil, fmt.Errorf("consistency: tree head: %w", err)
	}
	if err := head.Verify(pub); err != nil {
		return nil, fmt.Errorf("consistency: %w", err)
	}
	proof := make([][]byte, len(p.Proof))
	for i, h := range p.Proof {
		proof[i] = h
	}
	if err := audit.VerifyConsistency(older, &head, proof); err != nil {
		return nil, err
	}
	return &head, nil
}

// JWKS returns the attestation token keys.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, "GET", "/.well-known/jwks.json", nil, &b)
}

// AuditHead fetches the current signed tree head (GET /v1/audit/head) and,
// when pub is not nil, verifies its signature with it (the tree-head key,
// kept from a trusted source). Keep the head to check later, with
// AuditConsistency, that the log only grew.
func (c *Client) AuditHead(ctx context.Context, pub crypto.PublicKey) (*audit.TreeHead, error) {
	var head audit.TreeHead
	if err := c.do(ctx, "GET", "/v1/audit/head", nil, &head); err != nil {
		return nil, err
	}
	if pub != nil {
		if err := head.Verify(pub); err != nil {
			return nil, fmt.Errorf("tree head: %w", err)
		}
	}
	return &head, nil
}

// explainTLS turns an untrusted server certificate into advice: a key
// service's certificate is self-signed unless the operator gave one, so
// clients pin it or name its CA.
func explainTLS(err error) error {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var hn x509.HostnameError
	if errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &hn) {
		return fmt.Errorf("its TLS certificate is not trusted (%v): pin it with --server-fingerprint or PPML_SERVER_FINGERPRINT (the SHA-256 'ppml server' prints at start), or name its CA with --ca-file or PPML_CA_FILE", err)
	}
	return err
}
