package runcli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
)

func TestSQLCommand(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	k, err := keyfile.Generate(p("owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	plain := "{\"name\":\"Michael\"}\n{\"name\":\"Andy\", \"age\":30}\n{\"name\":\"Justin\", \"age\":19}\n"
	w, err := envelope.CreateFile(p("people.json.ppml"), k.LocalKey, &envelope.Options{ContentType: envelope.TypeJSON}, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(plain))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	in := "people=" + p("people.json.ppml")

	code, out, errOut := run(t, nil, "sql", "--input", in, "--key", p("owner.key"), "--query", "SELECT name FROM people WHERE age BETWEEN 13 AND 19")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "| Justin  |") || strings.Contains(out, "Andy") || !strings.Contains(errOut, "digest sha256:") {
		t.Fatalf("table output:\n%s\nstderr:\n%s", out, errOut)
	}

	code, out, errOut = run(t, nil, "sql", "--input", in, "--key", p("owner.key"), "--csv", "--query", "SELECT name, age + 1 AS next FROM people ORDER BY name")
	if code != 0 || out != "name,next\nAndy,31\nJustin,20\nMichael,\n" {
		t.Fatalf("csv: exit %d %q %s", code, out, errOut)
	}

	// Interactive: one session across statements, errors reported and the
	// session goes on, a ';' inside a string does not end a statement.
	stdin := "CREATE TEMP VIEW adults AS\n  SELECT * FROM people WHERE age >= 21;\nSELEC 1;\nSELECT name, 'a;\nb' AS s FROM adults;\n"
	code, out, errOut = run(t, []byte(stdin), "sql", "--input", in, "--key", p("owner.key"), "--json")
	if code != 0 {
		t.Fatalf("interactive: exit %d: %s", code, errOut)
	}
	if out != "{\"name\":\"Andy\",\"s\":\"a;\\nb\"}\n" || !strings.Contains(errOut, `syntax error at or near "SELEC"`) {
		t.Fatalf("interactive: %q\nstderr: %s", out, errOut)
	}

	// The session's own commands.
	code, out, errOut = run(t, []byte(".tables\n.schema people\n.schema nope\n.help\n.bogus\n"), "sql", "--input", in, "--key", p("owner.key"), "--csv")
	if code != 0 || !strings.Contains(out, "table_name\npeople\n") || !strings.Contains(out, "name,VARCHAR") || !strings.Contains(out, "age,BIGINT") {
		t.Fatalf("dot commands: exit %d %q\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"no table nope", ".schema NAME    show", "unknown command .bogus"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("dot commands: stderr lacks %q: %s", want, errOut)
		}
	}

	// A binder error fails the command with DuckDB's message.
	code, _, errOut = run(t, nil, "sql", "--input", in, "--key", p("owner.key"), "--query", "SELECT nme FROM people")
	if code != 1 || !strings.Contains(errOut, "Binder Error") {
		t.Fatalf("binder error: exit %d: %s", code, errOut)
	}
	// Without the key nothing is decrypted.
	code, _, errOut = run(t, nil, "sql", "--input", in, "--query", "SELECT 1")
	if code != 1 || !strings.Contains(errOut, "needs local key") {
		t.Fatalf("missing key: exit %d: %s", code, errOut)
	}
	if code, _, _ := run(t, nil, "sql", "--query", "SELECT 1", "--manifest", p("x.yaml")); code != 2 {
		t.Fatalf("usage error: exit %d", code)
	}
}

func TestSQLCommandManifest(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	k, err := keyfile.Generate(p("owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := envelope.CreateFile(p("t.csv.ppml"), k.LocalKey, &envelope.Options{ContentType: envelope.TypeCSV}, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a,b\n1,x\n2,y\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("job.yaml"), []byte(`name: m
engine: sql
inputs: {t: t.csv.ppml}
outputs: {o: {path: o.json.ppml, key: file:owner.key}}
parameters:
  query: SELECT sum(a) AS s FROM t
  print: ["SELECT b FROM t ORDER BY a DESC"]
`), 0o644)
	code, out, errOut := run(t, nil, "sql", "--manifest", p("job.yaml"), "--key", p("owner.key"), "--csv")
	if code != 0 || out != "b\ny\nx\n" {
		t.Fatalf("exit %d, stdout %q: %s", code, out, errOut)
	}
	if got := string(envelopetest.Decrypt(t, p("o.json.ppml"), k.LocalKey)); got != "{\"s\":3}\n" {
		t.Fatalf("output %q", got)
	}
	os.WriteFile(p("exec.yaml"), []byte("name: e\nengine: exec\nparameters: {command: [/bin/true]}\n"), 0o644)
	if code, _, errOut := run(t, nil, "sql", "--manifest", p("exec.yaml")); code != 2 || !strings.Contains(errOut, "ppml run") {
		t.Fatalf("exec manifest: exit %d: %s", code, errOut)
	}
}
