package kds

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/internal/shareddata"
)

// vector is one valid SEV-SNP case of the shared test data: a real report
// and the real VCEK AMD's KDS issued for its chip and TCB.
type vector struct {
	ID          string `json:"id"`
	Platform    string `json:"platform"`
	Evidence    string `json:"evidence"`
	VCEK        string `json:"vcek"`
	Chain       string `json:"chain"`
	Valid       bool   `json:"valid"`
	Measurement string `json:"measurement"`

	report, vcek, chain []byte
	at                  time.Time // inside the VCEK's validity
}

func vectors(t testing.TB) (valid []vector, forged vector) {
	t.Helper()
	path := shareddata.Require(t, "attestation", "vectors.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, v := range vs {
		if v.Platform != "snp" {
			continue
		}
		v.report, v.vcek, v.chain = read(v.Evidence), read(v.VCEK), read(v.Chain)
		c, err := x509.ParseCertificate(v.vcek)
		if err != nil {
			t.Fatal(err)
		}
		v.at = c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
		if v.Valid {
			valid = append(valid, v)
		} else {
			forged = v
		}
	}
	if len(valid) < 3 || forged.ID == "" {
		t.Fatalf("%d valid SNP vectors and forged %q", len(valid), forged.ID)
	}
	return valid, forged
}

// fakeKDS serves certificates the way AMD's KDS does: each VCEK under the
// product, hwID and SPLs written in its own AMD extensions (so a request
// built wrongly from the report finds nothing), and each product's chain.
// It counts requests per path.
type fakeKDS struct {
	mu     sync.Mutex
	vceks  map[string][]byte // "Milan/hwid?bl.tee.snp.ucode" → DER
	chains map[string][]byte // "vcek/Milan" → PEM
	hits   map[string]int
	status int           // when set, every answer is this HTTP status
	block  chan struct{} // when set, answers wait for it
}

func newFakeKDS(t *testing.T, vceks [][]byte, chains map[string][]byte) *fakeKDS {
	k := &fakeKDS{vceks: map[string][]byte{}, chains: chains, hits: map[string]int{}}
	for _, der := range vceks {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		ext, err := snp.ParseKeyExtensions(c)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ext.Product()
		if err != nil {
			t.Fatal(err)
		}
		k.vceks[vcekKey(string(p), hex.EncodeToString(ext.HwID), ext.TCB)] = der
	}
	return k
}

func vcekKey(product, hwid string, t snp.TCB) string {
	return product + "/" + hwid + "?" + strconv.Itoa(int(t.FMC)) + "." + strconv.Itoa(int(t.Bootloader)) + "." + strconv.Itoa(int(t.TEE)) + "." + strconv.Itoa(int(t.SNP)) + "." + strconv.Itoa(int(t.Microcode))
}

func (k *fakeKDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.hits[r.URL.Path]++
	status, block, vceks, chains := k.status, k.block, k.vceks, k.chains
	k.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "refused", status)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) != 4 || parts[1] != "v1" {
		http.NotFound(w, r)
		return
	}
	if parts[3] == "cert_chain" {
		if b, ok := chains[parts[0]+"/"+parts[2]]; ok {
			w.Write(b)
			return
		}
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	spl := func(name string) uint8 {
		v, err := strconv.Atoi(q.Get(name))
		if err != nil || v < 0 || v > 255 {
			return 255 // no such TCB
		}
		return uint8(v)
	}
	t := snp.TCB{Bootloader: spl("blSPL"), TEE: spl("teeSPL"), SNP: spl("snpSPL"), Microcode: spl("ucodeSPL")}
	if parts[2] == "Turin" {
		t.FMC = spl("fmcSPL")
	} else if q.Has("fmcSPL") {
		http.Error(w, "fmcSPL is for Turin only", http.StatusBadRequest)
		return
	}
	if der, ok := vceks[vcekKey(parts[2], parts[3], t)]; parts[0] == "vcek" && ok {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(der)
		return
	}
	http.NotFound(w, r)
}

// set replaces what the server answers.
func (k *fakeKDS) set(f func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f()
}

func (k *fakeKDS) take() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.hits
	k.hits = map[string]int{}
	return h
}

func serve(t *testing.T, k *fakeKDS) *httptest.Server {
	srv := httptest.NewTLSServer(k) // HTTPS on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func verify(t *testing.T, src snp.CertSource, v vector) (*attest.Claims, error) {
	t.Helper()
	ev := &attest.Evidence{Platform: attest.PlatformSNP, Data: v.report} // no certificate table, as from an empty auxblob
	return (&snp.Verifier{Certs: src}).Verify(context.Background(), ev, attest.VerifyOptions{Time: v.at})
}

func checkName(err error) string {
	var ce *attest.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return ""
}

// TestClientVerifiesRealReports: reports with no certificates verify with
// the real VCEKs and chain fetched over HTTPS, then from the memory and
// disk caches without another request.
func TestClientVerifiesRealReports(t *testing.T) {
	valid, _ := vectors(t)
	var vceks [][]byte
	for _, v := range valid {
		vceks = append(vceks, v.vcek)
	}
	k := newFakeKDS(t, vceks, map[string][]byte{"vcek/Milan": valid[0].chain})
	srv := serve(t, k)
	cache := t.TempDir()
	c := &Client{BaseURL: srv.URL, CacheDir: cache, HTTP: srv.Client()}
	for _, v := range valid {
		cl, err := verify(t, c, v)
		if err != nil {
			t.Fatalf("%s: %v", v.ID, err)
		}
		if cl.Measurement.String() != v.Measurement {
			t.Fatalf("%s: measurement %s", v.ID, cl.Measurement)
		}
	}
	h := k.take()
	if h["/vcek/v1/Milan/cert_chain"] != 1 || len(h) != 1+len(valid) {
		t.Fatalf("requests %v, want each VCEK and the Milan chain once", h)
	}
	for _, v := range valid {
		if _, err := verify(t, c, v); err != nil {
			t.Fatal(err)
		}
	}
	if h := k.take(); len(h) != 0 {
		t.Fatalf("a warm client fetched %v", h)
	}
	srv.Close()
	fresh := &Client{BaseURL: srv.URL, CacheDir: cache, HTTP: srv.Client()}
	for _, v := range valid {
		if _, err := verify(t, fresh, v); err != nil {
			t.Fatalf("%s from the disk cache with KDS down: %v", v.ID, err)
		}
	}

	// Past the VCEK's expiry the cache is not used, and KDS's (expired)
	// answer is refused.
	late := &Client{BaseURL: srv.URL, CacheDir: cache, HTTP: srv.Client(), Now: func() time.Time { return time.Now().AddDate(30, 0, 0) }}
	req := snp.KeyRequest{SigningKey: snp.SigningKeyVCEK, Product: snp.Milan}
	rep, _ := snp.ParseReport(valid[0].report)
	req.ChipID, req.ReportedTCB = rep.ChipID, rep.ReportedTCB
	if _, err := late.KeyCertificates(context.Background(), req); err == nil || !strings.Contains(err.Error(), "connect") && !strings.Contains(err.Error(), "refused") {
		t.Fatalf("expired cache entry was used: %v", err)
	}
}

// TestClientWrongAnswersFailClosed: whatever KDS (or a mirror, or someone
// in between) answers, only the real VCEK for the report's chip verifies.
func TestClientWrongAnswersFailClosed(t *testing.T) {
	valid, forged := vectors(t)
	var trustee, other vector
	for _, v := range valid {
		if v.ID == "trustee-milan" {
			trustee = v
		} else {
			other = v
		}
	}
	// The forged VCEK (another hwID, not signed by AMD) served for the
	// trustee report's URL by a hostile mirror: refused, and not cached.
	rep, _ := snp.ParseReport(trustee.report)
	k := newFakeKDS(t, nil, map[string][]byte{"vcek/Milan": trustee.chain})
	k.vceks[vcekKey("Milan", hex.EncodeToString(rep.ChipID[:]), snp.DecodeTCB(snp.Milan, rep.ReportedTCB))] = forged.vcek
	srv := serve(t, k)
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), Products: []snp.Product{snp.Milan}}
	for range 2 {
		if _, err := verify(t, c, trustee); checkName(err) != "vcek_missing" || !strings.Contains(err.Error(), "VCEK for another chip") {
			t.Fatalf("forged VCEK from KDS: %v", err)
		}
	}
	if h := k.take(); h["/vcek/v1/Milan/"+hex.EncodeToString(rep.ChipID[:])] != 2 {
		t.Fatalf("a refused answer was cached: requests %v", h)
	}
	// Another chip's genuine VCEK served for this report's URL: chip_id.
	otherCert, _ := x509.ParseCertificate(other.vcek)
	otherExt, _ := snp.ParseKeyExtensions(otherCert)
	k.set(func() {
		k.vceks = map[string][]byte{vcekKey("Milan", hex.EncodeToString(rep.ChipID[:]), otherExt.TCB): other.vcek}
	})
	c = &Client{BaseURL: srv.URL, HTTP: srv.Client(), Products: []snp.Product{snp.Milan}}
	if _, err := verify(t, c, vector{report: patchTCB(t, trustee.report, otherExt.TCB), at: other.at}); checkName(err) != "vcek_missing" || !strings.Contains(err.Error(), "VCEK for another chip") {
		t.Fatalf("another chip's VCEK: %v", err)
	}
	// A certificate chain whose ASK is not signed by the pinned ARK.
	k2 := newFakeKDS(t, [][]byte{trustee.vcek}, map[string][]byte{"vcek/Milan": swapChain(t, trustee.chain)})
	srv2 := serve(t, k2)
	c2 := &Client{BaseURL: srv2.URL, HTTP: srv2.Client()}
	if _, err := verify(t, c2, trustee); checkName(err) != "ask_chain" {
		t.Fatalf("chain with a foreign ASK: %v", err)
	}
}

// patchTCB rewrites a report's REPORTED_TCB (Milan layout): the signature
// no longer matches, but the lookup follows the new TCB.
func patchTCB(t *testing.T, report []byte, tcb snp.TCB) []byte {
	r := append([]byte(nil), report...)
	r[0x180], r[0x181], r[0x186], r[0x187] = tcb.Bootloader, tcb.TEE, tcb.SNP, tcb.Microcode
	return r
}

// swapChain returns a Milan "chain" whose intermediate is the Genoa ASK.
func swapChain(t *testing.T, milan []byte) []byte {
	genoa, err := os.ReadFile(shareddata.Require(t, "attestation", "common", "amd_ask_ark_genoa_vcek.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return genoa
}

func TestClientErrors(t *testing.T) {
	valid, _ := vectors(t)
	k := newFakeKDS(t, nil, map[string][]byte{"vcek/Milan": valid[0].chain})
	srv := serve(t, k)
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	rep, err := snp.ParseReport(valid[0].report)
	if err != nil {
		t.Fatal(err)
	}
	req := snp.KeyRequestFor(rep)

	// Unknown chip: every fitting product line is asked, then a clear error.
	_, err = c.KeyCertificates(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "no VCEK for this chip and TCB (tried Milan, Genoa)") {
		t.Fatalf("unknown chip: %v", err)
	}
	if _, err := verify(t, c, valid[0]); checkName(err) != "vcek_missing" {
		t.Fatalf("verifier with a KDS miss: %v", err)
	}
	k.set(func() { k.status = http.StatusTooManyRequests })
	if _, err := c.KeyCertificates(context.Background(), req); err == nil || !strings.Contains(err.Error(), "rate limit (Retry-After: 10)") {
		t.Fatalf("429: %v", err)
	}
	garbage := map[string][]byte{}
	for key := range newFakeKDS(t, [][]byte{valid[0].vcek}, nil).vceks {
		garbage[key] = []byte("garbage")
	}
	k.set(func() { k.status, k.vceks = 0, garbage })
	if _, err := c.KeyCertificates(context.Background(), req); err == nil || !strings.Contains(err.Error(), "not a certificate") {
		t.Fatalf("garbage VCEK: %v", err)
	}

	vlek := req
	vlek.SigningKey = snp.SigningKeyVLEK
	if _, err := c.KeyCertificates(context.Background(), vlek); err == nil || !strings.Contains(err.Error(), "cloud provider") {
		t.Fatalf("VLEK: %v", err)
	}
	masked := req
	masked.ChipID = [64]byte{}
	if _, err := c.KeyCertificates(context.Background(), masked); err == nil || !strings.Contains(err.Error(), "CHIP_ID is zero") {
		t.Fatalf("masked chip id: %v", err)
	}
	if _, err := (&Client{}).KeyCertificates(context.Background(), req); err == nil || !strings.Contains(err.Error(), "no KDS base URL") {
		t.Fatalf("no base URL: %v", err)
	}

	// A cancelled request ends at once.
	block := make(chan struct{})
	defer close(block)
	k.set(func() { k.block = block })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.KeyCertificates(ctx, req)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("KeyCertificates ignored the cancelled context")
	}
}

// TestTurin: a Turin CHIP_ID (8 bytes, zero after) is looked up under
// Turin only, with fmcSPL and the Turin TCB layout.
func TestTurin(t *testing.T) {
	var chip [64]byte
	copy(chip[:], []byte{0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0x01})
	tcb := uint64(0x05_00_00_00_04_02_01_03) // ucode 5, snp 4, tee 2, bl 1, fmc 3
	u, err := VCEKURL("https://kdsintf.amd.com/", snp.Turin, chip, tcb)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://kdsintf.amd.com/vcek/v1/Turin/cdcdcdcdcdcdcd01?fmcSPL=03&blSPL=01&teeSPL=02&snpSPL=04&ucodeSPL=05"; u != want {
		t.Fatalf("got  %s\nwant %s", u, want)
	}
	c := &Client{}
	if got := c.candidates(snp.KeyRequest{ChipID: chip}); len(got) != 1 || got[0] != snp.Turin {
		t.Fatalf("Turin chip id candidates %v", got)
	}
	chip[20] = 1
	if got := c.candidates(snp.KeyRequest{ChipID: chip}); len(got) != 2 || got[0] != snp.Milan || got[1] != snp.Genoa {
		t.Fatalf("Milan/Genoa chip id candidates %v", got)
	}
	if got := c.candidates(snp.KeyRequest{ChipID: chip, Product: snp.Genoa}); len(got) != 1 || got[0] != snp.Genoa {
		t.Fatalf("report naming Genoa: %v", got)
	}
}

// TestBundle verifies the real reports against an offline bundle directory
// holding their VCEKs and the Milan chain.
func TestBundle(t *testing.T) {
	valid, forged := vectors(t)
	dir := t.TempDir()
	for i, v := range valid {
		os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".der"), v.vcek, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "milan.pem"), valid[0].chain, 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not read"), 0o644)
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range valid {
		if _, err := verify(t, b, v); err != nil {
			t.Fatalf("%s: %v", v.ID, err)
		}
	}
	// One PEM file works too; a chip it lacks is named in the error.
	one := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(one, valid[0].chain, 0o644)
	if _, err := LoadBundle(one); err == nil || !strings.Contains(err.Error(), "holds no VCEK or VLEK") {
		t.Fatalf("bundle without keys: %v", err)
	}
	only, err := LoadBundle(filepath.Join(dir, "0.der"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, only, valid[1]); checkName(err) != "vcek_missing" || !strings.Contains(err.Error(), "has no VCEK for chip") {
		t.Fatalf("chip not in bundle: %v", err)
	}
	// A bundle answers only with a certificate for the report's own chip:
	// the forged VCEK (another hwID) is never handed out for the report.
	fdir := t.TempDir()
	os.WriteFile(filepath.Join(fdir, "forged.der"), forged.vcek, 0o644)
	fb, err := LoadBundle(fdir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, fb, forged); checkName(err) != "vcek_missing" {
		t.Fatalf("forged VCEK in a bundle: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "x.pem")
	os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	if _, err := LoadBundle(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad certificate file: %v", err)
	}
	if _, err := LoadBundle(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing bundle loaded")
	}
}
