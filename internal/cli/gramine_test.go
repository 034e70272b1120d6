package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestGramineManifestCommand(t *testing.T) {
	jobPath, err := filepath.Abs(filepath.Join("..", "..", "gramine", "testdata", "python-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("python3 not installed")
	}
	out := filepath.Join(t.TempDir(), "ppml.manifest.template")
	res, code := runCLI(t, "gramine", "manifest", "--job", jobPath, "-o", out, "--ppml", "/bin/ls", "--json", "--isvsvn", "3")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var summary struct {
		Template   string `json:"template"`
		JobDigest  string `json:"job_digest"`
		MaxThreads int    `json:"max_threads"`
	}
	if err := json.Unmarshal([]byte(res), &summary); err != nil || summary.Template != out || !strings.HasPrefix(summary.JobDigest, "sha256:") {
		t.Fatalf("summary %q: %v", res, err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		SGX struct {
			Debug  bool  `toml:"debug"`
			ISVSVN int64 `toml:"isvsvn"`
		} `toml:"sgx"`
	}
	if err := toml.Unmarshal(data, &v); err != nil || v.SGX.Debug || v.SGX.ISVSVN != 3 {
		t.Fatalf("template: %+v %v", v, err)
	}
	if !strings.Contains(string(data), summary.JobDigest) {
		t.Error("template does not name the job digest")
	}

	// The default ppml binary is the one running (this test binary, in a
	// build directory below /tmp): it becomes the entrypoint.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if res, code := runCLI(t, "gramine", "manifest", "--job", jobPath, "-o", "-"); code != ExitOK || !strings.Contains(res, "libos.entrypoint = "+strconv.Quote(self)) {
		t.Errorf("default binary %s: exit %d", self, code)
	}
	if _, code := runCLI(t, "gramine", "manifest", "--job", jobPath); code != ExitUsage {
		t.Errorf("without -o: exit %d", code)
	}
	if _, code := runCLI(t, "gramine", "manifest", "-o", out); code != ExitUsage {
		t.Errorf("without --job: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nengine: exec\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, code := runCLI(t, "gramine", "manifest", "--job", bad, "-o", out, "--ppml", "/bin/ls"); code != ExitFailure {
		t.Errorf("invalid job: exit %d", code)
	}
	if res, code := runCLI(t, "gramine", "manifest", "--job", jobPath, "-o", "-", "--ppml", "/bin/ls"); code != ExitOK || !strings.Contains(res, `sgx.remote_attestation = "dcap"`) {
		t.Errorf("-o -: exit %d", code)
	}
}
