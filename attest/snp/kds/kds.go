// Package kds gets the AMD certificates an SEV-SNP report needs when its
// evidence carries none: from AMD's Key Distribution Service (KDS) or a
// mirror of it, cached in memory and on disk (Client), or from an offline
// bundle of certificates (Bundle). Both implement snp.CertSource.
//
// Nothing fetched is trusted: the snp verifier checks every certificate up
// to the pinned AMD root, the VCEK's hwID against the report's CHIP_ID and
// its TCB against the report's REPORTED_TCB. A wrong or forged answer fails
// verification; it cannot pass it.
//
// The KDS interface (AMD publication 57230, "VCEK Certificate and KDS
// Interface Specification"):
//
//	GET {base}/vcek/v1/{product}/{hwid}?blSPL=BL&teeSPL=TEE&snpSPL=SNP&ucodeSPL=UCODE   VCEK, DER
//	GET {base}/vcek/v1/Turin/{hwid}?fmcSPL=FMC&blSPL=BL&teeSPL=TEE&snpSPL=SNP&ucodeSPL=UCODE
//	GET {base}/vcek/v1/{product}/cert_chain    ASK then ARK, PEM
//	GET {base}/vlek/v1/{product}/cert_chain    ASVK then ARK, PEM
//
// hwid is the report's CHIP_ID in lower-case hex: all 64 bytes for Milan and
// Genoa, the first 8 for Turin (the rest of a Turin CHIP_ID is zero). The
// SPLs are the report's REPORTED_TCB split per product, in decimal. VLEKs
// are issued to cloud providers and fetched with their credentials, so a
// VLEK must come with the evidence or from a Bundle.
package kds

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/attest/snp"
)

// DefaultURL is AMD's Key Distribution Service.
const DefaultURL = "https://kdsintf.amd.com"

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// maxResponse bounds a KDS answer: a certificate chain is under 5 KiB.
const maxResponse = 64 << 10

// Client fetches VCEKs and certificate chains from AMD KDS or a mirror.
// A zero Client is not usable: set BaseURL. It is safe for concurrent use.
type Client struct {
	// BaseURL is https://kdsintf.amd.com or a mirror serving the same paths.
	BaseURL string
	// CacheDir, when set, keeps every certificate on disk until it expires;
	// KDS limits request rates, and a VCEK never changes for a chip and TCB.
	CacheDir string
	// HTTP is the client to use; nil means one with a 30-second timeout,
	// so that an unresponsive KDS fails a verification instead of holding it.
	HTTP *http.Client
	// Products are the product lines tried, in order, for reports that do
	// not name theirs (version 2); nil means Milan, Genoa, Turin. A Turin
	// CHIP_ID (zero after its first 8 bytes) is only tried as Turin.
	Products []snp.Product
	// Now is the clock for cache expiry; nil means time.Now.
	Now func() time.Time

	mu  sync.Mutex
	mem map[string][]byte // URL → DER (certificate) or PEM (chain)
}

var _ snp.CertSource = (*Client)(nil)

// errNotFound marks a KDS 404: no such product, chip or TCB.
var errNotFound = errors.New("not found")

// KeyCertificates implements snp.CertSource.
func (c *Client) KeyCertificates(ctx context.Context, req snp.KeyRequest) (*snp.KeyCertificates, error) {
	if req.SigningKey == snp.SigningKeyVLEK {
		return nil, errors.New("AMD KDS: a VLEK is only served to its cloud provider: it must come with the evidence or from an offline bundle")
	}
	if req.SigningKey != snp.SigningKeyVCEK {
		return nil, fmt.Errorf("AMD KDS: report signing key %s has no certificate", req.SigningKey)
	}
	if allZero(req.ChipID[:]) {
		return nil, errors.New("AMD KDS: the report's CHIP_ID is zero (MASK_CHIP_ID): no VCEK can be looked up")
	}
	var tried []string
	for _, p := range c.candidates(req) {
		u, err := VCEKURL(c.BaseURL, p, req.ChipID, req.ReportedTCB)
		if err != nil {
			return nil, err
		}
		leaf, err := c.get(ctx, u, vcekFor(p, req))
		if errors.Is(err, errNotFound) {
			tried = append(tried, string(p))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("AMD KDS: VCEK: %w", err)
		}
		chain, err := c.get(ctx, ChainURL(c.BaseURL, p, snp.SigningKeyVCEK), parseChain)
		if err != nil {
			return nil, fmt.Errorf("AMD KDS: %s certificate chain: %w", p, err)
		}
		ask, _ := pem.Decode(chain)
		return &snp.KeyCertificates{Leaf: leaf, Intermediate: ask.Bytes}, nil
	}
	if len(tried) == 0 {
		return nil, errors.New("AMD KDS: no product line fits the report's CHIP_ID")
	}
	return nil, fmt.Errorf("AMD KDS has no VCEK for this chip and TCB (tried %s)", strings.Join(tried, ", "))
}

// candidates lists the product lines to ask for: the report's own, else
// those configured, keeping to the CHIP_ID form of each.
func (c *Client) candidates(req snp.KeyRequest) []snp.Product {
	if req.Product != "" {
		return []snp.Product{req.Product}
	}
	ps := c.Products
	if ps == nil {
		ps = []snp.Product{snp.Milan, snp.Genoa, snp.Turin}
	}
	turinID := allZero(req.ChipID[8:])
	var out []snp.Product
	for _, p := range ps {
		if (p == snp.Turin) == turinID {
			out = append(out, p)
		}
	}
	return out
}

// VCEKURL is the KDS URL of the VCEK for a chip at a TCB.
func VCEKURL(base string, p snp.Product, chipID [64]byte, reportedTCB uint64) (string, error) {
	t := snp.DecodeTCB(p, reportedTCB)
	base = strings.TrimRight(base, "/")
	switch p {
	case snp.Milan, snp.Genoa:
		return fmt.Sprintf("%s/vcek/v1/%s/%s?blSPL=%02d&teeSPL=%02d&snpSPL=%02d&ucodeSPL=%02d",
			base, p, hex.EncodeToString(chipID[:]), t.Bootloader, t.TEE, t.SNP, t.Microcode), nil
	case snp.Turin:
		return fmt.Sprintf("%s/vcek/v1/%s/%s?fmcSPL=%02d&blSPL=%02d&teeSPL=%02d&snpSPL=%02d&ucodeSPL=%02d",
			base, p, hex.EncodeToString(chipID[:8]), t.FMC, t.Bootloader, t.TEE, t.SNP, t.Microcode), nil
	}
	return "", fmt.Errorf("AMD KDS: unknown product %q", p)
}

// ChainURL is the KDS URL of the intermediate and root for a product: ASK
// and ARK for VCEKs, ASVK and ARK for VLEKs.
func ChainURL(base string, p snp.Product, key snp.SigningKey) string {
	kind := "vcek"
	if key == snp.SigningKeyVLEK {
		kind = "vlek"
	}
	return fmt.Sprintf("%s/%s/v1/%s/cert_chain", strings.TrimRight(base, "/"), kind, p)
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// get returns the body at u, checked by parse (which also says until when
// it may be cached), from memory, the disk cache or the server.
func (c *Client) get(ctx context.Context, u string, parse func([]byte) ([]byte, time.Time, error)) ([]byte, error) {
	if c.BaseURL == "" {
		return nil, errors.New("no KDS base URL")
	}
	if b := c.cached(u, parse); b != nil {
		return b, nil
	}
	// Fetch without the lock: a slow KDS must not hold up cached answers.
	body, err := c.fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	b, until, err := parse(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if !c.now().Before(until) {
		return nil, fmt.Errorf("%s: the certificate expired at %s", u, until.UTC().Format(time.RFC3339))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.CacheDir != "" {
		if err := os.MkdirAll(c.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("KDS cache: %w", err)
		}
		if err := atomicfile.WriteFile(c.cachePath(u), b, atomicfile.Options{Perm: 0o600, Overwrite: true}); err != nil {
			return nil, fmt.Errorf("KDS cache: %w", err)
		}
	}
	c.remember(u, b)
	return b, nil
}

// cached returns the unexpired answer for u from memory or disk, or nil.
func (c *Client) cached(u string, parse func([]byte) ([]byte, time.Time, error)) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.mem[u]; ok {
		if _, until, err := parse(b); err == nil && c.now().Before(until) {
			return b
		}
		delete(c.mem, u)
	}
	if c.CacheDir == "" {
		return nil
	}
	b, err := os.ReadFile(c.cachePath(u))
	if err != nil {
		return nil
	}
	if _, until, err := parse(b); err != nil || !c.now().Before(until) {
		return nil // unreadable or expired: fetched again and replaced
	}
	c.remember(u, b)
	return b
}

func (c *Client) remember(u string, b []byte) {
	if c.mem == nil || len(c.mem) > 1024 {
		c.mem = map[string][]byte{}
	}
	c.mem[u] = b
}

func (c *Client) cachePath(u string) string {
	h := sha256.Sum256([]byte(u))
	return filepath.Join(c.CacheDir, hex.EncodeToString(h[:16]))
}

func (c *Client) fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	cl := c.HTTP
	if cl == nil {
		cl = defaultHTTP
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
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", u, errNotFound)
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%s: HTTP 429: KDS rate limit (Retry-After: %s); use a cache directory or a mirror", u, resp.Header.Get("Retry-After"))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	case len(body) > maxResponse:
		return nil, fmt.Errorf("%s: response larger than %d bytes", u, maxResponse)
	}
	return body, nil
}

// vcekFor checks, before anything is cached, that an answer is a VCEK for
// the chip and TCB asked about: a mix-up (or a hostile mirror) then fails
// here with a clear message instead of staying in the cache. Its signature
// is still the verifier's to check.
func vcekFor(p snp.Product, req snp.KeyRequest) func([]byte) ([]byte, time.Time, error) {
	return func(b []byte) ([]byte, time.Time, error) {
		der, until, err := parseDER(b)
		if err != nil {
			return nil, until, err
		}
		cert, _ := x509.ParseCertificate(der)
		ext, err := snp.ParseKeyExtensions(cert)
		if err != nil {
			return nil, until, fmt.Errorf("not a VCEK: %w", err)
		}
		switch got, _ := ext.Product(); {
		case got != p:
			return nil, until, fmt.Errorf("the answer is a VCEK for %s, not %s", ext.ProductName, p)
		case len(ext.HwID) == 0 || string(ext.HwID) != string(req.ChipID[:len(ext.HwID)]):
			return nil, until, errors.New("the answer is a VCEK for another chip (hwID is not the report's CHIP_ID)")
		case ext.TCB != snp.DecodeTCB(p, req.ReportedTCB):
			return nil, until, fmt.Errorf("the answer is a VCEK for TCB %s, not the report's %s", ext.TCB, snp.DecodeTCB(p, req.ReportedTCB))
		}
		return der, until, nil
	}
}

// parseDER accepts one certificate, DER (as KDS serves a VCEK) or PEM (as
// some mirrors do), and returns its DER.
func parseDER(b []byte) ([]byte, time.Time, error) {
	if blk, rest := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
			return nil, time.Time{}, errors.New("not a single PEM certificate")
		}
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("not a certificate: %w", err)
	}
	return cert.Raw, cert.NotAfter, nil
}

// parseChain accepts the PEM intermediate-then-root chain KDS serves and
// returns it as served; it may be cached until the earlier expiry.
func parseChain(b []byte) ([]byte, time.Time, error) {
	var until time.Time
	rest := b
	for i := 0; i < 2; i++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, time.Time{}, fmt.Errorf("certificate chain: want 2 PEM certificates (intermediate, root), found %d", i)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("certificate chain: certificate %d: %w", i+1, err)
		}
		if i == 0 || cert.NotAfter.Before(until) {
			until = cert.NotAfter
		}
	}
	return b, until, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
