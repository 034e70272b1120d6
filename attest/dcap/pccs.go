package dcap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap/abi"
)

// PCCS fetches collateral from an Intel PCS or a PCCS through the v4 API:
//
//	GET {BaseURL}/{sgx|tdx}/certification/v4/tcb?fmspc=HEX      TCB-Info-Issuer-Chain
//	GET {BaseURL}/{sgx|tdx}/certification/v4/qe/identity        SGX-Enclave-Identity-Issuer-Chain
//	GET {BaseURL}/sgx/certification/v4/pckcrl?ca=processor|platform&encoding=der   SGX-PCK-CRL-Issuer-Chain
//	GET {BaseURL}/sgx/certification/v4/rootcacrl                 (PCCS; or RootCRLURL)
//
// Issuer chains come URL-escaped in the response headers; TCB info and QE
// identity bodies are {"tcbInfo"|"enclaveIdentity": {...}, "signature": hex}
// and the exact bytes of the inner object are kept as the signed text.
//
// With CacheDir set, responses are kept on disk and reused until the
// nextUpdate of the item they hold (TCB info, QE identity, CRL); a stale or
// unreadable entry is fetched again. Nothing here is trusted: the Verifier
// checks every signature.
type PCCS struct {
	BaseURL  string
	CacheDir string
	Client   *http.Client
	// RootCRLURL overrides where the root CA CRL comes from (Intel's PCS
	// serves it from its certificates host); empty means BaseURL's
	// /sgx/certification/v4/rootcacrl.
	RootCRLURL string
	// Now is the clock for cache freshness; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
}

var _ Source = (*PCCS)(nil)

// fetched is one response as cached on disk.
type fetched struct {
	URL        string            `json:"url"`
	Body       []byte            `json:"body"`
	Headers    map[string]string `json:"headers"`
	NextUpdate time.Time         `json:"next_update"`
}

const maxResponse = 4 << 20

func (p *PCCS) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Collateral implements Source.
func (p *PCCS) Collateral(ctx context.Context, platform attest.Platform, fmspc []byte, pckCA string) (*Collateral, error) {
	var tee string
	switch platform {
	case attest.PlatformSGX:
		tee = "sgx"
	case attest.PlatformTDX:
		tee = "tdx"
	default:
		return nil, fmt.Errorf("PCCS: platform %q is not SGX or TDX", platform)
	}
	if pckCA != "processor" && pckCA != "platform" {
		return nil, fmt.Errorf("PCCS: PCK CA %q is not processor or platform", pckCA)
	}
	if len(fmspc) != 6 {
		return nil, fmt.Errorf("PCCS: FMSPC has %d bytes, want 6", len(fmspc))
	}
	base := strings.TrimRight(p.BaseURL, "/")
	if base == "" {
		return nil, errors.New("PCCS: no base URL")
	}
	var bd Bundle

	tcb, err := p.get(ctx, fmt.Sprintf("%s/%s/certification/v4/tcb?fmspc=%s", base, tee, strings.ToUpper(hex.EncodeToString(fmspc))),
		[]string{"TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"}, signedNextUpdate("tcbInfo"))
	if err != nil {
		return nil, fmt.Errorf("TCB info: %w", err)
	}
	if bd.TCBInfo, bd.TCBInfoSignature, err = splitSigned(tcb.Body, "tcbInfo"); err != nil {
		return nil, fmt.Errorf("TCB info: %w", err)
	}
	bd.TCBInfoIssuerChain = tcb.Headers["chain"]

	qe, err := p.get(ctx, fmt.Sprintf("%s/%s/certification/v4/qe/identity", base, tee),
		[]string{"SGX-Enclave-Identity-Issuer-Chain"}, signedNextUpdate("enclaveIdentity"))
	if err != nil {
		return nil, fmt.Errorf("QE identity: %w", err)
	}
	if bd.QEIdentity, bd.QEIdentitySignature, err = splitSigned(qe.Body, "enclaveIdentity"); err != nil {
		return nil, fmt.Errorf("QE identity: %w", err)
	}
	bd.QEIdentityIssuerChain = qe.Headers["chain"]

	crl, err := p.get(ctx, fmt.Sprintf("%s/sgx/certification/v4/pckcrl?ca=%s&encoding=der", base, pckCA),
		[]string{"SGX-PCK-CRL-Issuer-Chain"}, crlNextUpdate)
	if err != nil {
		return nil, fmt.Errorf("PCK CRL: %w", err)
	}
	der, err := crlDER(crl.Body)
	if err != nil {
		return nil, fmt.Errorf("PCK CRL: %w", err)
	}
	bd.PCKCRL = hex.EncodeToString(der)
	bd.PCKCRLIssuerChain = crl.Headers["chain"]

	rootURL := p.RootCRLURL
	if rootURL == "" {
		rootURL = base + "/sgx/certification/v4/rootcacrl"
	}
	root, err := p.get(ctx, rootURL, nil, crlNextUpdate)
	if err != nil {
		return nil, fmt.Errorf("root CA CRL: %w", err)
	}
	if der, err = crlDER(root.Body); err != nil {
		return nil, fmt.Errorf("root CA CRL: %w", err)
	}
	bd.RootCACRL = hex.EncodeToString(der)
	return NewCollateral(bd)
}

// crlDER returns the DER of a CRL served as DER, PEM or hex text.
func crlDER(b []byte) ([]byte, error) {
	crl, err := parseCRLBytes(b)
	if err != nil {
		return nil, err
	}
	return crl.Raw, nil
}

func crlNextUpdate(body []byte) (time.Time, error) {
	crl, err := parseCRLBytes(body)
	if err != nil {
		return time.Time{}, err
	}
	return crl.NextUpdate, nil
}

func signedNextUpdate(key string) func([]byte) (time.Time, error) {
	return func(body []byte) (time.Time, error) {
		inner, _, err := splitSigned(body, key)
		if err != nil {
			return time.Time{}, err
		}
		var v struct {
			NextUpdate time.Time `json:"nextUpdate"`
		}
		if err := json.Unmarshal([]byte(inner), &v); err != nil {
			return time.Time{}, err
		}
		if v.NextUpdate.IsZero() {
			return time.Time{}, errors.New("no nextUpdate")
		}
		return v.NextUpdate, nil
	}
}

// splitSigned returns the exact text of body[key] and the hex signature.
func splitSigned(body []byte, key string) (string, string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", "", fmt.Errorf("response JSON: %w", err)
	}
	inner, ok := m[key]
	if !ok {
		return "", "", fmt.Errorf("response has no %q", key)
	}
	var sig string
	if err := json.Unmarshal(m["signature"], &sig); err != nil {
		return "", "", fmt.Errorf("response signature: %w", err)
	}
	return string(inner), sig, nil
}

func (p *PCCS) cachePath(u string) string {
	h := sha256.Sum256([]byte(u))
	return filepath.Join(p.CacheDir, hex.EncodeToString(h[:16])+".json")
}

// get returns the response for u from the cache while it is fresh, from
// the server otherwise. chainHeaders lists accepted names of the issuer
// chain header (stored under "chain").
func (p *PCCS) get(ctx context.Context, u string, chainHeaders []string, nextUpdate func([]byte) (time.Time, error)) (*fetched, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.CacheDir != "" {
		if b, err := os.ReadFile(p.cachePath(u)); err == nil {
			var f fetched
			if json.Unmarshal(b, &f) == nil && f.URL == u && p.now().Before(f.NextUpdate) {
				return &f, nil
			}
		}
	}
	f, err := p.fetch(ctx, u, chainHeaders)
	if err != nil {
		return nil, err
	}
	if f.NextUpdate, err = nextUpdate(f.Body); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if p.CacheDir != "" {
		if err := p.store(f); err != nil {
			return nil, fmt.Errorf("collateral cache: %w", err)
		}
	}
	return f, nil
}

func (p *PCCS) fetch(ctx context.Context, u string, chainHeaders []string) (*fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	cl := p.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("%s: response larger than %d bytes", u, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d (%s)", u, resp.StatusCode, resp.Header.Get("Error-Message"))
	}
	f := &fetched{URL: u, Body: body, Headers: map[string]string{}}
	if chainHeaders != nil {
		var raw string
		for _, h := range chainHeaders {
			if raw = resp.Header.Get(h); raw != "" {
				break
			}
		}
		if raw == "" {
			return nil, fmt.Errorf("%s: no %s header", u, chainHeaders[0])
		}
		chain, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s header: %w", u, chainHeaders[0], err)
		}
		if _, err := abi.ParsePEMCertificates([]byte(chain)); err != nil {
			return nil, fmt.Errorf("%s: %s header: %w", u, chainHeaders[0], err)
		}
		f.Headers["chain"] = chain
	}
	return f, nil
}

func (p *PCCS) store(f *fetched) error {
	if err := os.MkdirAll(p.CacheDir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p.cachePath(f.URL), b, atomicfile.Options{Perm: 0o600, Overwrite: true})
}
