// Package sqlspec reads the sql engine's manifest parameters (docs/sql.md):
// the queries behind the job's outputs, printed queries, an interactive
// session, per-table formats and Parquet modular encryption. It is the
// pure-Go half of the sql engine (engine/sql runs the SQL in DuckDB): the
// key service and the CLI use it to compute job digests without linking
// DuckDB. It also holds the SQL statement splitter both halves use.
package sqlspec

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ppml/ppml/job"
)

// Name is the manifest's engine value.
const Name = "sql"

// MaxScript bounds one SQL script in a manifest.
const MaxScript = 1 << 20

// Params are the sql engine's parameters.
type Params struct {
	// Setup runs once before any output or printed query.
	Setup string
	// Outputs maps every manifest output to its query and format.
	Outputs []Output // sorted by name
	// Print lists queries whose results go to the caller's terminal
	// (ppml sql): the job shows plaintext to whoever runs it.
	Print []string
	// Interactive reads statements from the caller's terminal: the job may
	// run any SQL over its inputs and show the results.
	Interactive bool
	// Tables holds per-input options, by input name.
	Tables map[string]*Table

	shortcut  string // "query:" given directly under parameters
	nodes     map[string]job.Node
	tableNode map[string]job.Node
}

// Output is the query behind one manifest output.
type Output struct {
	Name   string
	Query  string
	Format Format // "" until CheckManifest fills it from the output
}

// Table holds the options of one input table.
type Table struct {
	// Format overrides the envelope's content type ("" keeps it).
	Format      Format
	Materialize bool
	// Encryption, when set, says the input is Parquet with modular
	// encryption (not a ppml envelope); its keys come from key files.
	Encryption *ParquetEncryption
}

// ParquetEncryption names the key files of a Parquet input with modular
// encryption. Each key file is a ppml envelope (under a local or kms:// key)
// whose plaintext is the AES key, raw (16, 24 or 32 bytes), hex or base64:
// the key is released with the job's other keys, after attestation.
type ParquetEncryption struct {
	FooterKey  string            // key file for the footer key
	ColumnKeys map[string]string // column path → key file
	KeyIDs     map[string]string // key metadata (key id, e.g. "kc1") → key file
	AADPrefix  string            // when the file does not store its own
	dir        string
}

// KeyFiles lists every key file, resolved against the manifest directory.
func (e *ParquetEncryption) KeyFiles() []string {
	var out []string
	add := func(p string) {
		if p != "" {
			out = append(out, e.Abs(p))
		}
	}
	add(e.FooterKey)
	for _, p := range e.ColumnKeys {
		add(p)
	}
	for _, p := range e.KeyIDs {
		add(p)
	}
	return out
}

// Abs resolves a key file path of the parameters against the manifest's
// directory, as KeyFiles lists it.
func (e *ParquetEncryption) Abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(e.dir, p)
}

// RawInputs implements launcher.RawInputs: Parquet inputs with modular
// encryption are read by the engine, not decrypted by the launcher.
func (p *Params) RawInputs() []string {
	var out []string
	for name, t := range p.Tables {
		if t.Encryption != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// SecretFiles implements launcher.SecretFiles: the Parquet key files.
func (p *Params) SecretFiles() []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range p.RawInputs() {
		for _, f := range p.Tables[name].Encryption.KeyFiles() {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Canonical implements job.Parameters.
func (p *Params) Canonical() map[string]any {
	outs := map[string]any{}
	for _, o := range p.Outputs {
		outs[o.Name] = map[string]any{"query": o.Query, "format": string(o.Format)}
	}
	pr := make([]any, len(p.Print))
	for i, q := range p.Print {
		pr[i] = q
	}
	tables := map[string]any{}
	for name, t := range p.Tables {
		tv := map[string]any{"format": string(t.Format), "materialize": t.Materialize}
		if e := t.Encryption; e != nil {
			ck, ki := map[string]any{}, map[string]any{}
			for k, v := range e.ColumnKeys {
				ck[k] = v
			}
			for k, v := range e.KeyIDs {
				ki[k] = v
			}
			tv["parquet_encryption"] = map[string]any{"footer_key": e.FooterKey, "column_keys": ck, "key_ids": ki, "aad_prefix": e.AADPrefix}
		}
		tables[name] = tv
	}
	return map[string]any{"setup": p.Setup, "outputs": outs, "print": pr, "interactive": p.Interactive, "tables": tables}
}

// Spec is the sql engine's job.Spec.
var Spec job.Spec = spec{}

type spec struct{}

func (spec) Name() string { return Name }

func (spec) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required for engine sql (at least query, outputs, print or interactive)")
		return nil
	}
	fs, ok := n.CheckedFields(c, "setup", "query", "outputs", "print", "interactive", "tables")
	if !ok {
		return nil
	}
	p := &Params{Tables: map[string]*Table{}, nodes: map[string]job.Node{"": n}, tableNode: map[string]job.Node{}}
	if sn, ok := fs["setup"]; ok {
		p.Setup = script(sn, c, false)
	}
	if qn, ok := fs["query"]; ok {
		p.shortcut = script(qn, c, true)
		p.nodes["query"] = qn
		if _, both := fs["outputs"]; both {
			c.Failf(qn, "give either query (for a job with one output) or outputs, not both")
		}
	}
	if on, ok := fs["outputs"]; ok {
		p.nodes["outputs"] = on
		es, err := on.Entries()
		if err != nil {
			c.Add(err)
		}
		for _, e := range es {
			ofs, ok := e.Value.CheckedFields(c, "query", "format")
			if !ok {
				continue
			}
			o := Output{Name: e.Name}
			if qn, ok := ofs["query"]; !ok {
				c.Failf(e.Value.Missing("query"), "required: the SQL whose last statement's rows become this output")
			} else {
				o.Query = script(qn, c, true)
			}
			if fn, ok := ofs["format"]; ok {
				o.Format = outputFormat(fn, c)
			}
			p.nodes["outputs."+e.Name] = e.Key
			p.Outputs = append(p.Outputs, o)
		}
		sort.Slice(p.Outputs, func(i, j int) bool { return p.Outputs[i].Name < p.Outputs[j].Name })
	}
	if pn, ok := fs["print"]; ok {
		_, items, err := pn.StrList()
		if err != nil {
			c.Add(err)
		}
		for _, it := range items {
			p.Print = append(p.Print, script(it, c, true))
		}
	}
	if in, ok := fs["interactive"]; ok {
		p.Interactive = boolean(in, c)
	}
	if tn, ok := fs["tables"]; ok {
		es, err := tn.Entries()
		if err != nil {
			c.Add(err)
		}
		for _, e := range es {
			if t := parseTable(e.Value, c); t != nil {
				p.Tables[e.Name] = t
				p.tableNode[e.Name] = e.Key
			}
		}
	}
	if _, ok := fs["query"]; !ok && len(p.Outputs) == 0 && len(p.Print) == 0 && !p.Interactive {
		if _, ok := fs["outputs"]; !ok {
			c.Failf(n, "nothing to run: give query, outputs, print or interactive")
		}
	}
	return p
}

func script(n job.Node, c *job.Checker, required bool) string {
	s, err := n.Str()
	if err != nil {
		c.Add(err)
		return ""
	}
	if len(s) > MaxScript {
		c.Failf(n, "SQL is longer than %d bytes", MaxScript)
		return ""
	}
	stmts, err := Split(s)
	if err != nil {
		c.Failf(n, "%v", err)
		return ""
	}
	if required && len(stmts) == 0 {
		c.Failf(n, "has no SQL statement")
	}
	return s
}

func boolean(n job.Node, c *job.Checker) bool {
	s, err := n.Str()
	if err != nil {
		c.Add(err)
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	c.Failf(n, "must be true or false, found %q", s)
	return false
}

func outputFormat(n job.Node, c *job.Checker) Format {
	s, err := n.Str()
	if err != nil {
		c.Add(err)
		return ""
	}
	f, err := ParseFormat(s)
	if err != nil || f == Text {
		c.Failf(n, "output format %q: want csv, json or parquet", s)
		return ""
	}
	return f
}

func parseTable(n job.Node, c *job.Checker) *Table {
	fs, ok := n.CheckedFields(c, "format", "materialize", "parquet_encryption")
	if !ok {
		return nil
	}
	t := &Table{}
	if fn, ok := fs["format"]; ok {
		s, err := fn.Str()
		if err != nil {
			c.Add(err)
		} else if f, err := ParseFormat(s); err != nil {
			c.Failf(fn, "%v", err)
		} else {
			t.Format = f
		}
	}
	if mn, ok := fs["materialize"]; ok {
		t.Materialize = boolean(mn, c)
	}
	if en, ok := fs["parquet_encryption"]; ok {
		t.Encryption = parseEncryption(en, c)
		if t.Format != "" && t.Format != Parquet {
			c.Failf(fs["format"], "an input with parquet_encryption is Parquet, not %s", t.Format)
		}
		t.Format = Parquet
	}
	return t
}

func parseEncryption(n job.Node, c *job.Checker) *ParquetEncryption {
	fs, ok := n.CheckedFields(c, "footer_key", "column_keys", "key_ids", "aad_prefix")
	if !ok {
		return nil
	}
	e := &ParquetEncryption{}
	path := func(n job.Node) string {
		s, err := n.Str()
		if err != nil {
			c.Add(err)
			return ""
		}
		if s == "" || strings.ContainsRune(s, 0) {
			c.Failf(n, "must name a key file (a ppml envelope holding the key)")
			return ""
		}
		return s
	}
	pathMap := func(n job.Node) map[string]string {
		es, err := n.Entries()
		if err != nil {
			c.Add(err)
			return nil
		}
		m := map[string]string{}
		for _, e := range es {
			m[e.Name] = path(e.Value)
		}
		return m
	}
	if fn, ok := fs["footer_key"]; ok {
		e.FooterKey = path(fn)
	}
	if cn, ok := fs["column_keys"]; ok {
		e.ColumnKeys = pathMap(cn)
	}
	if kn, ok := fs["key_ids"]; ok {
		e.KeyIDs = pathMap(kn)
	}
	if an, ok := fs["aad_prefix"]; ok {
		if s, err := an.Str(); err != nil {
			c.Add(err)
		} else {
			e.AADPrefix = s
		}
	}
	if e.FooterKey == "" && len(e.KeyIDs) == 0 {
		c.Failf(n, "needs footer_key or key_ids (the footer key decrypts the file's metadata)")
	}
	return e
}

// CheckManifest implements job.ManifestChecker: the parameters' outputs
// and tables must match the manifest's, and output formats default from
// the outputs' media types or file names.
func (p *Params) CheckManifest(m *job.Manifest, c *job.Checker) {
	if p.shortcut != "" {
		if len(m.Outputs) != 1 {
			c.Failf(p.nodes["query"], "query: is for a job with exactly one output; this job has %d (use outputs: to name a query per output)", len(m.Outputs))
			return
		}
		p.Outputs = []Output{{Name: m.Outputs[0].Name, Query: p.shortcut}}
		p.shortcut = ""
	}
	have := map[string]bool{}
	for i := range p.Outputs {
		o := &p.Outputs[i]
		mo, ok := m.Output(o.Name)
		if !ok {
			c.Failf(p.nodes["outputs."+o.Name], "names no output of the job (outputs: %s)", outputNames(m))
			continue
		}
		have[o.Name] = true
		if o.Format == "" {
			f, err := formatFor(mo)
			if err != nil {
				c.Failf(p.nodes["outputs."+o.Name], "%v", err)
			}
			o.Format = f
		}
	}
	for _, mo := range m.Outputs {
		if !have[mo.Name] {
			at := p.nodes["outputs"]
			if _, ok := p.nodes["outputs"]; !ok {
				at = p.nodes[""]
			}
			c.Failf(at, "output %s has no query (every output needs one under parameters.outputs)", mo.Name)
		}
	}
	for name, t := range p.Tables {
		in, ok := m.Input(name)
		if !ok {
			c.Failf(p.tableNode[name], "names no input of the job")
			continue
		}
		if t.Encryption != nil {
			t.Encryption.dir = m.Dir
			if in.Key != nil {
				c.Failf(p.tableNode[name], "input %s is Parquet with modular encryption: its keys are named by parquet_encryption, not by the input's key", name)
			}
		}
	}
}

func outputNames(m *job.Manifest) string {
	var ns []string
	for _, o := range m.Outputs {
		ns = append(ns, o.Name)
	}
	if len(ns) == 0 {
		return "none"
	}
	return strings.Join(ns, ", ")
}

// formatFor is an output's format from its media type, then from its file
// name without .ppml.
func formatFor(o job.Output) (Format, error) {
	switch strings.SplitN(o.ContentType, ";", 2)[0] {
	case "text/csv":
		return CSV, nil
	case "application/json", "application/x-ndjson", "application/jsonl":
		return JSON, nil
	case "application/vnd.apache.parquet", "application/x-parquet":
		return Parquet, nil
	}
	switch ext := filepath.Ext(strings.TrimSuffix(o.Path, ".ppml")); ext {
	case ".csv":
		return CSV, nil
	case ".json", ".jsonl", ".ndjson":
		return JSON, nil
	case ".parquet":
		return Parquet, nil
	}
	return "", fmt.Errorf("cannot tell the format of output %s: give format: csv, json or parquet, or a content_type", o.Name)
}
