package benchcli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/internal/shareddata"
)

// run runs the ppml-bench tree on args, capturing stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	code := command.Main(root, args, &errb)
	return code, out.String(), errb.String()
}

func TestBenchEnvelope(t *testing.T) {
	code, out, errs := run(t, "envelope", "--size", "8MiB", "--rounds", "1", "--json")
	var res map[string]float64
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("exit %d %s %s", code, out, errs)
	}
	for _, k := range []string{"raw_aes_256_gcm_bytes_per_sec", "encrypt_ratio", "decrypt_ratio"} {
		if res[k] <= 0 {
			t.Fatalf("%s = %v", k, res[k])
		}
	}
	code, out, errs = run(t, "envelope", "--files", "--dir", t.TempDir(), "--size", "2MiB", "--rounds", "1", "--json")
	var files struct {
		Raw  float64 `json:"raw_aes_256_gcm_bytes_per_sec"`
		Runs []struct {
			Name  string  `json:"name"`
			Ratio float64 `json:"ratio"`
		} `json:"runs"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &files) != nil || files.Raw <= 0 || len(files.Runs) != 4 || files.Runs[1].Ratio <= 0 {
		t.Fatalf("--files: exit %d %s %s", code, out, errs)
	}
	if code, _, _ := run(t, "envelope", "--dir", "/tmp"); code != 2 {
		t.Fatalf("--dir without --files: exit %d", code)
	}
	if code, _, _ := run(t, "envelope", "--size", "lots"); code != 2 {
		t.Fatalf("bad size: exit %d", code)
	}
}

func TestBenchAttest(t *testing.T) {
	dir := filepath.Dir(shareddata.Require(t, "attestation", "vectors.json"))
	code, out, _ := run(t, "attest", "--vectors", dir, "--n", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var res []struct {
		Platform string `json:"platform"`
		Latency  struct {
			N   int   `json:"n"`
			P50 int64 `json:"p50_ns"`
			P99 int64 `json:"p99_ns"`
		} `json:"latency"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range res {
		seen[r.Platform] = true
		if r.Latency.N < 3 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
			t.Errorf("%s: %+v", r.Platform, r.Latency)
		}
	}
	for _, p := range []string{"sgx", "tdx", "snp", "sim"} {
		if !seen[p] {
			t.Errorf("no %s result", p)
		}
	}
	if code, _, _ := run(t, "attest", "--vectors", dir, "--n", "0"); code != 2 {
		t.Errorf("--n 0: exit %d", code)
	}
	// The vectors are never looked up from the build machine's source tree.
	if code, _, _ := run(t, "attest", "--n", "1"); code != 2 {
		t.Errorf("no --vectors: exit %d, want a usage error", code)
	}
	if code, _, _ := run(t, "attest", "--vectors", t.TempDir(), "--n", "1"); code != 1 {
		t.Errorf("--vectors without vectors.json: exit %d", code)
	}
}

// TestBenchAttestExample runs the first --help example as pasted in the
// repository root, where the shared test data is ../shared.
func TestBenchAttestExample(t *testing.T) {
	dir := filepath.Dir(shareddata.Require(t, "attestation", "vectors.json"))
	cmd, _, err := NewRoot().Find([]string{"attest"})
	if err != nil {
		t.Fatal(err)
	}
	example := strings.Fields(strings.SplitN(strings.TrimSpace(cmd.Example), "\n", 2)[0])
	if len(example) < 4 || example[0] != "ppml" || example[1] != "bench" {
		t.Fatalf("example %q", cmd.Example)
	}
	t.Chdir(filepath.Join("..", ".."))
	if _, err := os.Stat(filepath.Join("..", "shared", "testdata", "attestation", "vectors.json")); err != nil {
		// Only the CI layout (shared beside the checkout) makes the pasted path valid.
		t.Skipf("shared test data is not beside the checkout (PPML_SHARED=%s): %v", dir, err)
	}
	if code, out, errs := run(t, append(example[2:], "--n", "1")...); code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", example, code, out, errs)
	}
}

// TestBenchTPCH runs the benchmark at SF 0.01: every result of both sides is
// checked against DuckDB's published answers; times are not asserted.
func TestBenchTPCH(t *testing.T) {
	answers := shareddata.Require(t, "tpch", "answers")
	t.Setenv("TMPDIR", t.TempDir())
	code, out, errOut := run(t, "tpch", "--sf", "0.01", "--threads", "2", "--memory", "1GiB", "--rounds", "1", "--answers", answers, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Checked bool `json:"checked"`
		Queries []struct {
			Query   int  `json:"query"`
			Checked bool `json:"checked"`
		} `json:"queries"`
		Ratio float64 `json:"ratio"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !rep.Checked || len(rep.Queries) != 22 || rep.Ratio <= 0 {
		t.Fatalf("report: %s", out)
	}
	for i, q := range rep.Queries {
		if q.Query != i+1 || !q.Checked {
			t.Errorf("query %d: %+v", i+1, q)
		}
	}
	if ents, _ := os.ReadDir(os.Getenv("TMPDIR")); len(ents) != 0 {
		t.Errorf("scratch directory left behind: %v", ents)
	}
}

// TestBenchDLUsage: bad flags are usage errors before anything is trained (bench/dl's
// TestSmallRun runs the measurement itself on a subset).
func TestBenchDLUsage(t *testing.T) {
	for _, args := range [][]string{
		{"dl", "--epochs", "0"},
		{"dl", "--optimizer", "rmsprop"},
		{"dl", "--lr", "-1"},
		{"dl", "--images", "-5"},
		{"dl", "extra"},
	} {
		if code, _, errs := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
}
