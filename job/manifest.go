package job

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// FormatVersion is the manifest format this package reads.
const FormatVersion = 1

// Defaults made explicit in the canonical form.
const (
	DefaultMemory      = 1 << 30 // 1 GiB
	DefaultThreads     = 4
	DefaultContentType = "application/octet-stream"
	MaxThreads         = 1024
	// MaxManifestSize bounds the bytes Parse accepts.
	MaxManifestSize = 1 << 20
	maxNameLen      = 64
)

// Manifest is a parsed and validated job manifest.
type Manifest struct {
	Version    int
	Name       string
	Engine     string
	Inputs     []Input  // sorted by name
	Outputs    []Output // sorted by name
	Parameters Parameters
	Resources  Resources
	// Dir is the absolute directory relative paths were resolved against:
	// the directory of the manifest file.
	Dir string
}

// Input is an encrypted file or directory the job reads.
type Input struct {
	Name string
	// Path is absolute and cleaned. It is not part of the job identity.
	Path string
	// Key, when set, pins the key the input must be encrypted under;
	// otherwise the key named in the file's header is used (and its policy
	// decides whether this job may have it).
	Key  *KeyRef
	Line int
}

// Output is a file the job writes, encrypted under Key.
type Output struct {
	Name        string
	Path        string // absolute and cleaned; not part of the job identity
	Key         KeyRef
	ContentType string // canonical media type
	Line        int
}

// Resources bound what the job may use.
type Resources struct {
	Memory  int64 // bytes
	Threads int
}

// InputEnv is the environment variable that carries input name's in-memory path.
func InputEnv(name string) string { return "PPML_INPUT_" + strings.ToUpper(name) }

// OutputEnv is the environment variable that carries output name's in-memory path.
func OutputEnv(name string) string { return "PPML_OUTPUT_" + strings.ToUpper(name) }

// Input returns the named input.
func (m *Manifest) Input(name string) (Input, bool) {
	for _, in := range m.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}

// Output returns the named output.
func (m *Manifest) Output(name string) (Output, bool) {
	for _, o := range m.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return Output{}, false
}

// Load reads and validates the manifest at path with the engines of specs.
// Relative paths in it are relative to its directory.
func Load(path string, specs Specs) (*Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("job manifest %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("job manifest %s: %w", path, err)
	}
	m, err := Parse(data, filepath.Dir(abs), specs)
	var je *Error
	if errors.As(err, &je) {
		je.Source = path
	}
	return m, err
}

// Parse validates a manifest; its engine must be one of specs. dir must be
// absolute: relative paths in the manifest are resolved against it. Parse
// touches no file; CheckFiles checks that inputs exist.
func Parse(data []byte, dir string, specs Specs) (*Manifest, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("job: base directory %q is not absolute", dir)
	}
	c := &Checker{}
	if len(data) > MaxManifestSize {
		c.Add(&Problem{Message: fmt.Sprintf("manifest is larger than %d bytes", MaxManifestSize)})
		return nil, c.err("")
	}
	root, err := decodeYAML(data)
	if err != nil {
		c.Add(err)
		return nil, c.err("")
	}
	checkPlain(root, c, 0)
	if !c.OK() {
		return nil, c.err("")
	}
	m := &Manifest{Version: FormatVersion, Dir: filepath.Clean(dir), Resources: Resources{Memory: DefaultMemory, Threads: DefaultThreads}}
	top := Node{y: root}
	fs, ok := top.CheckedFields(c, "version", "name", "engine", "inputs", "outputs", "parameters", "resources")
	if !ok {
		return nil, c.err("")
	}

	if n, ok := fs["version"]; ok {
		if v, err := n.Int(); err != nil {
			c.Add(err)
		} else if v != FormatVersion {
			c.Failf(n, "unsupported manifest version %d (this ppml reads version %d)", v, FormatVersion)
		}
	}

	if n, ok := fs["name"]; !ok {
		c.Failf(top.Missing("name"), "required")
	} else if s, err := n.Str(); err != nil {
		c.Add(err)
	} else if !validJobName(s) {
		c.Failf(n, "%q is not a valid job name (1-128 letters, digits, '.', '_', '-', starting with a letter or digit)", truncate(s))
	} else {
		m.Name = s
	}

	var engine Spec
	if n, ok := fs["engine"]; !ok {
		c.Failf(top.Missing("engine"), "required (known engines: %s)", strings.Join(specs.Names(), ", "))
	} else if s, err := n.Str(); err != nil {
		c.Add(err)
	} else if e, err := specs.Spec(s); err != nil {
		c.Failf(n, "%v", err)
	} else {
		engine, m.Engine = e, s
		if d, ok := e.(ThreadsDefaulter); ok {
			if t := d.DefaultThreads(); t >= 1 && t <= MaxThreads { // CheckSpec
				m.Resources.Threads = t
			}
		}
	}

	if n, ok := fs["inputs"]; ok {
		m.Inputs = parseInputs(n, m.Dir, c)
	}
	if n, ok := fs["outputs"]; ok {
		m.Outputs = parseOutputs(n, m.Dir, c)
	}
	if engine != nil {
		n, ok := fs["parameters"]
		if !ok {
			n = top.Missing("parameters")
		}
		m.Parameters = engine.ParseParameters(n, ok, c)
	}
	if n, ok := fs["resources"]; ok {
		parseResources(n, &m.Resources, c)
	}
	checkPaths(m, c)
	if mc, ok := m.Parameters.(ManifestChecker); ok && c.OK() {
		mc.CheckManifest(m, c)
	}
	if err := c.err(""); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeYAML(data []byte) (root *yaml.Node, err error) {
	// yaml.v3 is third-party code on untrusted bytes: a panic in it must
	// become an error, not a crash of the launcher.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &Problem{Message: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{Message: "manifest is empty"}
		}
		return nil, &Problem{Message: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, &Problem{Message: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		return nil, &Problem{Line: line, Message: "manifest has more than one YAML document"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Problem{Message: "manifest is empty"}
	}
	r := doc.Content[0]
	if r.Kind != yaml.MappingNode {
		return nil, &Problem{Line: r.Line, Message: fmt.Sprintf("manifest must be a mapping of fields, found %s", kindName(r))}
	}
	return r, nil
}

func validJobName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return false
		}
	}
	return true
}

// validIOName: a name becomes the suffix of PPML_INPUT_<NAME>, so it may hold
// only what an environment variable name may hold.
func validIOName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func checkIOName(e Entry, section string, seenUpper map[string]string, c *Checker) bool {
	if !validIOName(e.Name) {
		c.Failf(e.Key, "%q is not a valid %s name: 1-%d letters, digits or '_' (it becomes part of an environment variable name)", truncate(e.Name), strings.TrimSuffix(section, "s"), maxNameLen)
		return false
	}
	up := strings.ToUpper(e.Name)
	if other, dup := seenUpper[up]; dup {
		env := InputEnv(e.Name)
		if section == "outputs" {
			env = OutputEnv(e.Name)
		}
		c.Failf(e.Key, "collides with %s.%s: both become %s", section, other, env)
		return false
	}
	seenUpper[up] = e.Name
	return true
}

func resolvePath(n Node, dir string, c *Checker) (string, bool) {
	s, err := n.Str()
	if err != nil {
		c.Add(err)
		return "", false
	}
	if s == "" {
		c.Failf(n, "must not be empty")
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(dir, s)
	}
	return filepath.Clean(s), true
}

func parseInputs(n Node, dir string, c *Checker) []Input {
	es, err := n.Entries()
	if err != nil {
		c.Add(err)
		return nil
	}
	seen := map[string]string{}
	var out []Input
	for _, e := range es {
		if !checkIOName(e, "inputs", seen, c) {
			continue
		}
		in := Input{Name: e.Name, Line: e.Key.Line()}
		pathNode, ok := e.Value, true
		if e.Value.IsMapping() {
			fs, ok := e.Value.CheckedFields(c, "path", "key")
			if !ok {
				continue
			}
			if pathNode, ok = fs["path"]; !ok {
				c.Failf(e.Value.Missing("path"), "required")
				continue
			}
			if kn, ok := fs["key"]; ok {
				s, err := kn.Str()
				if err != nil {
					c.Add(err)
					continue
				}
				k, err := ParseKeyRef(s, dir)
				if err != nil {
					c.Failf(kn, "%v", err)
					continue
				}
				in.Key = &k
			}
		} else if !e.Value.IsScalar() {
			c.Failf(e.Value, "must be a path or a mapping with path and key, found %s", kindNameOrMissing(e.Value.y))
			continue
		}
		p, ok := resolvePath(pathNode, dir, c)
		if !ok {
			continue
		}
		in.Path = p
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func parseOutputs(n Node, dir string, c *Checker) []Output {
	es, err := n.Entries()
	if err != nil {
		c.Add(err)
		return nil
	}
	seen := map[string]string{}
	var out []Output
	for _, e := range es {
		if !checkIOName(e, "outputs", seen, c) {
			continue
		}
		o := Output{Name: e.Name, Line: e.Key.Line(), ContentType: DefaultContentType}
		fs, ok := e.Value.CheckedFields(c, "path", "key", "content_type")
		if !ok {
			continue
		}
		good := true
		if pn, ok := fs["path"]; !ok {
			c.Failf(e.Value.Missing("path"), "required")
			good = false
		} else if p, ok := resolvePath(pn, dir, c); !ok {
			good = false
		} else {
			o.Path = p
		}
		if kn, ok := fs["key"]; !ok {
			c.Failf(e.Value.Missing("key"), "required: the key the output is encrypted under (kms://HOST[:PORT]/KEY[@VERSION] or file:PATH)")
			good = false
		} else if s, err := kn.Str(); err != nil {
			c.Add(err)
			good = false
		} else if k, err := ParseKeyRef(s, dir); err != nil {
			c.Failf(kn, "%v", err)
			good = false
		} else {
			o.Key = k
		}
		if tn, ok := fs["content_type"]; ok {
			if s, err := tn.Str(); err != nil {
				c.Add(err)
				good = false
			} else if ct, err := canonicalMediaType(s); err != nil {
				c.Failf(tn, "%v", err)
				good = false
			} else {
				o.ContentType = ct
			}
		}
		if good {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func canonicalMediaType(s string) (string, error) {
	mt, params, err := mime.ParseMediaType(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a media type such as text/csv: %v", truncate(s), err)
	}
	if !strings.Contains(mt, "/") {
		return "", fmt.Errorf("%q is not a media type such as text/csv (type/subtype)", truncate(s))
	}
	ct := mime.FormatMediaType(mt, params)
	if ct == "" {
		return "", fmt.Errorf("%q cannot be written back as a media type", truncate(s))
	}
	return ct, nil
}

func parseResources(n Node, r *Resources, c *Checker) {
	fs, ok := n.CheckedFields(c, "memory", "threads")
	if !ok {
		return
	}
	if mn, ok := fs["memory"]; ok {
		if s, err := mn.Str(); err != nil {
			c.Add(err)
		} else if v, err := ParseSize(s); err != nil {
			c.Failf(mn, "%v", err)
		} else if v < MinMemory || v > MaxMemory {
			c.Failf(mn, "%s is outside %s to %s", FormatSize(v), FormatSize(MinMemory), FormatSize(MaxMemory))
		} else {
			r.Memory = v
		}
	}
	if tn, ok := fs["threads"]; ok {
		if v, err := tn.Int(); err != nil {
			c.Add(err)
		} else if v < 1 || v > MaxThreads {
			c.Failf(tn, "must be between 1 and %d, found %d", MaxThreads, v)
		} else {
			r.Threads = int(v)
		}
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	if dir == "/" {
		return true
	}
	return strings.HasPrefix(p, dir+"/")
}

// checkPaths finds outputs that would overwrite each other or an input.
func checkPaths(m *Manifest, c *Checker) {
	byPath := map[string]string{}
	for _, o := range m.Outputs {
		at := Node{y: &yaml.Node{Line: o.Line}, Path: "outputs." + o.Name + ".path"}
		if o.Path == "/" {
			c.Failf(at, "must name a file, not /")
			continue
		}
		if other, dup := byPath[o.Path]; dup {
			c.Failf(at, "same file as outputs.%s.path (%s)", other, o.Path)
			continue
		}
		byPath[o.Path] = o.Name
		for _, in := range m.Inputs {
			switch {
			case o.Path == in.Path:
				c.Failf(at, "same file as inputs.%s (%s): an output must not overwrite an input", in.Name, o.Path)
			case within(o.Path, in.Path):
				c.Failf(at, "%s is inside inputs.%s (%s)", o.Path, in.Name, in.Path)
			case within(in.Path, o.Path):
				c.Failf(at, "inputs.%s (%s) is inside this output path", in.Name, in.Path)
			}
		}
	}
	for _, a := range m.Outputs {
		for _, b := range m.Outputs {
			if a.Name < b.Name && a.Path != b.Path && (within(a.Path, b.Path) || within(b.Path, a.Path)) {
				c.Failf(Node{y: &yaml.Node{Line: b.Line}, Path: "outputs." + b.Name + ".path"}, "%s and outputs.%s.path (%s) nest inside each other", b.Path, a.Name, a.Path)
			}
		}
	}
}
