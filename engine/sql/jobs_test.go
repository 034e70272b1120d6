package sqlengine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/internal/shareddata"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
)

const people = "{\"name\":\"Michael\"}\n{\"name\":\"Andy\", \"age\":30}\n{\"name\":\"Justin\", \"age\":19}\n"

// runJob runs the manifest at path as ppml-run does: loaded once, then run.
func runJob(path string, cfg launcher.Config) (*launcher.Result, error) {
	m, err := launcher.Load(path)
	if err != nil {
		return nil, err
	}
	cfg.Manifest = m
	return launcher.Run(context.Background(), cfg)
}

// jobDir is a temporary job directory with a local owner key.
type jobDir struct {
	t   *testing.T
	dir string
	key *envelope.LocalKey
}

func newJobDir(t *testing.T) *jobDir {
	t.Helper()
	dir := t.TempDir()
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	return &jobDir{t: t, dir: dir, key: k.LocalKey}
}

func (j *jobDir) path(n string) string { return filepath.Join(j.dir, n) }

func (j *jobDir) encrypt(name, plain string, ct envelope.ContentType) {
	j.t.Helper()
	os.MkdirAll(filepath.Dir(j.path(name)), 0o755)
	envelopetest.Encrypt(j.t, j.path(name), j.key, []byte(plain), ct)
}

func (j *jobDir) manifest(yaml string) string {
	j.t.Helper()
	p := j.path("job.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		j.t.Fatal(err)
	}
	return p
}

func (j *jobDir) run(yaml string) (*launcher.Result, error) {
	j.t.Helper()
	keys, err := launcher.NewLocalKeys(j.path("owner.key"))
	if err != nil {
		j.t.Fatal(err)
	}
	return runJob(j.manifest(yaml), launcher.Config{Keys: keys})
}

func TestManifestParameters(t *testing.T) {
	j := newJobDir(t)
	j.encrypt("people.json.ppml", people, envelope.TypeJSON)
	head := "name: p\nengine: sql\ninputs:\n  people: people.json.ppml\n"
	out := "outputs:\n  adults: {path: adults.csv.ppml, key: file:owner.key}\n"
	bad := []struct{ yaml, want string }{
		{head + out, "required for engine sql"},
		{head + out + "parameters: {query: 'SELECT 1', outputs: {adults: {query: 'SELECT 1'}}}\n", "either query"},
		{head + out + "parameters: {outputs: {other: {query: 'SELECT 1'}}}\n", "names no output of the job"},
		{head + out + "parameters: {print: ['SELECT 1']}\n", "output adults has no query"},
		{head + out + "parameters: {outputs: {adults: {query: 'SELECT 1', format: xml}}}\n", `output format "xml"`},
		{head + out + "parameters: {query: 'SELECT 1', tables: {nope: {format: csv}}}\n", "names no input of the job"},
		{head + out + "parameters: {query: 'SELECT 1', tables: {people: {format: avro}}}\n", "unknown SQL data format"},
		{head + out + "parameters: {query: 'SELECT 1', tables: {people: {materialise: true}}}\n", "unknown field"},
		{head + out + "parameters: {query: 'SELECT 1', interactive: maybe}\n", "must be true or false"},
		{head + out + "parameters: {query: '  -- nothing'}\n", "has no SQL statement"},
		{head + out + "parameters: {query: \"SELECT 'unterminated\"}\n", "unterminated"},
		{head + out + "parameters: {query: 'SELECT 1', tables: {people: {parquet_encryption: {aad_prefix: x}}}}\n", "needs footer_key or key_ids"},
		{head + "outputs:\n  x: {path: x.ppml, key: file:owner.key}\nparameters: {query: 'SELECT 1'}\n", "cannot tell the format of output x"},
		{head + "parameters: {}\n", "nothing to run"},
	}
	for _, b := range bad {
		_, err := job.Parse([]byte(b.yaml), j.dir, launcher.Specs())
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("manifest\n%s\nerror %v, want %q", b.yaml, err, b.want)
		}
	}
	// query: for one output is the same job as outputs: with the format the
	// output's file name implies.
	a, err := job.Parse([]byte(head+out+"parameters: {query: 'SELECT 1'}\n"), j.dir, launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	b, err := job.Parse([]byte(head+out+"parameters: {outputs: {adults: {query: 'SELECT 1', format: csv}}}\n"), j.dir, launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	if a.DigestString() != b.DigestString() {
		t.Errorf("query: shortcut and outputs: differ: %s vs %s", a.Canonical(), b.Canonical())
	}
	c, _ := job.Parse([]byte(head+out+"parameters: {outputs: {adults: {query: 'SELECT 2', format: csv}}}\n"), j.dir, launcher.Specs())
	if c.DigestString() == a.DigestString() {
		t.Error("the query is not part of the job identity")
	}
}

func TestRunFormatsAndOverrides(t *testing.T) {
	j := newJobDir(t)
	j.encrypt("people.json.ppml", people, envelope.TypeJSON)
	j.encrypt("sales/a.csv.ppml", "id,amount\n1,10\n2,20\n", envelope.TypeCSV)
	j.encrypt("sales/b.csv.ppml", "id,amount\n3,30\n", envelope.TypeCSV)
	j.encrypt("raw.ppml", "x;y\n1;2\n", envelope.TypeBytes)
	_, err := j.run(`name: formats
engine: sql
inputs:
  people: people.json.ppml
  sales: sales
  raw: raw.ppml
outputs:
  j: {path: j.json.ppml, key: file:owner.key}
  p: {path: p.parquet.ppml, key: file:owner.key}
  c: {path: c.out.ppml, key: file:owner.key, content_type: text/csv}
parameters:
  setup: CREATE TEMP VIEW adults AS SELECT * FROM people WHERE age >= 21;
  outputs:
    j: {query: "SELECT name, age FROM adults"}
    p: {query: "SELECT sum(amount) AS total, count(*) AS n FROM sales"}
    c: {query: "SELECT * FROM raw"}
  tables:
    sales: {materialize: true}
    raw: {format: csv}
resources: {memory: 256MiB, threads: 1}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(envelopetest.Decrypt(t, j.path("j.json.ppml"), j.key)); got != "{\"name\":\"Andy\",\"age\":30}\n" {
		t.Errorf("json output %q", got)
	}
	if got := string(envelopetest.Decrypt(t, j.path("c.out.ppml"), j.key)); got != "x,y\n1,2\n" {
		t.Errorf("csv output %q", got)
	}
	pq := envelopetest.Decrypt(t, j.path("p.parquet.ppml"), j.key)
	if !strings.HasPrefix(string(pq), "PAR1") {
		t.Fatalf("parquet output is not Parquet")
	}
	// Read the Parquet result back through the engine.
	j2 := newJobDir(t)
	j2.encrypt("p.parquet.ppml", string(pq), envelope.TypeParquet)
	if _, err := j2.run("name: back\nengine: sql\ninputs: {p: p.parquet.ppml}\noutputs: {o: {path: o.csv.ppml, key: file:owner.key}}\nparameters: {query: 'SELECT * FROM p'}\n"); err != nil {
		t.Fatal(err)
	}
	if got := string(envelopetest.Decrypt(t, j2.path("o.csv.ppml"), j2.key)); got != "total,n\n60.0,3\n" {
		t.Errorf("parquet round trip %q", got)
	}
}

func TestFailuresWriteNothing(t *testing.T) {
	j := newJobDir(t)
	j.encrypt("people.json.ppml", people, envelope.TypeJSON)
	j.encrypt("d/a.csv.ppml", "id,amount\n1,10\n", envelope.TypeCSV)
	j.encrypt("d/b.csv.ppml", "id,amount,note\n3,30,x\n", envelope.TypeCSV)
	cases := []struct{ params, want string }{
		{"query: SELEC 1", `Parser Error: syntax error at or near "SELEC"`},
		{"query: SELECT nme FROM people", `Binder Error: Referenced column "nme" not found`},
		{"query: SELECT * FROM read_csv('/etc/passwd')", "Permission Error"},
		{"query: SELECT * FROM d, inputs_d: 1", "schema mismatch: file b.csv.ppml has columns (id, amount, note) but file a.csv.ppml has (id, amount)"},
		{`query: "SELECT i, md5(i::VARCHAR) AS h FROM range(5000000) t(i) ORDER BY h"`, "memory limit of 64 MiB"},
	}
	for _, c := range cases {
		inputs, params := "people: people.json.ppml", c.params
		if p, ok := strings.CutSuffix(params, ", inputs_d: 1"); ok {
			inputs, params = inputs+", d: d", p
		}
		_, err := j.run("name: f\nengine: sql\ninputs: {" + inputs + "}\noutputs: {o: {path: o.csv.ppml, key: file:owner.key}}\nparameters: {" + params + "}\nresources: {memory: 64MiB, threads: 1}\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.params, err, c.want)
		}
		if _, err := os.Stat(j.path("o.csv.ppml")); err == nil {
			t.Errorf("%s: output written", c.params)
		}
	}
}

// denyingKeys records the release and denies it.
type denyingKeys struct {
	launcher.KeySource
	calls int
	reqs  []launcher.KeyRequest
}

func (d *denyingKeys) Release(_ context.Context, _ *launcher.Manifest, reqs []launcher.KeyRequest) ([][]byte, error) {
	d.calls++
	d.reqs = reqs
	return nil, &launcher.DeniedError{Denials: []launcher.Denial{{Key: reqs[len(reqs)-1].Ref.String(), Rule: "job", Reason: "test"}}}
}

// TestDeniedKeyStopsBeforeDecryption: the input keys and the Parquet key
// files are asked for in one release; a denial runs nothing.
func TestDeniedKeyStopsBeforeDecryption(t *testing.T) {
	j := newJobDir(t)
	j.encrypt("people.json.ppml", people, envelope.TypeJSON)
	j.encrypt("footer.key.ppml", "0123456789012345", envelope.TypeBytes)
	envelopetest.CopyFile(t, shareddata.Require(t, "parquet-encryption", "uniform_encryption.parquet.encrypted"), j.path("u.parquet"))
	local, _ := launcher.NewLocalKeys(j.path("owner.key"))
	d := &denyingKeys{KeySource: local}
	_, err := runJob(j.manifest(`name: deny
engine: sql
inputs: {people: people.json.ppml, u: u.parquet}
outputs: {o: {path: o.csv.ppml, key: file:owner.key}}
parameters:
  query: SELECT count(*) FROM people, u
  tables: {u: {parquet_encryption: {footer_key: footer.key.ppml}}}
`), launcher.Config{Keys: d})
	var de *launcher.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a denial", err)
	}
	if d.calls != 1 || len(d.reqs) != 2 || d.reqs[0].Input != "people" || d.reqs[1].File != j.path("footer.key.ppml") {
		t.Fatalf("release: %d calls, requests %+v", d.calls, d.reqs)
	}
	if _, err := os.Stat(j.path("o.csv.ppml")); err == nil {
		t.Error("output written")
	}
}

// TestParquetModularEncryption reads Parquet C++ files with modular
// encryption as tables, keys from envelope-encrypted key files.
func TestParquetModularEncryption(t *testing.T) {
	j := newJobDir(t)
	// 16 ASCII characters: a raw AES-128 key. The hex form must give the same.
	j.encrypt("kf.ppml", "0123456789012345", envelope.TypeBytes)
	j.encrypt("kc1.ppml", "hex:31323334353637383930313233343530\n", envelope.TypeBytes)
	j.encrypt("kc2.ppml", "base64:MTIzNDU2Nzg5MDEyMzQ1MQ==", envelope.TypeBytes)
	for _, f := range []string{"encrypt_columns_and_footer.parquet.encrypted", "encrypt_columns_and_footer_disable_aad_storage.parquet.encrypted"} {
		envelopetest.CopyFile(t, shareddata.Require(t, "parquet-encryption", f), j.path(f))
	}
	_, err := j.run(`name: pme
engine: sql
inputs:
  a: encrypt_columns_and_footer.parquet.encrypted
  b: encrypt_columns_and_footer_disable_aad_storage.parquet.encrypted
outputs: {o: {path: o.csv.ppml, key: file:owner.key}}
parameters:
  query: |
    CREATE TEMP TABLE rows AS SELECT row_number() OVER () - 1 AS i, * FROM a;
    SELECT count(*) AS n,
           count(*) FILTER (WHERE boolean_field IS DISTINCT FROM (i % 2 = 0)
             OR ba_field IS DISTINCT FROM CASE WHEN i % 2 = 0 THEN printf('parquet%03d', i) END
             OR abs(double_field - i * 1.1111111) > 1e-6
             OR abs(float_field - i * 1.1) > 1e-5 * (i + 1)) AS bad,
           (SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b)) AS differ
    FROM rows
  tables:
    a: {parquet_encryption: {footer_key: kf.ppml, column_keys: {double_field: kc1.ppml}, key_ids: {kc2: kc2.ppml}}}
    b: {parquet_encryption: {key_ids: {kf: kf.ppml, kc1: kc1.ppml, kc2: kc2.ppml}, aad_prefix: tester}}
`)
	if err != nil {
		t.Fatal(err)
	}
	got := string(envelopetest.Decrypt(t, j.path("o.csv.ppml"), j.key))
	if got != "n,bad,differ\n50,0,0\n" {
		t.Fatalf("got %q", got)
	}
}
