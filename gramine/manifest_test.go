package gramine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/gramine/elfdeps"
	"github.com/ppml/ppml/job"
)

// standInPPML is a dynamically linked system binary used in place of the ppml
// binary: a pure-Go test binary would have no libraries to check.
const standInPPML = "/bin/ls"

// resolver is shared so that the Python installation is read once.
var resolver = elfdeps.System()

func loadJob(t *testing.T, name string) (*job.Manifest, string) {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := job.Load(p, specs.All)
	if err != nil {
		t.Fatal(err)
	}
	return m, p
}

// render generates the template and parses it back as TOML.
func render(t *testing.T, m *job.Manifest, o Options) (*Manifest, map[string]any, []byte) {
	t.Helper()
	if o.Resolver == nil {
		o.Resolver = resolver
	}
	g, err := New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := g.Template()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := toml.Unmarshal(out, &v); err != nil {
		t.Fatalf("template does not parse: %v\n%s", err, out)
	}
	return g, v, out
}

func get(t *testing.T, v map[string]any, dotted string) any {
	t.Helper()
	var cur any = v
	for _, k := range strings.Split(dotted, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is not a table", dotted, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("%s missing", dotted)
		}
	}
	return cur
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lddFiles lists what the system's ldd says prog loads, links resolved.
func lddFiles(t *testing.T, prog string) []string {
	t.Helper()
	out, err := exec.Command("ldd", prog).Output()
	if err != nil {
		t.Skipf("ldd %s: %v", prog, err)
	}
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			files = append(files, realPath(t, f[2]))
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			files = append(files, realPath(t, f[0]))
		}
	}
	if len(files) == 0 {
		t.Fatalf("ldd found nothing for %s", prog)
	}
	return files
}

func trustedPaths(t *testing.T, v map[string]any) (map[string]bool, map[string]string) {
	t.Helper()
	real := map[string]bool{}
	pinned := map[string]string{}
	for _, e := range get(t, v, "sgx.trusted_files").([]any) {
		var uri string
		switch x := e.(type) {
		case string:
			uri = x
		case map[string]any:
			uri = x["uri"].(string)
			pinned[strings.TrimPrefix(uri, "file:")] = x["sha256"].(string)
		}
		if uri == "file:{{ gramine.libos }}" {
			continue
		}
		p := strings.TrimPrefix(uri, "file:")
		real[p] = true
		if r, err := filepath.EvalSymlinks(p); err == nil {
			real[r] = true
		}
	}
	return real, pinned
}

func TestPythonJobManifest(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("Debian python3 not installed")
	}
	m, jobPath := loadJob(t, "python-job.yaml")
	g, v, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath})

	if got := get(t, v, "libos.entrypoint"); got != standInPPML {
		t.Errorf("libos.entrypoint = %v", got)
	}
	argv := get(t, v, "loader.argv").([]any)
	want := []string{standInPPML, "run", "--manifest", jobPath, "--tee", "gramine"}
	if len(argv) != len(want) {
		t.Fatalf("argv %v", argv)
	}
	for i := range want {
		if argv[i] != want[i] {
			t.Errorf("argv[%d] = %v, want %s", i, argv[i], want[i])
		}
	}
	if get(t, v, "sgx.debug") != false || get(t, v, "sgx.edmm_enable") != false {
		t.Error("debug or EDMM enabled")
	}
	if get(t, v, "sgx.remote_attestation") != "dcap" {
		t.Error("remote attestation is not dcap")
	}
	// 1280M Go + 128M Gramine + /bin/ls and its libraries + 512M memory +
	// 14 × 8M stacks < 2G (with the real ppml-run, ~130M, it is 4G).
	if get(t, v, "sgx.enclave_size") != "2G" || get(t, v, "sys.stack.size") != "8M" {
		t.Errorf("enclave_size %v, stack %v", get(t, v, "sgx.enclave_size"), get(t, v, "sys.stack.size"))
	}
	if got := get(t, v, "sgx.max_threads"); got != int64(2+GramineThreads+GoRuntimeThreads) {
		t.Errorf("max_threads %v", got)
	}
	if get(t, v, "loader.env.PPML_TOKEN").(map[string]any)["passthrough"] != true {
		t.Error("PPML_TOKEN is not passed through")
	}
	if get(t, v, "loader.env.GOMAXPROCS") != "2" {
		t.Error("GOMAXPROCS")
	}
	// Nothing lets the host choose argv or the environment wholesale.
	for _, k := range []string{"insecure__use_cmdline_argv", "insecure__use_host_env", "argv_src_file", "env_src_file"} {
		if _, ok := v["loader"].(map[string]any)[k]; ok {
			t.Errorf("loader.%s is set", k)
		}
	}

	mounts := get(t, v, "fs.mounts").([]any)
	tmpfs := false
	var chroots []string
	for _, mt := range mounts {
		mm := mt.(map[string]any)
		if mm["type"] == "tmpfs" && mm["path"] == "/tmp" {
			tmpfs = true
		}
		if mm["type"] == "chroot" {
			if mm["uri"] != "file:"+mm["path"].(string) {
				t.Errorf("mount %v maps a different host path", mm)
			}
			chroots = append(chroots, mm["path"].(string))
		}
	}
	if !tmpfs {
		t.Error("no tmpfs at /tmp")
	}

	trusted, pinned := trustedPaths(t, v)
	for _, p := range []string{standInPPML, jobPath, "/usr/bin/python3", "/usr/lib/python3.11/os.py", "/usr/lib/python3.11/site.py"} {
		if strings.HasPrefix(p, "/usr/lib/python3.11") {
			if _, err := os.Stat(p); err != nil {
				continue
			}
		}
		if !trusted[p] {
			t.Errorf("%s is not a trusted file", p)
		}
	}
	for _, prog := range []string{standInPPML, "/usr/bin/python3"} {
		for _, lib := range lddFiles(t, prog) {
			if !trusted[lib] {
				t.Errorf("%s needs %s (per ldd); it is not a trusted file", prog, lib)
			}
		}
	}
	if pinned["/opt/ppml-jobs/hello.py"] != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("pinned job file missing: %v", pinned)
	}
	// Every trusted file is visible inside the enclave at its host path.
	for _, f := range g.TrustedFiles {
		if !coveredBy(strings.TrimSuffix(f.Path, "/"), chroots) {
			t.Errorf("trusted file %s is not under any mount %v", f.Path, chroots)
		}
	}

	allowed := map[string]bool{}
	for _, a := range get(t, v, "sgx.allowed_files").([]any) {
		allowed[a.(string)] = true
	}
	dir := filepath.Dir(jobPath)
	for _, a := range []string{"file:" + dir + "/in/people.csv.ppml", "file:" + dir + "/out/"} {
		if !allowed[a] {
			t.Errorf("%s not allowed; allowed: %v", a, allowed)
		}
	}
	if len(allowed) != 2 {
		t.Errorf("allowed files beyond inputs and outputs: %v", allowed)
	}
	if !coveredBy(dir+"/in/people.csv.ppml", chroots) || !coveredBy(dir+"/out", chroots) {
		t.Errorf("inputs/outputs not mounted: %v", chroots)
	}
}

func coveredBy(p string, mounts []string) bool {
	for _, m := range mounts {
		if p == m || strings.HasPrefix(p, m+"/") {
			return true
		}
	}
	return false
}

func TestEnclaveSizeAndThreads(t *testing.T) {
	for _, tc := range []struct {
		mem  int64
		want string
	}{
		{16 << 20, "256M"}, {256 << 20, "256M"}, {256<<20 + 1, "512M"}, {512 << 20, "512M"},
		{2<<30 + 1, "4G"},
		{600 << 20, "1G"}, {2 << 30, "2G"}, {3 << 30, "4G"}, {1 << 40, "1024G"},
	} {
		if got := FormatGramineSize(EnclaveSize(tc.mem)); got != tc.want {
			t.Errorf("EnclaveSize(%s) = %s, want %s", job.FormatSize(tc.mem), got, tc.want)
		}
	}
	_, jobPath := loadJob(t, "python-job.yaml")
	src, err := os.ReadFile(jobPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		resources, size string
		threads         int64
	}{
		// exec engine: no pools. 1280+128+binaries+3072+19×8 MiB > 4G.
		{"memory: 3GiB\n  threads: 7", "8G", 7 + GramineThreads + GoRuntimeThreads},
		// 1280+128+binaries+256+13×8 MiB < 2G.
		{"memory: 256MiB\n  threads: 1", "2G", 1 + GramineThreads + GoRuntimeThreads},
	} {
		m, err := job.Parse(bytes.Replace(src, []byte("memory: 512MiB\n  threads: 2"), []byte(tc.resources), 1), filepath.Dir(jobPath), specs.All)
		if err != nil {
			t.Fatal(err)
		}
		_, v, tpl := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath})
		if get(t, v, "sgx.enclave_size") != tc.size || get(t, v, "sgx.max_threads") != tc.threads {
			t.Errorf("%s: size %v threads %v", tc.resources, get(t, v, "sgx.enclave_size"), get(t, v, "sgx.max_threads"))
			t.Logf("%s", tpl)
		}
		g, err := New(m, Options{Runtime: standInPPML, JobPath: jobPath})
		if err != nil {
			t.Fatal(err)
		}
		z := g.Sizing
		if z.Binaries <= 0 || z.Total != z.GoRuntime+z.Gramine+z.Binaries+z.Memory+z.Stacks || z.Stacks != int64(g.MaxThreads)*StackSize {
			t.Errorf("%s: sizing %+v", tc.resources, z)
		}
	}
	if PoolThreads("sql", 3) != 3 || PoolThreads("ml", 3) != 6 || PoolThreads("exec", 3) != 0 {
		t.Error("engine pool threads")
	}
}

func TestServerFixedInArgv(t *testing.T) {
	m, jobPath := loadJob(t, "python-job.yaml")
	_, v, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath, Server: "https://kms.example.org:8443"})
	argv := get(t, v, "loader.argv").([]any)
	if argv[len(argv)-2] != "--server" || argv[len(argv)-1] != "https://kms.example.org:8443" {
		t.Errorf("argv %v", argv)
	}
	if _, ok := v["loader"].(map[string]any)["env"].(map[string]any)["PPML_SERVER"]; ok {
		t.Error("PPML_SERVER passed through although the server is fixed")
	}
	_, v, _ = render(t, m, Options{Runtime: standInPPML, JobPath: jobPath})
	if get(t, v, "loader.env.PPML_SERVER").(map[string]any)["passthrough"] != true {
		t.Error("PPML_SERVER not passed through when the server is not fixed")
	}
}

// A worker of a distributed job takes its place in the job from the host:
// the enclave passes those variables through, and only for such a job.
func TestDistributedWorkerEnvironment(t *testing.T) {
	names := []string{"PPML_WORKER_INDEX", "PPML_PEERS", "PPML_WORKER_LISTEN", "PPML_RABIT_TRACKER"}
	dir := t.TempDir()
	src := []byte("name: x\nengine: ml\ninputs: {train: train/}\noutputs: {model: {path: m.ppml, key: \"kms://kms:8443/alice/m\"}}\n" +
		"parameters: {task: train, algorithm: xgboost, objective: binary, label: y, test_fraction: 0, workers: 2, certificate_policy: alice/xgb}\n")
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	dist, err := job.Parse(src, dir, specs.All)
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := render(t, dist, Options{Runtime: standInPPML, JobPath: filepath.Join(dir, "job.yaml")})
	for _, n := range names {
		if e, ok := get(t, v, "loader.env").(map[string]any)[n].(map[string]any); !ok || e["passthrough"] != true {
			t.Errorf("%s is not passed through for a distributed job", n)
		}
	}
	m, jobPath := loadJob(t, "python-job.yaml")
	_, v, _ = render(t, m, Options{Runtime: standInPPML, JobPath: jobPath})
	for _, n := range names {
		if _, ok := get(t, v, "loader.env").(map[string]any)[n]; ok {
			t.Errorf("%s passed through for a job on one worker", n)
		}
	}
}

func TestScriptInterpreter(t *testing.T) {
	if ok, _ := shebangOf("/usr/bin/ldd"); !ok {
		t.Skip("/usr/bin/ldd is not a #! script here")
	}
	m, err := job.Parse([]byte("name: s\nengine: exec\nparameters: {command: [ldd, /bin/ls]}\n"), "/srv/job", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	_, jobPath := loadJob(t, "python-job.yaml")
	_, v, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath, PATH: []string{"/usr/bin"}})
	trusted, _ := trustedPaths(t, v)
	interp, _, _ := shebang("/usr/bin/ldd")
	for _, p := range append([]string{"/usr/bin/ldd", interp}, lddFiles(t, interp)...) {
		if !trusted[p] {
			t.Errorf("%s not trusted", p)
		}
	}
}

func shebangOf(p string) (bool, error) {
	b, err := os.ReadFile(p)
	return err == nil && bytes.HasPrefix(b, []byte("#!")), err
}

func TestShebangParsing(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string][2]string{
		"#!/bin/sh\necho":               {"/bin/sh", ""},
		"#! /usr/bin/env python3 -u\nx": {"/usr/bin/env", "python3"},
		"#!/usr/bin/python3.11":         {"/usr/bin/python3.11", ""},
		"#!relative\n":                  {"", ""},
		"plain text":                    {"", ""},
	} {
		p := filepath.Join(dir, "s")
		if err := os.WriteFile(p, []byte(body), 0o700); err != nil {
			t.Fatal(err)
		}
		interp, arg, err := shebang(p)
		if want[0] == "" {
			if err == nil {
				t.Errorf("%q accepted", body)
			}
			continue
		}
		if err != nil || interp != want[0] || arg != want[1] {
			t.Errorf("%q: %q %q %v", body, interp, arg, err)
		}
	}
}

func TestRefusedPaths(t *testing.T) {
	m, jobPath := loadJob(t, "python-job.yaml")
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Runtime: "/tmp/ppml", JobPath: jobPath}, "ppml-run binary: /tmp/ppml is directly in /tmp"},
		{Options{Runtime: standInPPML, JobPath: "/tmp/job.yaml"}, "job manifest: /tmp/job.yaml is directly in /tmp"},
		{Options{Runtime: "/proc/self/exe", JobPath: jobPath}, "ppml-run binary: /proc/self/exe is under /proc"},
		{Options{Runtime: "ppml", JobPath: jobPath}, "must be absolute"},
		{Options{Runtime: "/srv/{{ x }}/ppml", JobPath: jobPath}, "gramine-manifest would expand"},
		{Options{Runtime: "/nonexistent/ppml", JobPath: jobPath}, "no such file"},
	} {
		if _, err := New(m, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
	}
	// The host's /tmp itself cannot be mounted over the enclave's in-memory
	// /tmp: neither as an input nor as the directory of an output.
	for _, tc := range []struct{ manifest, want string }{
		{"inputs: {a: /tmp}", "inputs.a: /tmp cannot come from the host"},
		{"outputs: {o: {path: /tmp/o.ppml, key: kms://kms.example.org/o/k}}", "outputs.o: /tmp/o.ppml is directly in /tmp"},
		{"inputs: {a: /dev/sda}", "inputs.a: /dev/sda is under /dev"},
	} {
		tmpJob, err := job.Parse([]byte("name: t\nengine: exec\n"+tc.manifest+"\nparameters: {command: [/bin/ls]}\n"), "/srv", specs.All)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(tmpJob, Options{Runtime: standInPPML, JobPath: jobPath}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.manifest, err, tc.want)
		}
	}
	missing, err := job.Parse([]byte("name: t\nengine: exec\nparameters: {command: [no-such-program-ppml]}\n"), "/srv", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(missing, Options{Runtime: standInPPML, JobPath: jobPath}); err == nil || !strings.Contains(err.Error(), `program "no-such-program-ppml" not found in /usr/local/bin:/usr/bin:/bin`) {
		t.Errorf("missing program: %v", err)
	}
}

// TestPathsBelowTmp: a job kept in a directory below /tmp (a checkout under
// /tmp, say) works: its host directories are mounted after the enclave's
// in-memory /tmp, at the same paths.
func TestPathsBelowTmp(t *testing.T) {
	_, jobPath := loadJob(t, "python-job.yaml")
	m, err := job.Parse([]byte(`name: t
engine: exec
inputs: {a: in/a.ppml}
outputs: {o: {path: out/o.ppml, key: "file:/tmp/ppml-keys/o.key"}}
parameters: {command: [/bin/ls]}
`), "/tmp/ppml-jobs/j", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath, AllowKeyFiles: true})
	if g.Mounts[0].Type != "tmpfs" || g.Mounts[0].Path != "/tmp" {
		t.Fatalf("first mount %+v, want the tmpfs at /tmp", g.Mounts[0])
	}
	want := map[string]bool{"/tmp/ppml-jobs/j/in/a.ppml": true, "/tmp/ppml-jobs/j/out": true, "/tmp/ppml-keys": true}
	for _, mt := range g.Mounts[1:] {
		if mt.Type == "tmpfs" || mt.Path == "/tmp" {
			t.Errorf("mount %+v after the first hides the in-memory /tmp", mt)
		}
		delete(want, mt.Path)
	}
	if len(want) != 0 {
		t.Errorf("not mounted: %v (mounts %+v)", want, g.Mounts)
	}
}

func TestTOMLQuoting(t *testing.T) {
	for _, s := range []string{"plain", `quote " and \ backslash`, "tab\tnewline\n", "ctl\x01\x1f\x7f", "ünïcödé ✓", "file:{{ gramine.libos }}"} {
		var v struct{ K string }
		if err := toml.Unmarshal([]byte("K = "+q(s)+"\n"), &v); err != nil || v.K != s {
			t.Errorf("%q: got %q %v", s, v.K, err)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ppml.manifest.template")
	for _, content := range []string{"first\n", "second, longer\n"} {
		if err := WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("got %q %v", got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x"), 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestExtraTrustedAndKeyFiles(t *testing.T) {
	m, err := job.Parse([]byte(`name: k
engine: exec
inputs: {a: {path: in/a.ppml, key: "file:keys/in.key"}}
outputs: {o: {path: out/o.ppml, key: "file:/srv/keys/out.key"}}
parameters: {command: [/bin/ls]}
`), "/srv/job", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	_, jobPath := loadJob(t, "python-job.yaml")
	// A key file is the host's to read and replace: refused unless asked for.
	if _, err := New(m, Options{Runtime: standInPPML, JobPath: jobPath, Resolver: resolver}); err == nil ||
		!strings.Contains(err.Error(), "/srv/job/keys/in.key is a file: key") || !strings.Contains(err.Error(), "--allow-key-files") {
		t.Errorf("file: key accepted or unclear: %v", err)
	}
	g, v, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath, AllowKeyFiles: true, Trusted: []string{"/etc/hostname", "/usr/share/zoneinfo/"}})
	allowed := map[string]bool{}
	for _, a := range g.AllowedFiles {
		allowed[a] = true
	}
	for _, want := range []string{"/srv/job/in/a.ppml", "/srv/job/out/", "/srv/job/keys/in.key", "/srv/keys/out.key"} {
		if !allowed[want] {
			t.Errorf("%s not allowed: %v", want, g.AllowedFiles)
		}
	}
	trusted, _ := trustedPaths(t, v)
	if _, err := os.Stat("/etc/hostname"); err == nil && !trusted["/etc/hostname"] {
		t.Error("--trusted file missing")
	}
	if _, err := os.Stat("/usr/share/zoneinfo"); err == nil && !trusted["/usr/share/zoneinfo/"] {
		t.Error("--trusted directory missing (directories end in /)")
	}
	if _, err := New(m, Options{Runtime: standInPPML, JobPath: jobPath, Trusted: []string{"/nonexistent-ppml"}}); err == nil {
		t.Error("missing --trusted file accepted")
	}
}

// TestPythonTrustsOnlyImportedPackages: of dist-packages, only what the
// job's code imports (and what the interpreter loads at start-up, through
// site's .pth files) is trusted, never the whole tree.
func TestPythonTrustsOnlyImportedPackages(t *testing.T) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/numpy"); err != nil {
		t.Skip("python3-numpy not installed")
	}
	_, jobPath := loadJob(t, "python-job.yaml")
	m, err := job.Parse([]byte(`name: np
engine: exec
inputs: {a: in/a.ppml}
outputs: {o: {path: out/o.ppml, key: kms://kms.example.org/k}}
parameters: {command: [/usr/bin/python3, -c, "import numpy\nprint(numpy.zeros(2))"]}
`), "/srv/job", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath})
	var numpy bool
	for _, f := range g.TrustedFiles {
		switch {
		case f.Path == "/usr/lib/python3/dist-packages/" || f.Path == "/usr/lib/python3/dist-packages":
			t.Errorf("the whole dist-packages tree is trusted")
		case f.Path == "/usr/lib/python3/dist-packages/numpy/":
			numpy = true
		case strings.HasPrefix(f.Path, "/usr/lib/python3/dist-packages/") && !strings.HasPrefix(f.Path, "/usr/lib/python3/dist-packages/numpy") &&
			!strings.HasPrefix(f.Why, "Python start-up") && !strings.HasPrefix(f.Why, "shared library"):
			t.Errorf("%s trusted (%s), but the job does not import it", f.Path, f.Why)
		}
	}
	if !numpy {
		t.Errorf("numpy, which the job imports, is not trusted")
	}
}

// pythonJobManifest is an exec job running /usr/bin/python3 with args.
func pythonJobManifest(t *testing.T, env string, args ...string) *Manifest {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("Debian python3 not installed")
	}
	cmd, _ := json.Marshal(append([]string{"/usr/bin/python3"}, args...))
	m, err := job.Parse([]byte(`name: py
engine: exec
inputs: {a: in/a.ppml}
outputs: {o: {path: out/o.ppml, key: kms://kms.example.org/k}}
parameters: {command: `+string(cmd)+env+`}
`), "/srv/job", specs.All)
	if err != nil {
		t.Fatal(err)
	}
	_, jobPath := loadJob(t, "python-job.yaml")
	g, _, _ := render(t, m, Options{Runtime: standInPPML, JobPath: jobPath})
	return g
}

func trustedSet(g *Manifest) map[string]string {
	out := map[string]string{}
	for _, f := range g.TrustedFiles {
		out[f.Path] = f.Why
	}
	return out
}

// TestPythonFollowsImportsTransitively: json imports json.decoder, which
// imports re, which imports re._compiler and enum...: all trusted, module
// by module, with what the interpreter loads at start-up (measured here
// independently, with -X importtime); a standard module nobody imports, and
// the standard library as a whole, are not.
func TestPythonFollowsImportsTransitively(t *testing.T) {
	g := pythonJobManifest(t, "", "-c", "import json\nprint(json.dumps([1]))")
	trusted := trustedSet(g)
	lib := "/usr/lib/python3.11/"
	if _, err := os.Stat(lib + "json/decoder.py"); err != nil {
		t.Skip("not Debian's Python 3.11")
	}
	for _, f := range []string{"json/__init__.py", "json/decoder.py", "json/scanner.py", "re/__init__.py", "re/_compiler.py", "enum.py", "functools.py"} {
		if _, ok := trusted[lib+f]; !ok {
			t.Errorf("%s (imported, transitively) is not trusted", lib+f)
		}
	}
	for _, f := range []string{lib, "/usr/lib/python3.11", lib + "sqlite3/__init__.py", lib + "tkinter/__init__.py", lib + "smtplib.py", lib + "unittest/__init__.py"} {
		if why, ok := trusted[f]; ok {
			t.Errorf("%s is trusted (%s), but the job does not need it", f, why)
		}
	}
	if why := trusted[lib+"json/__pycache__/decoder.cpython-311.pyc"]; why == "" && fileExists(lib+"json/__pycache__/decoder.cpython-311.pyc") {
		t.Error("json.decoder's bytecode, which the interpreter reads, is not trusted")
	}

	// Start-up: every module `python3 -X importtime -c pass` reports that
	// has a source file in the standard library.
	out, err := exec.Command("/usr/bin/python3", "-X", "importtime", "-c", "pass").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 || !strings.HasPrefix(f[0], "import time:") || strings.Contains(f[2], "imported package") {
			continue
		}
		name := strings.TrimSpace(f[2])
		for _, src := range []string{lib + strings.ReplaceAll(name, ".", "/") + ".py", lib + strings.ReplaceAll(name, ".", "/") + "/__init__.py"} {
			if fileExists(src) {
				n++
				if _, ok := trusted[src]; !ok {
					t.Errorf("start-up module %s (%s) is not trusted", name, src)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d start-up modules found in:\n%s", n, out)
	}
}

// TestPythonScriptAndItsModules: a script's own modules (beside it, and on
// the job's PYTHONPATH) are followed too, function-level imports included;
// an import with a computed name is not (documented: pin it or --trusted).
func TestPythonScriptAndItsModules(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "lib")
	os.Mkdir(lib, 0o755)
	files := map[string]string{
		"job.py":        "import helper\nhelper.run()\n",
		"helper.py":     "def run():\n    import csv\n    import shared\n    import importlib\n    importlib.import_module('sql' + 'ite3')\n",
		"lib/shared.py": "import zipfile\nif __name__ == '__main__':\n    import smtplib\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := pythonJobManifest(t, ", env: [PYTHONPATH="+lib+"]", "-s", filepath.Join(dir, "job.py"))
	trusted := trustedSet(g)
	pylib := "/usr/lib/python3.11/"
	for _, f := range []string{filepath.Join(dir, "job.py"), filepath.Join(dir, "helper.py"), filepath.Join(lib, "shared.py"), pylib + "csv.py", pylib + "zipfile.py"} {
		if _, ok := trusted[f]; !ok && (strings.HasPrefix(f, dir) || fileExists(f)) {
			t.Errorf("%s is not trusted", f)
		}
	}
	for _, f := range []string{pylib + "sqlite3/__init__.py", pylib + "smtplib.py"} {
		if why, ok := trusted[f]; ok {
			t.Errorf("%s trusted (%s): computed imports and __main__ blocks are not followed", f, why)
		}
	}
}

func TestParsePythonArgs(t *testing.T) {
	for _, c := range []struct {
		args          []string
		want          string
		noSite, noEnv bool
	}{
		{[]string{"-c", "import x", "arg"}, `{"path":null,"code":["import x"],"scripts":null,"modules":null}`, false, false},
		{[]string{"-sSEc", "pass"}, `{"path":null,"code":["pass"],"scripts":null,"modules":null}`, true, true},
		{[]string{"-X", "utf8", "-W", "ignore", "-u", "s.py", "-c"}, `{"path":null,"code":null,"scripts":["s.py"],"modules":null}`, false, false},
		{[]string{"-I", "-mjson.tool"}, `{"path":null,"code":null,"scripts":null,"modules":["json.tool"]}`, false, true},
		{[]string{"-"}, `{"path":null,"code":null,"scripts":null,"modules":null}`, false, false},
		{[]string{"--", "x.py"}, `{"path":null,"code":null,"scripts":["x.py"],"modules":null}`, false, false},
	} {
		req, noSite, noEnv := parsePythonArgs(c.args)
		b, _ := json.Marshal(req)
		if string(b) != c.want || noSite != c.noSite || noEnv != c.noEnv {
			t.Errorf("%q: %s %v %v", c.args, b, noSite, noEnv)
		}
	}
}

// TestPythonScanRunsNothingOfTheJob: finding the imports executes none of
// the job's code, even modules on its PYTHONPATH named like the ones the
// interpreter or the helper import.
func TestPythonScanRunsNothingOfTheJob(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	evil := "open(" + strconv.Quote(marker) + ", 'a').write(__name__ + '\\n')\n"
	for _, name := range []string{"sitecustomize.py", "usercustomize.py", "json.py", "ast.py", "mylib.py", "_sysconfigdata__linux_x86_64-linux-gnu.py"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(evil), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "job.py"), []byte("import mylib, json\n"+evil), 0o644); err != nil {
		t.Fatal(err)
	}
	g := pythonJobManifest(t, ", env: [PYTHONPATH="+dir+"]", filepath.Join(dir, "job.py"))
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("the job's code ran while its imports were found: %s", b)
	}
	if _, ok := trustedSet(g)[filepath.Join(dir, "mylib.py")]; !ok {
		t.Error("the job's module mylib.py is not trusted")
	}
}
