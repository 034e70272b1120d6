package job

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a manifest: where it is and what is wrong.
type Problem struct {
	Line    int    `json:"line,omitempty"` // 1-based; 0 when the problem has no single place
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is returned for an invalid manifest; it lists every problem found.
type Error struct {
	Source   string // file name, or "" for bytes
	Problems []*Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid job manifest")
	if e.Source != "" {
		b.WriteString(" ")
		b.WriteString(e.Source)
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Checker collects problems while a manifest is walked, so that one run
// reports everything that is wrong rather than only the first thing.
type Checker struct{ problems []*Problem }

// Add records err, which is normally a *Problem from a Node method.
func (c *Checker) Add(err error) {
	if err == nil {
		return
	}
	if p, ok := err.(*Problem); ok {
		c.problems = append(c.problems, p)
		return
	}
	c.problems = append(c.problems, &Problem{Message: err.Error()})
}

// Failf records a problem at n.
func (c *Checker) Failf(n Node, format string, args ...any) {
	c.problems = append(c.problems, n.Errorf(format, args...))
}

// OK reports whether no problem has been recorded.
func (c *Checker) OK() bool { return len(c.problems) == 0 }

func (c *Checker) err(source string) error {
	if len(c.problems) == 0 {
		return nil
	}
	ps := append([]*Problem(nil), c.problems...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return &Error{Source: source, Problems: ps}
}

// Node is a value in a manifest together with its field path ("outputs.result.key")
// so that every error can say where it is. Engines use it to read their
// parameters with the same strictness as the rest of the manifest.
type Node struct {
	y    *yaml.Node
	Path string
}

// Line is the 1-based source line of the value.
func (n Node) Line() int {
	if n.y == nil {
		return 0
	}
	return n.y.Line
}

// Errorf builds a problem located at n.
func (n Node) Errorf(format string, args ...any) *Problem {
	return &Problem{Line: n.Line(), Field: n.Path, Message: fmt.Sprintf(format, args...)}
}

func (n Node) child(y *yaml.Node, name string) Node {
	if n.Path == "" {
		return Node{y: y, Path: name}
	}
	return Node{y: y, Path: n.Path + "." + name}
}

// Missing returns a node for an absent child field, located at n.
func (n Node) Missing(name string) Node { return n.child(n.y, name) }

func (n Node) index(y *yaml.Node, i int) Node {
	return Node{y: y, Path: n.Path + "[" + strconv.Itoa(i) + "]"}
}

func kindName(y *yaml.Node) string {
	switch y.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if y.ShortTag() == "!!null" {
			return "null"
		}
		return "a scalar"
	default:
		return "an unsupported YAML node"
	}
}

// IsMapping reports whether the value is a YAML mapping.
func (n Node) IsMapping() bool { return n.y != nil && n.y.Kind == yaml.MappingNode }

// IsScalar reports whether the value is a non-null scalar.
func (n Node) IsScalar() bool {
	return n.y != nil && n.y.Kind == yaml.ScalarNode && n.y.ShortTag() != "!!null"
}

// Entry is one key of a mapping whose keys are user-chosen names.
type Entry struct {
	Key   Node // the key itself; Key.Str() is the name
	Value Node
	Name  string
}

// Entries returns the keys and values of a mapping in source order. Keys must
// be strings and unique.
func (n Node) Entries() ([]Entry, error) {
	if n.y == nil || n.y.Kind != yaml.MappingNode {
		return nil, n.Errorf("must be a mapping, found %s", kindNameOrMissing(n.y))
	}
	seen := map[string]int{}
	var out []Entry
	for i := 0; i+1 < len(n.y.Content); i += 2 {
		k, v := n.y.Content[i], n.y.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			return nil, (Node{y: k, Path: n.Path}).Errorf("mapping keys must be plain strings")
		}
		name := k.Value
		if !utf8.ValidString(name) {
			return nil, (Node{y: k, Path: n.Path}).Errorf("key is not valid UTF-8")
		}
		if line, dup := seen[name]; dup {
			return nil, n.child(k, name).Errorf("duplicate key (first defined on line %d)", line)
		}
		seen[name] = k.Line
		out = append(out, Entry{Key: n.child(k, name), Value: n.child(v, name), Name: name})
	}
	return out, nil
}

// CheckedFields is Fields that records every unknown key in c and still
// returns the known ones, so that one run reports all problems. ok is false
// when n is not a mapping or has duplicate keys (also recorded in c).
func (n Node) CheckedFields(c *Checker, known ...string) (fields map[string]Node, ok bool) {
	es, err := n.Entries()
	if err != nil {
		c.Add(err)
		return nil, false
	}
	out := make(map[string]Node, len(es))
	for _, e := range es {
		if !contains(known, e.Name) {
			c.Failf(e.Key, "unknown field (known fields here: %s)", strings.Join(known, ", "))
			continue
		}
		out[e.Name] = e.Value
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Fields reads a mapping with a fixed set of known keys. Unknown and
// duplicate keys are errors; keys that are absent are absent from the result.
func (n Node) Fields(known ...string) (map[string]Node, error) {
	es, err := n.Entries()
	if err != nil {
		return nil, err
	}
	out := make(map[string]Node, len(es))
	for _, e := range es {
		if !contains(known, e.Name) {
			return nil, e.Key.Errorf("unknown field (known fields here: %s)", strings.Join(known, ", "))
		}
		out[e.Name] = e.Value
	}
	return out, nil
}

func kindNameOrMissing(y *yaml.Node) string {
	if y == nil {
		return "nothing"
	}
	return kindName(y)
}

// Str returns a scalar's text. Numbers and booleans are read as the text that
// was written ("10", "1.0", "true"), which is what a command line wants; null,
// binary and application-specific tags are errors. The text must be valid
// UTF-8 without NUL bytes.
func (n Node) Str() (string, error) {
	if n.y == nil || n.y.Kind != yaml.ScalarNode {
		return "", n.Errorf("must be a string, found %s", kindNameOrMissing(n.y))
	}
	switch n.y.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
	case "!!null":
		return "", n.Errorf("must be a string, found null")
	default:
		return "", n.Errorf("unsupported YAML tag %q", n.y.Tag)
	}
	s := n.y.Value
	if !utf8.ValidString(s) {
		return "", n.Errorf("is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", n.Errorf("contains a NUL byte")
	}
	return s, nil
}

// StrList returns a list of strings.
func (n Node) StrList() ([]string, []Node, error) {
	if n.y == nil || n.y.Kind != yaml.SequenceNode {
		return nil, nil, n.Errorf("must be a list, found %s", kindNameOrMissing(n.y))
	}
	out := make([]string, 0, len(n.y.Content))
	nodes := make([]Node, 0, len(n.y.Content))
	for i, y := range n.y.Content {
		e := n.index(y, i)
		s, err := e.Str()
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
		nodes = append(nodes, e)
	}
	return out, nodes, nil
}

// Items returns the elements of a list.
func (n Node) Items() ([]Node, error) {
	if n.y == nil || n.y.Kind != yaml.SequenceNode {
		return nil, n.Errorf("must be a list, found %s", kindNameOrMissing(n.y))
	}
	out := make([]Node, len(n.y.Content))
	for i, y := range n.y.Content {
		out[i] = n.index(y, i)
	}
	return out, nil
}

// Int returns a decimal integer scalar.
func (n Node) Int() (int64, error) {
	if n.y == nil || n.y.Kind != yaml.ScalarNode || n.y.ShortTag() == "!!null" {
		return 0, n.Errorf("must be an integer, found %s", kindNameOrMissing(n.y))
	}
	v, err := strconv.ParseInt(strings.TrimPrefix(n.y.Value, "+"), 10, 64)
	if err != nil {
		return 0, n.Errorf("must be a decimal integer, found %q", truncate(n.y.Value))
	}
	return v, nil
}

// truncate keeps error messages short when a value is huge.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// checkPlain rejects YAML features that have no place in a manifest: anchors
// and aliases (they make one edit change several fields and, nested, blow up
// in size), merge keys and non-standard tags.
func checkPlain(y *yaml.Node, c *Checker, depth int) {
	if y == nil {
		return
	}
	if depth > 64 {
		c.Add(&Problem{Line: y.Line, Message: "nesting is too deep"})
		return
	}
	if y.Kind == yaml.AliasNode {
		c.Add(&Problem{Line: y.Line, Message: "YAML aliases (*name) are not allowed in job manifests"})
		return
	}
	if y.Anchor != "" {
		c.Add(&Problem{Line: y.Line, Message: "YAML anchors (&name) are not allowed in job manifests"})
	}
	if y.Tag != "" && !strings.HasPrefix(y.ShortTag(), "!!") {
		c.Add(&Problem{Line: y.Line, Message: fmt.Sprintf("unsupported YAML tag %q", y.Tag)})
	}
	if y.Kind == yaml.ScalarNode && y.ShortTag() == "!!merge" {
		c.Add(&Problem{Line: y.Line, Message: "YAML merge keys (<<) are not allowed in job manifests"})
	}
	for _, ch := range y.Content {
		checkPlain(ch, c, depth+1)
	}
}
