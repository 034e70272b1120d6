package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCLILinksNoEngine: the ppml CLI and key service run on data owners'
// laptops and key-service hosts that have no engine libraries. It links no
// engine runtime and builds without cgo (make build does so).
func TestCLILinksNoEngine(t *testing.T) {
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", "-e", "-json=ImportPath,Error,DepsErrors", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for {
		var p struct {
			ImportPath string
			Error      *struct{ Err string }
			DepsErrors []struct{ Err string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		if p.Error != nil {
			t.Errorf("%s does not build without cgo: %s", p.ImportPath, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Errorf("%s: %s", p.ImportPath, e.Err)
		}
		for _, bad := range []string{"duckdb", "xgboost", "/engine/sql/sqldb", "/launcher", "franz-go", "nats-io", "go-redis", "/dl/torch"} {
			if strings.Contains(p.ImportPath, bad) {
				t.Errorf("ppml links %s (engines live in ppml-run)", p.ImportPath)
			}
		}
		for _, eng := range []string{"/engine/exec", "/engine/sql", "/engine/ml", "/engine/stream", "/engine/dl"} {
			if strings.HasSuffix(p.ImportPath, eng) {
				t.Errorf("ppml links the engine %s (only its spec package belongs here)", p.ImportPath)
			}
		}
	}
	if n < 10 {
		t.Fatalf("go list found %d packages", n)
	}
}
