package sqlspec

import (
	"testing"

	"github.com/ppml/ppml/job"
)

var specs = job.NewSpecSet(Spec)

// FuzzSQLParameters parses manifests of the sql engine: any text is either
// rejected with an error or gives parameters whose canonical form builds.
func FuzzSQLParameters(f *testing.F) {
	head := "name: f\nengine: sql\ninputs: {people: people.json.ppml, u: u.parquet}\noutputs: {o: {path: o.csv.ppml, key: file:owner.key}}\n"
	for _, p := range []string{
		"parameters: {query: SELECT 1}\n",
		"parameters:\n  setup: CREATE TEMP VIEW v AS SELECT 1;\n  outputs: {o: {query: 'SELECT * FROM v', format: parquet}}\n  print: ['SELECT 2']\n  interactive: true\n",
		"parameters: {query: SELECT 1, tables: {people: {format: json, materialize: true}, u: {parquet_encryption: {footer_key: kf.ppml, column_keys: {a.b: kc.ppml}, key_ids: {kc1: k.ppml}, aad_prefix: tester}}}}\n",
		"parameters: {outputs: {o: {query: \"SELECT 'a;b' -- c\"}}}\n",
	} {
		f.Add([]byte(head + p))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := job.Parse(data, dir, specs)
		if err != nil || m.Engine != Name {
			return
		}
		p := m.Parameters.(*Params)
		_ = m.Canonical()
		_ = p.RawInputs()
		_ = p.SecretFiles()
		for _, o := range p.Outputs {
			if o.Format == "" {
				t.Fatalf("output %s has no format after parsing", o.Name)
			}
		}
	})
}
