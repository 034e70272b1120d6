package sqlspec

import (
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// AdHoc describes the job `ppml sql --input ... [--query ...]` builds: its
// inputs as tables, and either one query whose result is printed or, with
// no query, an interactive session.
type AdHoc struct {
	Inputs  []NamedPath // table name = input name
	Query   string      // "" for an interactive session
	Memory  string      // e.g. "1GiB"; "" keeps the manifest default
	Threads int         // 0 keeps the manifest default
	Formats map[string]string
}

// NamedPath is NAME=PATH.
type NamedPath struct{ Name, Path string }

// ParseNamedPath reads NAME=PATH.
func ParseNamedPath(s string) (NamedPath, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" {
		return NamedPath{}, fmt.Errorf("%q: want NAME=FILE (e.g. people=people.json.ppml)", s)
	}
	return NamedPath{Name: name, Path: path}, nil
}

// Manifest renders the job manifest. Its digest is what a key policy must
// allow: the printed query is part of it, and an interactive job (any SQL)
// has its own digest.
func (a *AdHoc) Manifest() ([]byte, error) {
	type res struct {
		Memory  string `yaml:"memory,omitempty"`
		Threads int    `yaml:"threads,omitempty"`
	}
	type table struct {
		Format string `yaml:"format,omitempty"`
	}
	type params struct {
		Print       []string         `yaml:"print,omitempty"`
		Interactive bool             `yaml:"interactive,omitempty"`
		Tables      map[string]table `yaml:"tables,omitempty"`
	}
	type manifest struct {
		Name       string            `yaml:"name"`
		Engine     string            `yaml:"engine"`
		Inputs     map[string]string `yaml:"inputs,omitempty"`
		Parameters params            `yaml:"parameters"`
		Resources  *res              `yaml:"resources,omitempty"`
	}
	m := manifest{Name: "sql-query", Engine: Name, Inputs: map[string]string{}}
	for _, in := range a.Inputs {
		if _, dup := m.Inputs[in.Name]; dup {
			return nil, fmt.Errorf("input %s is given twice", in.Name)
		}
		abs, err := filepath.Abs(in.Path)
		if err != nil {
			return nil, err
		}
		m.Inputs[in.Name] = abs
	}
	if a.Query != "" {
		m.Parameters.Print = []string{a.Query}
	} else {
		m.Name = "sql-interactive"
		m.Parameters.Interactive = true
	}
	for name, f := range a.Formats {
		if m.Parameters.Tables == nil {
			m.Parameters.Tables = map[string]table{}
		}
		m.Parameters.Tables[name] = table{Format: f}
	}
	if a.Memory != "" || a.Threads != 0 {
		m.Resources = &res{Memory: a.Memory, Threads: a.Threads}
	}
	return yaml.Marshal(m)
}
