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
	res, code := runCLI(t, "gramine", "manifest", "--job", jobPath, "-o", out, "--ppml-run", "/bin/ls", "--json", "--isvsvn", "3")
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

	// The default runtime is the one ppml run would use ($PPML_RUN here, a
	// stand-in in a directory below /tmp, mounted after the enclave's
	// in-memory /tmp): it becomes the entrypoint.
	tmp, err := os.MkdirTemp("/tmp", "ppml-gramine-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	underTmp := filepath.Join(tmp, "ppml-run")
	if b, err := os.ReadFile("/bin/ls"); err != nil || os.WriteFile(underTmp, b, 0o755) != nil {
		t.Fatal("copy /bin/ls")
	}
	t.Setenv("PPML_RUN", underTmp)
	if res, code := runCLI(t, "gramine", "manifest", "--job", jobPath, "-o", "-"); code != ExitOK || !strings.Contains(res, "libos.entrypoint = "+strconv.Quote(underTmp)) {
		t.Errorf("default runtime %s: exit %d", underTmp, code)
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
		t.Errorf("-o - (with --ppml, the old name of --ppml-run): exit %d", code)
	}
}
