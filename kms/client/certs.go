package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/workload"
)

// CertOptions say which workload certificate to ask for.
type CertOptions struct {
	// Policy is the certificate policy (TENANT/NAME) to be issued under.
	Policy string
	// Role is the worker role the certificate names.
	Role string
	// DNSNames and IPAddresses are subject alternative names to ask for
	// (serving host names); the policy must allow each.
	DNSNames    []string
	IPAddresses []net.IP
	// TTL asks for a shorter lifetime than the policy's (0: the policy's).
	TTL time.Duration
}

// Cert is a workload certificate and its private key, which was made in
// this process and never left it.
type Cert struct {
	TLS      tls.Certificate // chain (leaf) and private key, for crypto/tls
	Leaf     *x509.Certificate
	CA       *x509.Certificate
	Identity *workload.Identity
	Issued   *api.IssuedCert
	// Evidence and Nonce are what the key service verified before issuing:
	// a serving TEE may publish them so that clients check the binding of
	// the certificate key themselves (report_data =
	// SHA-512(nonce ‖ job digest ‖ the certificate's SubjectPublicKeyInfo)).
	Evidence attest.Evidence
	Nonce    []byte
}

// IssueCert runs the TEE side of the certificate protocol: it makes an
// ECDSA P-256 key, asks for a nonce, binds SHA-512(nonce ‖ job digest ‖
// the key's SubjectPublicKeyInfo) into evidence from att, sends the
// evidence with a certificate request signed by the key, and checks the
// answer: a certificate for this key, chaining to the CA returned with it,
// whose identity extension names this job, the role and the policy asked
// for. manifest is the job manifest as the service should digest it and
// jobDigest its digest (as the launcher computed it).
func (c *Client) IssueCert(ctx context.Context, att attest.Attester, manifest, jobDigest []byte, o CertOptions) (*Cert, error) {
	if err := api.CheckCertPolicyName(o.Policy); err != nil {
		return nil, err
	}
	if err := policy.CheckRole(o.Role); err != nil {
		return nil, err
	}
	if len(jobDigest) != workload.JobDigestSize {
		return nil, fmt.Errorf("certificate: job digest of %d bytes", len(jobDigest))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificate: key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: o.Role}, DNSNames: o.DNSNames, IPAddresses: o.IPAddresses,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("certificate: request: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	var ch api.Challenge
	if err := c.do(ctx, "POST", "/v1/attest/challenge", struct{}{}, &ch); err != nil {
		return nil, fmt.Errorf("certificate: challenge: %w", err)
	}
	rd := api.ReportData(ch.Nonce, jobDigest, spki)
	ev, err := att.Evidence(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("certificate: evidence from %s: %w", att.Name(), err)
	}
	req := api.CertRequest{Nonce: ch.Nonce, Evidence: *ev, CSR: csrDER, Manifest: manifest, Policy: o.Policy, Role: o.Role, TTLSeconds: int64(o.TTL / time.Second)}
	var resp api.IssuedCert
	if err := c.do(ctx, "POST", "/v1/certs", &req, &resp); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	cert, err := checkIssued(&resp, key, jobDigest, o)
	if err != nil {
		return nil, fmt.Errorf("certificate: the key service's answer: %w", err)
	}
	cert.Evidence, cert.Nonce = *ev, ch.Nonce
	return cert, nil
}

func checkIssued(resp *api.IssuedCert, key *ecdsa.PrivateKey, jobDigest []byte, o CertOptions) (*Cert, error) {
	leaf, err := x509.ParseCertificate(resp.Certificate)
	if err != nil {
		return nil, fmt.Errorf("certificate does not parse: %w", err)
	}
	ca, err := x509.ParseCertificate(resp.CA)
	if err != nil {
		return nil, fmt.Errorf("CA certificate does not parse: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("the certificate is for another key")
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("the certificate is not signed by the CA sent with it: %w", err)
	}
	id, err := workload.FromCertificate(leaf)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(id.JobDigest, jobDigest) || id.Role != o.Role || id.Policy != o.Policy {
		return nil, fmt.Errorf("the certificate names %s, not what was asked for", id)
	}
	return &Cert{TLS: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, CA: ca, Identity: id, Issued: resp}, nil
}

// CA fetches the deployment CA certificate (GET /v1/ca). Owners pin it
// (ppml cert ca); a TEE learns it over the connection it already trusts.
func (c *Client) CA(ctx context.Context) (*x509.Certificate, error) {
	var b []byte
	if err := c.do(ctx, "GET", "/v1/ca", nil, &b); err != nil {
		return nil, err
	}
	return ParseCAPEM(b)
}

// ParseCAPEM reads one PEM certificate that must be a CA.
func ParseCAPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("deployment CA: not a PEM certificate")
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("deployment CA: %w", err)
	}
	if !ca.IsCA {
		return nil, errors.New("deployment CA: the certificate is not a CA")
	}
	return ca, nil
}

// CRL fetches the deployment CA's revocation list (GET /v1/ca/crl) and
// verifies it against ca.
func (c *Client) CRL(ctx context.Context, ca *x509.Certificate) (*workload.CRL, error) {
	var b []byte
	if err := c.do(ctx, "GET", "/v1/ca/crl", nil, &b); err != nil {
		return nil, err
	}
	return workload.ParseCRL(b, ca)
}

// SetCertPolicy creates or replaces a certificate policy (owner); a changed
// document revokes certificates issued under older versions.
func (c *Client) SetCertPolicy(ctx context.Context, name string, doc []byte) (*api.CertPolicy, error) {
	var p api.CertPolicy
	return &p, c.do(ctx, "PUT", "/v1/cert-policies?name="+url.QueryEscape(name), doc, &p)
}

// GetCertPolicy returns a certificate policy (owner).
func (c *Client) GetCertPolicy(ctx context.Context, name string) (*api.CertPolicy, error) {
	var p api.CertPolicy
	return &p, c.do(ctx, "GET", "/v1/cert-policies?name="+url.QueryEscape(name), nil, &p)
}

// ListCertPolicies lists the caller's certificate policies (all for an admin).
func (c *Client) ListCertPolicies(ctx context.Context) ([]api.CertPolicy, error) {
	var p []api.CertPolicy
	return p, c.do(ctx, "GET", "/v1/cert-policies", nil, &p)
}

// DeleteCertPolicy deletes a certificate policy and revokes its certificates (owner).
func (c *Client) DeleteCertPolicy(ctx context.Context, name string) (*api.CertPolicy, error) {
	var p api.CertPolicy
	return &p, c.do(ctx, "DELETE", "/v1/cert-policies?name="+url.QueryEscape(name), nil, &p)
}

// ListCerts lists certificates issued under the caller's policies, or
// under one (policy set).
func (c *Client) ListCerts(ctx context.Context, policy string) ([]api.Cert, error) {
	q := ""
	if policy != "" {
		q = "?policy=" + url.QueryEscape(policy)
	}
	var out []api.Cert
	return out, c.do(ctx, "GET", "/v1/certs"+q, nil, &out)
}
