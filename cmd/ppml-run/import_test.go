package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	pathpkg "path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ppml/ppml/internal/buildtest"
)

// goList returns the packages `go list -deps` finds for pkg with tags and
// extra environment (name and import path, and whether loading failed).
func goList(t *testing.T, pkg string, tags []string, env ...string) []listed {
	t.Helper()
	args := []string{"list", "-deps", "-e", "-json=ImportPath,Imports,Error,DepsErrors"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, pkg)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

type listed struct {
	ImportPath string
	Imports    []string
	Error      *struct{ Err string }
	DepsErrors []struct{ Err string }
}

// forbidden says why a package must not be in the runtime, or "".
func forbidden(path string) string {
	const m = buildtest.Module + "/"
	rel, ours := strings.CutPrefix(path, m)
	switch {
	case path == "go.etcd.io/bbolt" || strings.HasPrefix(path, "go.etcd.io/bbolt/"):
		return "the key service's database"
	case !ours:
		return ""
	case rel == "kms" || strings.HasPrefix(rel, "kms/") && rel != "kms/client" && rel != "kms/api":
		return "key-service server code (the runtime links only kms/client and kms/api)"
	case rel == "store" || strings.HasPrefix(rel, "store/"), rel == "seal" || strings.HasPrefix(rel, "seal/"):
		return "key-service storage or seals"
	case rel == "attest/dcap" || strings.HasPrefix(rel, "attest/dcap/"), rel == "attest/snp", rel == "attest/verifier":
		return "an evidence verifier (verification is the key service's)"
	case rel == "tpch" || strings.HasPrefix(rel, "tpch/"):
		return "the TPC-H generator"
	case rel == "demo", rel == "gramine" || strings.HasPrefix(rel, "gramine/"):
		return "a CLI tool (demo, Gramine manifest generator)"
	case rel == "bench" || strings.HasPrefix(rel, "bench/"), strings.HasSuffix(rel, "bench"):
		return "a benchmark"
	case rel == "internal/cli", rel == "internal/benchcli", rel == "internal/shareddata":
		return "CLI or benchmark code"
	case strings.HasSuffix(pathpkg.Base(rel), "test") && pathpkg.Base(rel) != "attest":
		return "a test helper package"
	}
	return ""
}

// TestRuntimeImports keeps the measured runtime small: none of the key
// service, verifiers, generators, demo, benchmarks or test code.
func TestRuntimeImports(t *testing.T) {
	pkgs := goList(t, "./", nil)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		if why := forbidden(p.ImportPath); why != "" {
			t.Errorf("ppml-run links %s: %s", p.ImportPath, why)
		}
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		// Test helpers of ours (third-party code may import testing).
		if strings.HasPrefix(p.ImportPath, buildtest.Module+"/") {
			for _, imp := range p.Imports {
				if imp == "testing" || imp == "net/http/httptest" {
					t.Errorf("ppml-run links %s, which imports %s: test code", p.ImportPath, imp)
				}
			}
		}
	}
}

// TestEngineBuildTags builds runtimes with only some engines, as an owner
// pinning a runtime would, and checks what each links and lists.
func TestEngineBuildTags(t *testing.T) {
	has := func(pkgs []listed, sub string) bool {
		return slices.ContainsFunc(pkgs, func(p listed) bool { return strings.Contains(p.ImportPath, sub) })
	}
	is := func(pkgs []listed, path string) bool {
		return slices.ContainsFunc(pkgs, func(p listed) bool { return p.ImportPath == buildtest.Module+"/"+path })
	}
	// The serve engine reads model files with ml/modelfile, not through the ml engine.
	noML := goList(t, "./", []string{"ppml_no_ml"})
	if is(noML, "engine/ml") {
		t.Error("ppml_no_ml still links the ml engine")
	}
	noMLServe := goList(t, "./", []string{"ppml_no_ml", "ppml_no_serve"})
	if has(noMLServe, "xgboost") || is(noMLServe, "engine/ml") || is(noMLServe, "engine/serve") {
		t.Error("ppml_no_ml,ppml_no_serve still links the ml or serve engine or XGBoost")
	}
	noSQL := goList(t, "./", []string{"ppml_no_sql"})
	if slices.ContainsFunc(noSQL, func(p listed) bool { return p.ImportPath == buildtest.Module+"/engine/sql" }) {
		t.Error("ppml_no_sql still links the sql engine")
	}
	// go-redis stays while the serve engine (Cluster Serving's Redis queue) is in.
	noStream := goList(t, "./", []string{"ppml_no_stream"})
	if has(noStream, "/engine/stream") || has(noStream, "franz-go") || has(noStream, "nats-io") {
		t.Error("ppml_no_stream still links the stream engine or a Kafka/NATS client")
	}
	noStreamServe := goList(t, "./", []string{"ppml_no_stream", "ppml_no_serve"})
	if has(noStreamServe, "go-redis") {
		t.Error("ppml_no_stream,ppml_no_serve still links the Redis client")
	}
	// The serve engine serves dl models on libtorch, unless deep learning is left out.
	noDL := goList(t, "./", []string{"ppml_no_dl"})
	if has(noDL, "/engine/dl") || has(noDL, "/dl/torch") || is(noDL, "serve/model/torchscript") {
		t.Error("ppml_no_dl still links the dl engine, libtorch or the serve engine's TorchScript backend")
	}
	if all := goList(t, "./", nil); !is(all, "serve/model/torchscript") || !is(all, "serve/model/tabular") {
		t.Error("the full runtime's serve engine lacks a model backend")
	}
	execOnly := goList(t, "./", []string{"ppml_no_sql", "ppml_no_ml", "ppml_no_serve", "ppml_no_stream", "ppml_no_dl"})
	if has(execOnly, "duckdb") || has(execOnly, "xgboost") || has(execOnly, "/engine/stream") || has(execOnly, "/dl/torch") {
		t.Error("an exec-only runtime links DuckDB, XGBoost, the stream engine or libtorch")
	}

	bin, err := buildtest.Build(t.TempDir(), buildtest.Runtime("ppml_no_sql", "ppml_no_ml", "ppml_no_serve", "ppml_no_stream", "ppml_no_dl"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("ppml-run version: %v", err)
	}
	var v struct {
		Engines []string `json:"engines"`
		SHA256  string   `json:"sha256"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v.SHA256) != 64 {
		t.Fatalf("version --json %s: %v", out, err)
	}
	if strings.Join(v.Engines, ",") != "exec" {
		t.Fatalf("engines %v, want exec only", v.Engines)
	}
	// A job for an engine left out fails naming what is built in.
	dir := t.TempDir()
	mf := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(mf, []byte("name: q\nengine: sql\nparameters: {interactive: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	msg, err := exec.Command(bin, "run", "--manifest", mf).CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "engine sql is not built into this runtime (built in: exec)") {
		t.Fatalf("sql job on an exec-only runtime: %v: %s", err, msg)
	}
}
