package job_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/job"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// specs is what these tests parse with: the exec engine, which the golden
// manifest uses, and the test engines below.
var specs = job.NewSpecSet(execspec.Spec, fakeEngine{}, threadsEngine{})

func mustParse(t *testing.T, src string) *job.Manifest {
	t.Helper()
	m, err := job.Parse([]byte(src), "/jobs/demo", specs)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

// TestGolden checks the canonical bytes and digest against values committed
// beside the manifest, which were written by hand from docs/jobs.md.
func TestGolden(t *testing.T) {
	m, err := job.Load(filepath.Join("testdata", "golden.yaml"), specs)
	if err != nil {
		t.Fatal(err)
	}
	want := readFile(t, "golden.canonical.json")
	if got := m.Canonical(); !bytes.Equal(got, want) {
		t.Fatalf("canonical form differs\n got: %q\nwant: %q", got, want)
	}
	wantDigest := strings.TrimSpace(string(readFile(t, "golden.digest")))
	if got := m.DigestString(); got != wantDigest {
		t.Fatalf("digest %s, want %s", got, wantDigest)
	}
	if sum := sha256.Sum256(want); job.FormatDigest(sum) != wantDigest {
		t.Fatalf("golden.digest does not match golden.canonical.json")
	}
	// Host paths are resolved against the manifest's directory but stay out of the identity.
	abs, _ := filepath.Abs("testdata")
	if in, _ := m.Input("patients"); in.Path != filepath.Join(abs, "data/patients.csv.ppml") {
		t.Errorf("patients path %q", in.Path)
	}

	// The same job written differently has the same identity.
	r, err := job.Parse(readFile(t, "golden-reformatted.yaml"), "/somewhere/else", specs)
	if err != nil {
		t.Fatal(err)
	}
	if r.DigestString() != wantDigest {
		t.Fatalf("reformatted manifest: digest %s, want %s\ncanonical: %s", r.DigestString(), wantDigest, r.Canonical())
	}
}

// TestCanonicalIndependent re-serializes the canonical form with two other
// JSON implementations that agree with RFC 8785 on this value set (ASCII
// member names, integers below 2^53): Go's encoding/json with sorted map
// keys, and Python's json with sort_keys.
func TestCanonicalIndependent(t *testing.T) {
	canon := readFile(t, "golden.canonical.json")

	var v any
	if err := json.Unmarshal(canon, &v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if got := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, canon) {
		t.Fatalf("encoding/json re-serialization differs\n got: %q\nwant: %q", got, canon)
	}

	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; the encoding/json check above still ran")
	}
	script := `import sys, json, hashlib
d = json.loads(sys.stdin.buffer.read().decode("utf-8"))
out = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
sys.stdout.write("sha256:" + hashlib.sha256(out).hexdigest())`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(canon)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	want := strings.TrimSpace(string(readFile(t, "golden.digest")))
	if string(out) != want {
		t.Fatalf("python3 computes %s, want %s", out, want)
	}
}

// TestSemanticChangesChangeDigest edits golden.yaml one meaningful thing at a
// time; every edit must give a new digest, and edits that touch only host
// paths or formatting must not.
func TestSemanticChangesChangeDigest(t *testing.T) {
	base := string(readFile(t, "golden.yaml"))
	baseM := mustParse(t, base)
	edits := []struct{ name, old, new string }{
		{"one byte in the command", "print(os.environ", "print(os.environs"},
		{"output key", "kms://keys.example.org/hospital.results", "kms://keys.example.org/hospital.results2"},
		{"output key version", "kms://keys.example.org/hospital.results", "kms://keys.example.org/hospital.results@1"},
		{"output key host", "kms://keys.example.org/hospital.results", "kms://evil.example.org/hospital.results"},
		{"output key port", "kms://keys.example.org/hospital.results", "kms://keys.example.org:444/hospital.results"},
		{"local output key", "00112233445566778899aabbccddeeff", "00112233445566778899aabbccddeef0"},
		{"input key override", "visits@3", "visits@4"},
		{"input file key", "file:./keys/../owner.key", "file:other.key"},
		{"content type", "Application/JSON", "text/plain"},
		{"name", "name: golden-exec", "name: golden-exec2"},
		{"memory", "memory: 512MiB", "memory: 1GiB"},
		{"threads", "threads: 2", "threads: 3"},
		{"env value", "LANG=C.UTF-8", "LANG=C"},
		{"env passthrough to fixed", "[TZ,", "[TZ=UTC,"},
		{"workdir", "workdir: /work//job/", "workdir: /work/job2"},
		{"pinned file hash", "E3B0C44298", "F3B0C44298"},
		{"input renamed", "  patients: data", "  patients2: data"},
		{"output renamed", "  log:\n", "  logs:\n"},
		{"argument split", "10,", "1, 0,"},
	}
	seen := map[string]string{baseM.DigestString(): "base"}
	for _, e := range edits {
		if !strings.Contains(base, e.old) {
			t.Fatalf("%s: %q not in golden.yaml", e.name, e.old)
		}
		m := mustParse(t, strings.Replace(base, e.old, e.new, 1))
		d := m.DigestString()
		if prev, dup := seen[d]; dup {
			t.Errorf("%s: digest equals that of %s", e.name, prev)
		}
		seen[d] = e.name
	}

	same := []struct{ name, old, new string }{
		{"input path", "data/patients.csv.ppml", "/mnt/p.ppml"},
		{"output path", "out/log.txt.ppml", "/var/out/log.ppml"},
		{"comment", "# key comes from the file's header", "# another comment"},
		{"memory spelled in bytes", "512MiB", "536870912"},
		{"memory spelled the Gramine way", "512MiB", "512M"},
		{"key file path spelled differently", "file:./keys/../owner.key", "file:owner.key"},
		{"redundant default", "version: 1\n", ""},
	}
	for _, e := range same {
		m := mustParse(t, strings.Replace(base, e.old, e.new, 1))
		if m.DigestString() != baseM.DigestString() {
			t.Errorf("%s changed the digest", e.name)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	const ok = `name: j
engine: exec
inputs:
  data: in/data.csv.ppml
outputs:
  result: {path: out/result.ppml, key: "kms://kms.local/owner.result"}
parameters:
  command: [/usr/bin/python3, -c, "print(1)"]
`
	mustParse(t, ok)
	cases := []struct {
		name string
		src  string
		want []string // substrings of the error
	}{
		{"unknown top field", ok + "nmae: x\n", []string{"line 9: nmae: unknown field"}},
		{"unknown output field", strings.Replace(ok, "key:", "kee:", 1), []string{"line 6: outputs.result.kee: unknown field", "path, key, content_type"}},
		{"duplicate key", ok + "name: k\n", []string{"line 9: name: duplicate key (first defined on line 1)"}},
		{"missing name", strings.Replace(ok, "name: j\n", "", 1), []string{"name: required"}},
		{"missing engine", strings.Replace(ok, "engine: exec\n", "", 1), []string{"engine: required (known engines: exec"}},
		{"unknown engine", strings.Replace(ok, "engine: exec", "engine: spark", 1), []string{"line 2: engine: unknown engine \"spark\" (known engines: exec"}},
		{"bad input name", strings.Replace(ok, "  data:", "  my-data:", 1), []string{"line 4: inputs.my-data", "not a valid input name"}},
		{"names collide after upper-casing", strings.Replace(ok, "  data: in/data.csv.ppml\n", "  data: a\n  DATA: b\n", 1), []string{"line 5: inputs.DATA: collides with inputs.data: both become PPML_INPUT_DATA"}},
		{"two outputs to one path", strings.Replace(ok, "outputs:\n", "outputs:\n  other: {path: ./out//result.ppml, key: \"file:k\"}\n", 1), []string{"outputs.result.path: same file as outputs.other.path"}},
		{"output equals input", strings.Replace(ok, "out/result.ppml", "/jobs/demo/in/data.csv.ppml", 1), []string{"line 6: outputs.result.path: same file as inputs.data"}},
		{"output inside input dir", strings.Replace(ok, "in/data.csv.ppml", "out", 1), []string{"outputs.result.path: /jobs/demo/out/result.ppml is inside inputs.data"}},
		{"empty command", strings.Replace(ok, `[/usr/bin/python3, -c, "print(1)"]`, "[]", 1), []string{"line 8: parameters.command: must not be empty"}},
		{"missing command", strings.Replace(ok, `command: [/usr/bin/python3, -c, "print(1)"]`, "env: [TZ]", 1), []string{"parameters.command: required"}},
		{"missing parameters", strings.Replace(ok, "parameters:\n  command: [/usr/bin/python3, -c, \"print(1)\"]\n", "", 1), []string{"parameters: required for engine exec"}},
		{"relative program", strings.Replace(ok, "/usr/bin/python3", "./run.sh", 1), []string{"parameters.command[0]: program \"./run.sh\" must be an absolute path"}},
		{"null argument", strings.Replace(ok, `"print(1)"`, "null", 1), []string{"parameters.command[2]: must be a string, found null"}},
		{"bad size unit", ok + "resources: {memory: 12XB}\n", []string{"line 9: resources.memory", "unknown unit"}},
		{"decimal size unit", ok + "resources: {memory: 512MB}\n", []string{"resources.memory", "ambiguous, use MiB"}},
		{"fractional size", ok + "resources: {memory: 1.5GiB}\n", []string{"resources.memory", "unknown unit"}},
		{"zero size", ok + "resources: {memory: 0}\n", []string{"resources.memory: 0B is outside 16MiB to 1TiB"}},
		{"huge size", ok + "resources: {memory: 99999999999999999999GiB}\n", []string{"resources.memory", "out of range"}},
		{"too large size", ok + "resources: {memory: 2TiB}\n", []string{"resources.memory: 2TiB is outside"}},
		{"zero threads", ok + "resources: {threads: 0}\n", []string{"resources.threads: must be between 1 and 1024"}},
		{"word threads", ok + "resources: {threads: many}\n", []string{"resources.threads: must be a decimal integer"}},
		{"kms ref without key", strings.Replace(ok, "kms://kms.local/owner.result", "kms://kms.local", 1), []string{"outputs.result.key", "missing /KEY"}},
		{"kms ref version 0", strings.Replace(ok, "owner.result", "owner.result@0", 1), []string{"outputs.result.key", "version must be a decimal number"}},
		{"kms ref not canonical", strings.Replace(ok, "kms.local/owner.result", "KMS.local/owner.result", 1), []string{"outputs.result.key", "invalid host"}},
		{"unknown key scheme", strings.Replace(ok, "kms://kms.local/owner.result", "s3://bucket/key", 1), []string{"outputs.result.key", "want kms://"}},
		{"output without key", strings.Replace(ok, `, key: "kms://kms.local/owner.result"`, "", 1), []string{"outputs.result.key: required"}},
		{"alias", ok + "resources: &r {threads: 1}\nx: *r\n", []string{"anchors", "aliases"}},
		{"two documents", ok + "---\nname: k\n", []string{"more than one YAML document"}},
		{"empty", "", []string{"manifest is empty"}},
		{"comment only", "# nothing\n", []string{"manifest is empty"}},
		{"list root", "- a\n", []string{"line 1: manifest must be a mapping"}},
		{"reserved env", strings.Replace(ok, `command:`, "env: [PPML_INPUT_X=1]\n  command:", 1), []string{"parameters.env[0]", "PPML_ prefix is reserved"}},
		{"loader env passthrough", strings.Replace(ok, `command:`, "env: [LD_PRELOAD]\n  command:", 1), []string{"parameters.env[0]", "LD_PRELOAD=VALUE"}},
		{"env twice", strings.Replace(ok, `command:`, "env: [TZ, TZ=UTC]\n  command:", 1), []string{"parameters.env[1]: TZ is listed twice"}},
		{"bad env name", strings.Replace(ok, `command:`, "env: [1X]\n  command:", 1), []string{"parameters.env[0]", "not a valid variable name"}},
		{"bad pinned hash", strings.Replace(ok, `command:`, "files: [{path: /a.py, sha256: abc}]\n  command:", 1), []string{"parameters.files[0].sha256: must be 64 hex digits"}},
		{"relative workdir", strings.Replace(ok, `command:`, "workdir: w\n  command:", 1), []string{"parameters.workdir: must be an absolute path"}},
		{"version 2", "version: 2\n" + ok, []string{"line 1: version: unsupported manifest version 2"}},
		{"bad content type", strings.Replace(ok, `key: "kms`, `content_type: "text", key: "kms`, 1), []string{"outputs.result.content_type", "not a media type"}},
		{"bad job name", strings.Replace(ok, "name: j", "name: -j", 1), []string{"line 1: name: \"-j\" is not a valid job name"}},
		{"tag", strings.Replace(ok, "name: j", "name: !secret j", 1), []string{"unsupported YAML tag"}},
		{"syntax error", "name: [\n", []string{"line"}},
		{"input as list", strings.Replace(ok, "  data: in/data.csv.ppml", "  data: [a]", 1), []string{"inputs.data: must be a path or a mapping"}},
		{"input without path", strings.Replace(ok, "  data: in/data.csv.ppml", "  data: {key: \"file:k\"}", 1), []string{"inputs.data.path: required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := job.Parse([]byte(tc.src), "/jobs/demo", specs)
			if err == nil {
				t.Fatalf("accepted:\n%s\ncanonical %s", tc.src, m.Canonical())
			}
			var je *job.Error
			if !errors.As(err, &je) {
				t.Fatalf("error %T %v is not a *job.Error", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	src := `name: "bad name"
engine: exec
extra: 1
outputs:
  a: {path: x, key: "s3://k", colour: red}
parameters:
  command: []
  cwd: /
resources: {memory: 1KB, threads: 0, disk: 1GiB}
`
	_, err := job.Parse([]byte(src), "/j", specs)
	var je *job.Error
	if !errors.As(err, &je) {
		t.Fatalf("got %v", err)
	}
	fields := map[string]bool{}
	for _, p := range je.Problems {
		fields[p.Field] = true
		if p.Line == 0 {
			t.Errorf("problem without line: %v", p)
		}
	}
	for _, f := range []string{"name", "extra", "outputs.a.key", "outputs.a.colour", "parameters.command", "parameters.cwd",
		"resources.memory", "resources.threads", "resources.disk"} {
		if !fields[f] {
			t.Errorf("no problem reported for %s; got %v", f, err)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.ppml"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "outdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "in.ppml"), filepath.Join(dir, "link.ppml")); err != nil {
		t.Fatal(err)
	}
	src := func(in, out string) []byte {
		return []byte("name: j\nengine: exec\ninputs:\n  a: " + in + "\noutputs:\n  o: {path: " + out + ", key: \"file:k\"}\nparameters: {command: [true]}\n")
	}
	check := func(in, out string) error {
		m, err := job.Parse(src(in, out), dir, specs)
		if err != nil {
			t.Fatal(err)
		}
		return m.CheckFiles()
	}
	if err := check("in.ppml", "result.ppml"); err != nil {
		t.Fatalf("good layout: %v", err)
	}
	for _, tc := range []struct{ in, out, want string }{
		{"missing.ppml", "r.ppml", "line 4: inputs.a: input " + filepath.Join(dir, "missing.ppml") + " does not exist"},
		{"in.ppml", "nodir/r.ppml", "outputs.o.path: directory " + filepath.Join(dir, "nodir")},
		{"in.ppml", "outdir", "is a directory; an output is a file"},
		{"in.ppml", "link.ppml", "is the same file as inputs.a"},
	} {
		err := check(tc.in, tc.out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("in=%s out=%s: got %v, want %q", tc.in, tc.out, err, tc.want)
		}
	}
}

func TestKeyRef(t *testing.T) {
	good := map[string]string{
		"kms://kms.example.com/k":                "kms://kms.example.com/k",
		"kms://kms.example.com:443/a.b@12":       "kms://kms.example.com:443/a.b@12",
		"kms://10.0.0.1:8443/k@1":                "kms://10.0.0.1:8443/k@1",
		"kms://[::1]:8443/k":                     "kms://[::1]:8443/k",
		"kms://localhost/tenant-1_key.v3":        "kms://localhost/tenant-1_key.v3",
		"local:00112233445566778899aabbccddeeff": "local:00112233445566778899aabbccddeeff",
		"file:owner.key":                         "file:owner.key",
		"file:/keys//a/../owner.key":             "file:/keys/owner.key",
	}
	for in, want := range good {
		k, err := job.ParseKeyRef(in, "/base")
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if k.String() != want {
			t.Errorf("%s: canonical %s, want %s", in, k.String(), want)
		}
	}
	if k, _ := job.ParseKeyRef("file:owner.key", "/base"); k.AbsPath != "/base/owner.key" || k.Scheme != job.KeyFile {
		t.Errorf("file key resolved to %s", k.AbsPath)
	}
	if k, _ := job.ParseKeyRef("kms://h/k@2", "/base"); k.Scheme != job.KeyKMS || k.Envelope.Name != "k" || k.Envelope.Version != 2 {
		t.Errorf("kms key parsed as %+v", k)
	}
	// Non-canonical spellings are refused so that each key has one spelling,
	// the one envelope headers carry.
	for _, in := range []string{"", "kms://", "kms:///k", "kms://host", "kms://host/", "kms://host:/k", "kms://host:0/k",
		"kms://host:65536/k", "kms://host:8a/k", "kms://ho_st/k", "kms://-host/k", "kms://host/a//b", "kms://Host/k",
		"kms://host:08443/k", "kms://host/k@03", "kms://host/k@", "kms://host/k@0", "kms://host/k@1.0", "kms://host/k y",
		"kms://[::1/k", "kms://[zz]/k", "kms://[::1]x/k", "file:", "https://host/k", "kms://host/k@99999999999",
		"local:xyz", "local:00112233445566778899AABBCCDDEEFF"} {
		if k, err := job.ParseKeyRef(in, "/base"); err == nil {
			t.Errorf("%q accepted as %s", in, k)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"512MiB": 512 << 20, "2GiB": 2 << 30, "2G": 2 << 30, "1024": 1024, "1 KiB": 1024,
		"7B": 7, "1TiB": 1 << 40, "8388607TiB": 8388607 << 40}
	for in, want := range good {
		if got, err := job.ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "1 GB", "1mib", "8388608TiB", "18446744073709551616", "1e9"} {
		if v, err := job.ParseSize(in); err == nil {
			t.Errorf("%q accepted as %d", in, v)
		}
	}
	for _, n := range []int64{1, 1023, 1024, 512 << 20, 3 << 30, 1 << 40} {
		back, err := job.ParseSize(job.FormatSize(n))
		if err != nil || back != n {
			t.Errorf("FormatSize(%d)=%s reads back as %d %v", n, job.FormatSize(n), back, err)
		}
	}
}

func TestParseDigest(t *testing.T) {
	m := mustParse(t, string(readFile(t, "golden.yaml")))
	d, err := job.ParseDigest(m.DigestString())
	if err != nil || d != m.Digest() {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "sha256:", "sha256:abc", "SHA256:" + hex.EncodeToString(d[:]), "sha256:" + strings.ToUpper(hex.EncodeToString(d[:]))} {
		if _, err := job.ParseDigest(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMarshalCanonical(t *testing.T) {
	v := map[string]any{
		"\u20ac": 1, "\r": 2, "\U0001F600": 3, "\u00f6": 4, "1": 5, // RFC 8785 §3.2.3 sort example
	}
	got, err := job.MarshalCanonical(v)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"\\r\":2,\"1\":5,\"\u00f6\":4,\"\u20ac\":1,\"\U0001F600\":3}"
	if string(got) != want {
		t.Errorf("got %s want %s", got, want)
	}
	if _, err := job.MarshalCanonical(map[string]any{"x": int64(1) << 60}); err == nil {
		t.Error("2^60 accepted")
	}
	if _, err := job.MarshalCanonical("\xff"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if _, err := job.MarshalCanonical(1.5); err == nil {
		t.Error("float accepted")
	}
	s, _ := job.MarshalCanonical("a\"\\\b\f\n\r\t\x00\x1f\x7f\u2028</>&")
	if string(s) != "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\u2028</>&\"" {
		t.Errorf("string escaping: %s", s)
	}
}

// fakeEngine checks that engines plug in: their parameters are theirs to
// validate, with the same node helpers.
type fakeEngine struct{}

func (fakeEngine) Name() string { return "test-sql" }
func (fakeEngine) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required")
		return nil
	}
	fs, err := n.Fields("query")
	if err != nil {
		c.Add(err)
		return nil
	}
	q, err := fs["query"].Str()
	if err != nil {
		c.Add(err)
	}
	return fakeParams{q}
}

type fakeParams struct{ q string }

func (p fakeParams) Canonical() map[string]any { return map[string]any{"query": p.q} }

func TestPluggableEngine(t *testing.T) {
	m := mustParse(t, "name: q\nengine: test-sql\nparameters: {query: select 1}\n")
	if !strings.Contains(string(m.Canonical()), `"parameters":{"query":"select 1"}`) {
		t.Errorf("canonical %s", m.Canonical())
	}
	_, err := job.Parse([]byte("name: q\nengine: test-sql\nparameters: {command: [x]}\n"), "/", specs)
	if err == nil || !strings.Contains(err.Error(), "line 3: parameters.command: unknown field (known fields here: query)") {
		t.Errorf("got %v", err)
	}
	_, err = job.Parse([]byte("name: q\nengine: nope\n"), "/", specs)
	if err == nil || !strings.Contains(err.Error(), `unknown engine "nope" (known engines: exec, test-sql, test-threads)`) {
		t.Errorf("got %v", err)
	}
}

func TestEnvNames(t *testing.T) {
	if job.InputEnv("data_1") != "PPML_INPUT_DATA_1" || job.OutputEnv("Result") != "PPML_OUTPUT_RESULT" {
		t.Error("env names")
	}
}

func TestCheckFilesExec(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "job.py")
	if err := os.WriteFile(script, []byte("print('hello')\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("print('hello')\n"))
	good := hex.EncodeToString(sum[:])
	check := func(prog, hash string) error {
		src := "name: j\nengine: exec\nparameters:\n  command: [" + prog + ", " + script + "]\n  files: [{path: " + script + ", sha256: " + hash + "}]\n"
		m, err := job.Parse([]byte(src), dir, specs)
		if err != nil {
			t.Fatal(err)
		}
		return m.CheckFiles()
	}
	if err := check("sh", good); err != nil {
		t.Fatalf("good exec job: %v", err)
	}
	if err := check("no-such-program-ppml", good); err == nil || !strings.Contains(err.Error(), `parameters.command[0]: program "no-such-program-ppml" not found in /usr/local/bin:/usr/bin:/bin`) {
		t.Errorf("missing program: %v", err)
	}
	if err := check(script, good); err == nil || !strings.Contains(err.Error(), "is not an executable file") {
		t.Errorf("non-executable program: %v", err)
	}
	bad := strings.Repeat("0", 64)
	if err := check("sh", bad); err == nil || !strings.Contains(err.Error(), "parameters.files[0]: pinned file "+script+" has SHA-256 "+good+", the job pins "+bad) {
		t.Errorf("changed pinned file: %v", err)
	}
}

type threadsEngine struct{ fakeEngine }

func (threadsEngine) Name() string        { return "test-threads" }
func (threadsEngine) DefaultThreads() int { return 1 }

func TestEngineDefaultThreads(t *testing.T) {
	omitted := mustParse(t, "name: q\nengine: test-threads\nparameters: {query: select 1}\n")
	if omitted.Resources.Threads != 1 {
		t.Fatalf("threads %d, want the engine's default 1", omitted.Resources.Threads)
	}
	explicit := mustParse(t, "name: q\nengine: test-threads\nparameters: {query: select 1}\nresources: {threads: 1}\n")
	if omitted.DigestString() != explicit.DigestString() {
		t.Errorf("writing the engine default changes the digest:\n%s\n%s", omitted.Canonical(), explicit.Canonical())
	}
	if !strings.Contains(string(omitted.Canonical()), `"threads":1`) {
		t.Errorf("canonical %s", omitted.Canonical())
	}
	four := mustParse(t, "name: q\nengine: test-threads\nparameters: {query: select 1}\nresources: {threads: 4}\n")
	if four.Resources.Threads != 4 || four.DigestString() == omitted.DigestString() {
		t.Errorf("explicit threads: %d, digest %s", four.Resources.Threads, four.DigestString())
	}
	// Other engines keep the manifest default.
	if m := mustParse(t, "name: q\nengine: exec\nparameters: {command: [/bin/true]}\n"); m.Resources.Threads != job.DefaultThreads {
		t.Errorf("exec threads %d, want %d", m.Resources.Threads, job.DefaultThreads)
	}
}
