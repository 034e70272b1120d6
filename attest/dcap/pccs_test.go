package dcap

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/atomicfile/atomicfiletest"
	"github.com/ppml/ppml/attest"
)

// intelEscape percent-encodes a PEM chain the way Intel's PCS does.
func intelEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// fakePCS serves bundles through Intel's PCS v4 paths and counts requests.
type fakePCS struct {
	mu    sync.Mutex
	hits  map[string]int
	sgx   Bundle
	tdx   Bundle
	fmspc map[string]string // "sgx"/"tdx" → FMSPC served
	crls  map[string]Bundle // PCK CA ("processor", "platform") → bundle with its CRL
}

func (f *fakePCS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 4 || parts[1] != "certification" || parts[2] != "v4" {
		http.NotFound(w, r)
		return
	}
	bd := f.sgx
	if parts[0] == "tdx" {
		bd = f.tdx
	}
	switch strings.Join(parts[3:], "/") {
	case "tcb":
		if !strings.EqualFold(r.URL.Query().Get("fmspc"), f.fmspc[parts[0]]) {
			w.Header().Set("Error-Message", "no TCB info for this FMSPC")
			http.NotFound(w, r)
			return
		}
		w.Header().Set("TCB-Info-Issuer-Chain", intelEscape(bd.TCBInfoIssuerChain))
		w.Write([]byte(`{"tcbInfo":` + bd.TCBInfo + `,"signature":"` + bd.TCBInfoSignature + `"}`))
	case "qe/identity":
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", intelEscape(bd.QEIdentityIssuerChain))
		w.Write([]byte(`{"enclaveIdentity":` + bd.QEIdentity + `,"signature":"` + bd.QEIdentitySignature + `"}`))
	case "pckcrl":
		var ok bool
		bd, ok = f.crls[r.URL.Query().Get("ca")]
		if parts[0] != "sgx" || !ok || r.URL.Query().Get("encoding") != "der" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("SGX-PCK-CRL-Issuer-Chain", intelEscape(bd.PCKCRLIssuerChain))
		der, _ := hex.DecodeString(bd.PCKCRL)
		w.Write(der)
	case "rootcacrl":
		w.Write([]byte(bd.RootCACRL)) // PCCS serves it as hex text
	default:
		http.NotFound(w, r)
	}
}

func (f *fakePCS) take() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hits
	f.hits = map[string]int{}
	return h
}

func TestPCCS(t *testing.T) {
	sgx := caseByID(t, "phala-sgx-v3")
	tdx := caseByID(t, "phala-tdx-v4")
	fake := &fakePCS{hits: map[string]int{}, sgx: bundleOf(t, sgx.bundle), tdx: bundleOf(t, tdx.bundle),
		fmspc: map[string]string{"sgx": "00A067110000", "tdx": "B0C06F000000"}}
	// The SGX quote's PCK comes from the Processor CA, the TDX one's from
	// the Platform CA.
	fake.crls = map[string]Bundle{"processor": fake.sgx, "platform": fake.tdx}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cache := t.TempDir()
	now := sgx.at
	newPCCS := func() *PCCS {
		return &PCCS{BaseURL: srv.URL, CacheDir: cache, Client: srv.Client(), Now: func() time.Time { return now }}
	}

	for _, tc := range []testCase{sgx, tdx} {
		v := &Verifier{Source: newPCCS()}
		c, err := tc.verify(t, v, tc.at)
		if err != nil {
			t.Fatalf("%s via PCCS: %v", tc.ID, err)
		}
		if c.TCBStatus != tc.TCBStatus {
			t.Fatalf("%s via PCCS: status %s, want %s", tc.ID, c.TCBStatus, tc.TCBStatus)
		}
	}
	hits := fake.take()
	for _, p := range []string{"/sgx/certification/v4/tcb", "/sgx/certification/v4/qe/identity", "/tdx/certification/v4/tcb",
		"/tdx/certification/v4/qe/identity", "/sgx/certification/v4/rootcacrl"} {
		if hits[p] != 1 {
			t.Errorf("%s fetched %d times, want 1 (hits %v)", p, hits[p], hits)
		}
	}
	if hits["/sgx/certification/v4/pckcrl"] != 2 {
		t.Errorf("pckcrl fetched %d times, want 2 (processor and platform)", hits["/sgx/certification/v4/pckcrl"])
	}

	// A new client on the same cache directory: everything from disk.
	if _, err := newPCCS().Collateral(context.Background(), attest.PlatformSGX, mustHex("00A067110000"), "processor"); err != nil {
		t.Fatal(err)
	}
	if h := fake.take(); len(h) != 0 {
		t.Fatalf("fresh cache still fetched %v", h)
	}

	// Past the QE identity's nextUpdate (2025-07-19T10:01:18Z) but before
	// the PCK CRL's (10:23:18) and the TCB info's (10:56:11): only the QE
	// identity is fetched again.
	c0, _ := ParseBundle(sgx.bundle)
	fetchAt := func(at time.Time) map[string]int {
		t.Helper()
		now = at
		if _, err := newPCCS().Collateral(context.Background(), attest.PlatformSGX, mustHex("00A067110000"), "processor"); err != nil {
			t.Fatal(err)
		}
		return fake.take()
	}
	if h := fetchAt(c0.QEIdentity.NextUpdate.Add(-time.Second)); len(h) != 0 {
		t.Fatalf("1s before the QE identity's nextUpdate fetched %v", h)
	}
	if h := fetchAt(c0.QEIdentity.NextUpdate.Add(time.Second)); len(h) != 1 || h["/sgx/certification/v4/qe/identity"] != 1 {
		t.Fatalf("after the QE identity's nextUpdate fetched %v, want only the QE identity", h)
	}
	h := fetchAt(c0.TCBInfo.NextUpdate.Add(time.Second))
	if len(h) != 3 || h["/sgx/certification/v4/tcb"] != 1 || h["/sgx/certification/v4/pckcrl"] != 1 {
		t.Fatalf("after the TCB info's nextUpdate fetched %v, want TCB info, QE identity and PCK CRL", h)
	}

	// Unknown FMSPC: the verifier names the missing collateral.
	_, err := newPCCS().Collateral(context.Background(), attest.PlatformSGX, mustHex("00112233AABB"), "processor")
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "no TCB info for this FMSPC") {
		t.Fatalf("unknown FMSPC: %v", err)
	}
	// No cache directory: works, fetches every time.
	p := &PCCS{BaseURL: srv.URL, Client: srv.Client()}
	for range 2 {
		if _, err := p.Collateral(context.Background(), attest.PlatformTDX, mustHex("B0C06F000000"), "platform"); err != nil {
			t.Fatal(err)
		}
	}
	if h := fake.take(); h["/tdx/certification/v4/tcb"] != 2 {
		t.Fatalf("uncached client: %v", h)
	}
}

func TestPCCSRefusesBadResponses(t *testing.T) {
	sgx := caseByID(t, "phala-sgx-v3")
	bd := bundleOf(t, sgx.bundle)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"no chain header", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"tcbInfo":` + bd.TCBInfo + `,"signature":"` + bd.TCBInfoSignature + `"}`))
		}, "no TCB-Info-Issuer-Chain header"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("TCB-Info-Issuer-Chain", intelEscape(bd.TCBInfoIssuerChain))
			w.Write([]byte(`<html>`))
		}, "response JSON"},
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, "HTTP 500"},
	} {
		srv := httptest.NewServer(tc.handler)
		p := &PCCS{BaseURL: srv.URL, Client: srv.Client(), CacheDir: t.TempDir()}
		_, err := p.Collateral(context.Background(), attest.PlatformSGX, mustHex("00A067110000"), "processor")
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	v := &Verifier{Source: &PCCS{BaseURL: "http://127.0.0.1:1", Client: &http.Client{Timeout: time.Second}}}
	if _, err := sgx.verify(t, v, sgx.at); checkName(err) != "collateral_unavailable" {
		t.Fatalf("unreachable PCCS: %v, want collateral_unavailable", err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestPCCSCacheWriteFailureKeepsOld makes the cache write fail part-way
// (file size limit) when stale entries are refreshed: the refresh reports
// the cache error and every old entry stays as it was.
func TestPCCSCacheWriteFailureKeepsOld(t *testing.T) {
	if !atomicfiletest.Child(t) {
		return
	}
	sgx := caseByID(t, "phala-sgx-v3")
	fake := &fakePCS{hits: map[string]int{}, sgx: bundleOf(t, sgx.bundle), fmspc: map[string]string{"sgx": "00A067110000"}}
	fake.crls = map[string]Bundle{"processor": fake.sgx}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cache := t.TempDir()
	now := sgx.at
	p := &PCCS{BaseURL: srv.URL, CacheDir: cache, Client: srv.Client(), Now: func() time.Time { return now }}
	if _, err := p.Collateral(context.Background(), attest.PlatformSGX, mustHex("00A067110000"), "processor"); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		before[e.Name()], _ = os.ReadFile(filepath.Join(cache, e.Name()))
	}
	if len(before) != 4 {
		t.Fatalf("cache holds %d entries, want 4", len(before))
	}

	atomicfiletest.LimitFileSize(t, 1024)
	now = now.AddDate(1, 0, 0) // every entry is stale
	_, err := p.Collateral(context.Background(), attest.PlatformSGX, mustHex("00A067110000"), "processor")
	if err == nil || !strings.Contains(err.Error(), "collateral cache") || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("refresh with a failing cache write: %v", err)
	}
	for name, b := range before {
		atomicfiletest.Unchanged(t, filepath.Join(cache, name), b)
	}
	atomicfiletest.NoTemporaries(t, cache)
}
