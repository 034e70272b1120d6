package job_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/job"
)

// FuzzParse feeds arbitrary bytes to the manifest parser. It must never
// panic; it must either return a *job.Error or a manifest whose canonical form is
// valid JSON that re-serializes to itself and whose digest is stable.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"name: j\nengine: exec\nparameters: {command: [x]}\n",
		"name: j\nengine: exec\ninputs: {a: x, b: {path: y, key: \"kms://h:1/k@2\"}}\noutputs: {o: {path: z, key: \"file:k\", content_type: text/csv}}\nparameters: {command: [/bin/sh, -c, 'echo'], env: [A, B=c], workdir: /w, files: [{path: /p, sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855}]}\nresources: {memory: 64MiB, threads: 3}\n",
		"a: &x [*x]\n", "- a\n", "name: [\n", "---\n---\n", "<<: {a: 1}\n", "name: !!binary aGk=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := job.Parse(data, "/fuzz", specs)
		if err != nil {
			var je *job.Error
			if !errors.As(err, &je) || len(je.Problems) == 0 {
				t.Fatalf("error %T %v is not a *job.Error with problems", err, err)
			}
			_ = err.Error()
			return
		}
		canon := m.Canonical()
		if !json.Valid(canon) {
			t.Fatalf("canonical form is not JSON: %q", canon)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(canon))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		again, err := job.MarshalCanonical(numbersToInt(t, v))
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("canonical form is not a fixed point: %v\n%q\n%q", err, canon, again)
		}
		// Path checks may differ between base directories (a relative and
		// an absolute path can meet in one and not the other), the identity
		// may not.
		if m2, err := job.Parse(data, "/elsewhere", specs); err == nil && m2.Digest() != m.Digest() {
			t.Fatalf("digest depends on the base directory")
		}
	})
}

func numbersToInt(t *testing.T, v any) any {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			t.Fatalf("non-integer number %s in canonical form", x)
		}
		return n
	case []any:
		for i := range x {
			x[i] = numbersToInt(t, x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersToInt(t, x[k])
		}
	}
	return v
}
