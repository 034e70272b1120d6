package cli_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/internal/cli"
	"github.com/ppml/ppml/internal/shareddata"
)

// runMain runs cli.Main as the binary would and captures its stdout.
func runMain(t *testing.T, args ...string) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	devnull, _ := os.Open(os.DevNull)
	os.Stdout, os.Stderr = w, devnull
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	code := cli.Main(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	w.Close()
	devnull.Close()
	return string(<-done), code
}

type vec struct {
	ID          string   `json:"id"`
	Platform    string   `json:"platform"`
	Evidence    string   `json:"evidence"`
	Collateral  string   `json:"collateral"`
	VCEK        string   `json:"vcek"`
	Chain       string   `json:"chain"`
	At          *string  `json:"at"`
	Valid       bool     `json:"valid"`
	TCBStatus   string   `json:"tcb_status"`
	Advisories  []string `json:"advisories"`
	ReportData  string   `json:"report_data"`
	Measurement string   `json:"measurement"`
	MREnclave   string   `json:"mrenclave"`
	MRTD        string   `json:"mrtd"`
}

func vectors(t *testing.T) (string, []vec) {
	p := shareddata.Require(t, "attestation", "vectors.json")
	b, _ := os.ReadFile(p)
	var vs []vec
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p), vs
}

type result struct {
	Valid       bool     `json:"valid"`
	Platform    string   `json:"platform"`
	Insecure    bool     `json:"insecure"`
	TCBStatus   string   `json:"tcb_status"`
	Advisories  []string `json:"advisories"`
	Measurement string   `json:"measurement"`
	MREnclave   string   `json:"mrenclave"`
	MRTD        string   `json:"mrtd"`
	ReportData  string   `json:"report_data"`
	Check       string   `json:"check"`
	Error       string   `json:"error"`
}

func decode(t *testing.T, out string) result {
	t.Helper()
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	return r
}

// snpAt is a time inside the vectors' VCEK validity (they carry none).
const snpAt = "2026-01-01T00:00:00Z"

func TestAttestVerifyVectors(t *testing.T) {
	dir, vs := vectors(t)
	for _, v := range vs {
		t.Run(v.ID, func(t *testing.T) {
			args := []string{"attest", "verify", "--json", "--evidence", filepath.Join(dir, v.Evidence)}
			switch v.Platform {
			case "snp":
				args = append(args, "--vcek", filepath.Join(dir, v.VCEK), "--chain", filepath.Join(dir, v.Chain), "--at", snpAt)
			default:
				args = append(args, "--collateral", filepath.Join(dir, v.Collateral), "--at", *v.At)
			}
			out, code := runMain(t, args...)
			r := decode(t, out)
			if v.Valid && v.Platform != "snp" {
				out, code, r = refuseTrailingJunk(t, v.Evidence, args, out, code, r)
			}
			if !v.Valid {
				if code != 1 || r.Valid || r.Check == "" || r.Error == "" {
					t.Fatalf("invalid case: exit %d, %+v", code, r)
				}
				return
			}
			if code != 0 || !r.Valid {
				t.Fatalf("exit %d: %+v", code, r)
			}
			if r.Platform != v.Platform || r.ReportData != v.ReportData {
				t.Errorf("platform %s report_data %s", r.Platform, r.ReportData)
			}
			if v.TCBStatus != "" && r.TCBStatus != v.TCBStatus {
				t.Errorf("tcb_status %s, want %s", r.TCBStatus, v.TCBStatus)
			}
			if strings.Join(r.Advisories, ",") != strings.Join(v.Advisories, ",") {
				t.Errorf("advisories %v, want %v", r.Advisories, v.Advisories)
			}
			for name, pair := range map[string][2]string{"measurement": {r.Measurement, v.Measurement}, "mrenclave": {r.MREnclave, v.MREnclave}, "mrtd": {r.MRTD, v.MRTD}} {
				if pair[1] != "" && pair[0] != pair[1] {
					t.Errorf("%s %s, want %s", name, pair[0], pair[1])
				}
			}
		})
	}
}

// refuseTrailingJunk handles a vector published with non-zero bytes after
// its quote (go-tdx-guest appended a test marker to a real quote): the
// command refuses it naming the offset, and the quote as Intel produced it
// (written to a temporary file) gets the vector's verdict.
func refuseTrailingJunk(t *testing.T, evidence string, args []string, out string, code int, r result) (string, int, result) {
	t.Helper()
	path := args[4]
	b, _ := os.ReadFile(path)
	q, err := dcap.ParseQuote(b)
	if err != nil || q.TrailingNonZero == nil {
		return out, code, r
	}
	if want := fmt.Sprintf("non-zero byte at offset %d", *q.TrailingNonZero); code != 1 || r.Check != "quote_parse" || !strings.Contains(r.Error, want) {
		t.Fatalf("%s with trailing junk: exit %d %+v, want quote_parse naming %q", evidence, code, r, want)
	}
	trimmed := filepath.Join(t.TempDir(), filepath.Base(path))
	os.WriteFile(trimmed, b[:q.Length], 0o644)
	args = append(append([]string(nil), args[:4]...), append([]string{trimmed}, args[5:]...)...)
	out, code = runMain(t, args...)
	return out, code, decode(t, out)
}

func TestAttestVerifyInvalid(t *testing.T) {
	dir, _ := vectors(t)
	tmp := t.TempDir()
	report, _ := os.ReadFile(filepath.Join(dir, "snp", "virtee_milan.report.bin"))
	report[0x90] ^= 1 // measurement
	tampered := filepath.Join(tmp, "tampered.bin")
	os.WriteFile(tampered, report, 0o644)
	vcek := filepath.Join(dir, "snp", "virtee_milan.vcek.der")

	out, code := runMain(t, "attest", "verify", "--json", "--evidence", tampered, "--vcek", vcek, "--at", snpAt)
	if r := decode(t, out); code != 1 || r.Valid || r.Check != "report_signature" || r.Measurement != "" {
		t.Fatalf("tampered: exit %d %+v", code, r)
	}
	// Text mode names the check too.
	out, code = runMain(t, "attest", "verify", "--evidence", tampered, "--vcek", vcek, "--at", snpAt)
	if code != 1 || !strings.Contains(out, "report_signature") {
		t.Fatalf("text: exit %d %q", code, out)
	}
	// One second after the VCEK expired.
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", filepath.Join(dir, "snp", "virtee_milan.report.bin"), "--vcek", vcek, "--at", "2100-01-01T00:00:00Z")
	if r := decode(t, out); code != 1 || !strings.HasSuffix(r.Check, "_validity") {
		t.Fatalf("expired: exit %d %+v", code, r)
	}
	// SGX one second past its collateral window.
	at, _ := time.Parse(time.RFC3339, "2025-07-19T10:01:17Z")
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", filepath.Join(dir, "sgx", "phala_sgx_v3.quote.bin"),
		"--collateral", filepath.Join(dir, "sgx", "collateral_00A067110000_2025-06-19_phala.json"), "--at", at.Add(2*time.Second).Format(time.RFC3339))
	if r := decode(t, out); code != 1 || r.Valid || r.Check == "" {
		t.Fatalf("sgx expired: exit %d %+v", code, r)
	}
	// SGX without collateral names the missing input.
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", filepath.Join(dir, "sgx", "phala_sgx_v3.quote.bin"))
	if r := decode(t, out); code != 1 || r.Check != "collateral" {
		t.Fatalf("no collateral: exit %d %+v", code, r)
	}
	// Unrecognisable content asks for --platform.
	junk := filepath.Join(tmp, "junk")
	os.WriteFile(junk, []byte("hello"), 0o644)
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", junk)
	if r := decode(t, out); code != 1 || r.Check != "evidence_format" || !strings.Contains(r.Error, "--platform") {
		t.Fatalf("junk: exit %d %+v", code, r)
	}
}

func TestAttestUsageErrors(t *testing.T) {
	dir, _ := vectors(t)
	ev := filepath.Join(dir, "snp", "virtee_milan.report.bin")
	for _, args := range [][]string{
		{"attest", "verify"},
		{"attest", "verify", "--evidence", ev, "--bogus"},
		{"attest", "verify", "--evidence", ev, "--platform", "arm"},
		{"attest", "verify", "--evidence", ev, "--at", "yesterday"},
		{"attest", "verify", "--evidence", ev, "--collateral", "a", "--pccs", "http://x"},
		{"attest", "verify", "--evidence", ev, "--chain", "c.pem"},
		{"attest", "evidence", "--report-data", "zz", "-o", "x"},
		{"attest", "evidence", "--report-data", strings.Repeat("00", 65), "-o", "x"},
		{"attest", "evidence", "--report-data", "00"},
		{"attest", "evidence", "--report-data", "00", "--tee", "sgx", "-o", "x"},
		{"attest", "inspect"},
	} {
		if _, code := runMain(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestAttestSimRoundTrip(t *testing.T) {
	simDir := filepath.Join(t.TempDir(), "sim")
	t.Setenv("PPML_SIM_DIR", simDir)
	evPath := filepath.Join(t.TempDir(), "ev.json")
	out, code := runMain(t, "attest", "evidence", "--tee", "sim", "--report-data", "0102", "-o", evPath, "--json")
	if code != 0 || !strings.Contains(out, `"insecure": true`) {
		t.Fatalf("evidence: exit %d %s", code, out)
	}
	pub := filepath.Join(simDir, "platform.pub")
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", evPath, "--sim-key", pub)
	r := decode(t, out)
	if code != 0 || !r.Valid || !r.Insecure || r.Platform != "sim" || !strings.HasPrefix(r.ReportData, "0102000000") {
		t.Fatalf("verify: exit %d %+v", code, r)
	}
	// Without a trusted key simulated evidence is refused.
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", evPath)
	if r := decode(t, out); code != 1 || r.Check != "sim_platform_key" {
		t.Fatalf("untrusted: exit %d %+v", code, r)
	}
	// A container whose report_data field disagrees with the evidence is invalid.
	b, _ := os.ReadFile(evPath)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["report_data"] = strings.Repeat("ff", 64)
	b, _ = json.Marshal(m)
	os.WriteFile(evPath, b, 0o644)
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", evPath, "--sim-key", pub)
	if r := decode(t, out); code != 1 || r.Check != "report_data" {
		t.Fatalf("report_data mismatch: exit %d %+v", code, r)
	}
}

func TestAttestGramineEvidenceVerifies(t *testing.T) {
	dir, _ := vectors(t)
	quote, _ := os.ReadFile(filepath.Join(dir, "sgx", "phala_sgx_v3.quote.bin"))
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "attestation_type"), []byte("dcap\n"), 0o644)
	os.WriteFile(filepath.Join(root, "user_report_data"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "quote"), quote, 0o644)
	evPath := filepath.Join(t.TempDir(), "ev.json")
	rd := "48656c6c6f2c20776f726c6421" // "Hello, world!", the vector's report data
	out, code := runMain(t, "attest", "evidence", "--gramine-root", root, "--tsm-root", filepath.Join(root, "none"),
		"--report-data", rd, "-o", evPath, "--json")
	if code != 0 || !strings.Contains(out, `"backend": "gramine"`) {
		t.Fatalf("evidence: exit %d %s", code, out)
	}
	out, code = runMain(t, "attest", "verify", "--json", "--evidence", evPath,
		"--collateral", filepath.Join(dir, "sgx", "collateral_00A067110000_2025-06-19_phala.json"), "--at", "2025-07-19T10:01:17Z")
	if r := decode(t, out); code != 0 || !r.Valid || r.Platform != "sgx" {
		t.Fatalf("verify: exit %d %+v", code, r)
	}
	out, code = runMain(t, "attest", "inspect", evPath)
	if code != 0 || !strings.Contains(out, "NOT VERIFIED") || !strings.Contains(out, "quote.") {
		t.Fatalf("inspect: exit %d %s", code, out)
	}
}

func TestAttestInspect(t *testing.T) {
	dir, vs := vectors(t)
	for _, v := range vs {
		out, code := runMain(t, "attest", "inspect", "--json", filepath.Join(dir, v.Evidence))
		if code != 0 {
			t.Fatalf("%s: exit %d", v.ID, code)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		if m["platform"] != v.Platform || m["verified"] != false {
			t.Errorf("%s: %v", v.ID, m["platform"])
		}
		if !bytes.Contains([]byte(out), []byte(v.ReportData)) {
			t.Errorf("%s: report data not shown", v.ID)
		}
	}
	out, code := runMain(t, "attest", "inspect", filepath.Join(dir, "snp", "gosev_milan.report.bin"))
	if code != 0 || !strings.Contains(out, "snp_report.reported_tcb.decoded.microcode: 68") {
		t.Fatalf("text inspect: %d\n%s", code, out)
	}
}

// TestAttestVerifyPCCS serves the shared SGX bundle through the PCCS v4 API
// from a local server and verifies through --pccs.
func TestAttestVerifyPCCS(t *testing.T) {
	dir, _ := vectors(t)
	raw, err := os.ReadFile(filepath.Join(dir, "sgx", "collateral_00A067110000_2025-06-19_phala.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bd map[string]string
	if err := json.Unmarshal(raw, &bd); err != nil {
		t.Fatal(err)
	}
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/sgx/certification/v4/tcb":
			if !strings.EqualFold(r.URL.Query().Get("fmspc"), "00A067110000") {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("TCB-Info-Issuer-Chain", esc(bd["tcb_info_issuer_chain"]))
			io.WriteString(w, `{"tcbInfo":`+bd["tcb_info"]+`,"signature":"`+bd["tcb_info_signature"]+`"}`)
		case "/sgx/certification/v4/qe/identity":
			w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", esc(bd["qe_identity_issuer_chain"]))
			io.WriteString(w, `{"enclaveIdentity":`+bd["qe_identity"]+`,"signature":"`+bd["qe_identity_signature"]+`"}`)
		case "/sgx/certification/v4/pckcrl":
			w.Header().Set("SGX-PCK-CRL-Issuer-Chain", esc(bd["pck_crl_issuer_chain"]))
			der, _ := hex.DecodeString(bd["pck_crl"])
			w.Write(der)
		case "/sgx/certification/v4/rootcacrl":
			io.WriteString(w, bd["root_ca_crl"])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	out, code := runMain(t, "attest", "verify", "--json", "--evidence", filepath.Join(dir, "sgx", "phala_sgx_v3.quote.bin"),
		"--pccs", srv.URL, "--pccs-cache", t.TempDir(), "--at", "2025-07-19T10:01:17Z")
	r := decode(t, out)
	if code != 0 || !r.Valid || r.TCBStatus != "ConfigurationAndSWHardeningNeeded" || hits.Load() == 0 {
		t.Fatalf("exit %d, %d requests: %+v", code, hits.Load(), r)
	}
}

// TestAttestVerifyAMDKDS verifies a report that carries no VCEK: fetched
// through --amd-kds from a KDS mirror on 127.0.0.1 (then from its cache), or
// read from an offline bundle directory.
func TestAttestVerifyAMDKDS(t *testing.T) {
	dir, _ := vectors(t)
	report := filepath.Join(dir, "snp", "trustee_milan.report.bin")
	vcek, _ := os.ReadFile(filepath.Join(dir, "snp", "trustee_milan.vcek.der"))
	chain, _ := os.ReadFile(filepath.Join(dir, "common", "amd_ask_ark_milan_vcek.pem"))
	// The trustee report's CHIP_ID and REPORTED_TCB, as AMD's KDS files its VCEK.
	const vcekPath = "/vcek/v1/Milan/c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e"
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		q := r.URL.Query()
		switch {
		case r.URL.Path == vcekPath && q.Get("blSPL") == "03" && q.Get("teeSPL") == "00" && q.Get("snpSPL") == "08" && q.Get("ucodeSPL") == "115":
			w.Write(vcek)
		case r.URL.Path == "/vcek/v1/Milan/cert_chain":
			w.Write(chain)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cache := t.TempDir()
	for i := range 2 {
		out, code := runMain(t, "attest", "verify", "--json", "--evidence", report, "--amd-kds", srv.URL, "--amd-kds-cache", cache, "--at", snpAt)
		if r := decode(t, out); code != 0 || !r.Valid || r.Platform != "snp" {
			t.Fatalf("run %d: exit %d: %s", i, code, out)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("%d KDS requests, want the VCEK and the chain once (then the cache)", n)
	}
	if out, code := runMain(t, "attest", "verify", "--json", "--evidence", report, "--at", snpAt); code != 1 || decode(t, out).Check != "vcek_missing" {
		t.Fatalf("no VCEK and no --amd-kds: exit %d %s", code, out)
	}

	bundle := t.TempDir()
	os.WriteFile(filepath.Join(bundle, "vcek.der"), vcek, 0o644)
	out, code := runMain(t, "attest", "verify", "--json", "--evidence", report, "--amd-kds", bundle, "--at", snpAt)
	if r := decode(t, out); code != 0 || !r.Valid {
		t.Fatalf("offline bundle: exit %d: %s", code, out)
	}
	if _, code := runMain(t, "attest", "verify", "--evidence", report, "--amd-kds", bundle, "--amd-kds-cache", cache); code != 2 {
		t.Fatalf("--amd-kds-cache with a bundle: exit %d, want a usage error", code)
	}
	if _, code := runMain(t, "attest", "verify", "--evidence", report, "--amd-kds", filepath.Join(bundle, "missing")); code != 1 {
		t.Fatalf("missing bundle: exit %d", code)
	}
}
