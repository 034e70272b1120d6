// Package execspec reads the exec engine's manifest parameters: the
// program's argv, its environment, its working directory and the files it
// pins by SHA-256 (docs/jobs.md, "engine: exec"). It is the pure-Go half of
// the exec engine (engine/exec runs the program): the key service uses it to
// compute job digests without linking the runtime.
package execspec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ppml/ppml/job"
)

// Name is the manifest's engine value.
const Name = "exec"

// PATH is where a bare program name in an exec command is looked up: a
// fixed list, never the caller's PATH, so that what runs does not depend on
// who starts it.
var PATH = []string{"/usr/local/bin", "/usr/bin", "/bin"}

// LookProgram finds an exec program: an absolute path as it is, a bare name
// in PATH. It must be an executable regular file.
func LookProgram(prog string) (string, error) {
	if filepath.IsAbs(prog) {
		fi, err := os.Stat(prog)
		if err != nil {
			return "", fmt.Errorf("program %s: %w", prog, unwrapPathErr(err))
		}
		if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("program %s is not an executable file", prog)
		}
		return prog, nil
	}
	for _, d := range PATH {
		p := filepath.Join(d, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q not found in %s", prog, strings.Join(PATH, ":"))
}

// CheckFiles implements job.FileChecker: the program exists and every pinned
// file has its pinned content.
func (p *Params) CheckFiles(c *job.Checker) {
	if _, err := LookProgram(p.Command[0]); err != nil {
		c.Add(&job.Problem{Field: "parameters.command[0]", Message: err.Error()})
	}
	for i, f := range p.Files {
		field := fmt.Sprintf("parameters.files[%d]", i)
		got, err := fileSHA256(f.Path)
		if err != nil {
			c.Add(&job.Problem{Field: field, Message: fmt.Sprintf("pinned file %s: %v", f.Path, unwrapPathErr(err))})
			continue
		}
		if got != f.SHA256 {
			c.Add(&job.Problem{Field: field, Message: fmt.Sprintf("pinned file %s has SHA-256 %x, the job pins %x", f.Path, got, f.SHA256)})
		}
	}
}

func fileSHA256(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Limits that keep a manifest's exec parameters within what execve accepts.
const (
	maxArgs     = 4096
	maxArgBytes = 128 << 10
)

// Params are the parameters of the exec engine.
type Params struct {
	// Command is the argv of the program; Command[0] is an absolute path or
	// a program name looked up in the launcher's fixed PATH.
	Command []string
	// Env lists the variables the program gets besides PPML_INPUT_* and
	// PPML_OUTPUT_*, sorted by name.
	Env []EnvVar
	// Workdir is the program's working directory; "" means a fresh private
	// directory in memory.
	Workdir string
	// Files are files the program reads (scripts, models) pinned by
	// SHA-256, sorted by path. The launcher refuses to run when one differs,
	// and the Gramine manifest lists them as trusted files with these hashes.
	Files []PinnedFile
}

// EnvVar is one environment variable given to the program: a fixed value,
// or (Passthrough) the launcher's own value of that variable.
type EnvVar struct {
	Name        string
	Value       string
	Passthrough bool
}

// PinnedFile is a file whose content is part of the job identity.
type PinnedFile struct {
	Path   string // absolute, cleaned
	SHA256 [32]byte
}

// Programs returns the program the engine runs, for packaging (Gramine
// trusted files).
func (p *Params) Programs() []string { return []string{p.Command[0]} }

// Pinned returns the pinned files.
func (p *Params) Pinned() []PinnedFile { return p.Files }

// Canonical implements job.Parameters.
func (p *Params) Canonical() map[string]any {
	cmd := make([]any, len(p.Command))
	for i, a := range p.Command {
		cmd[i] = a
	}
	env := map[string]any{}
	for _, v := range p.Env {
		if v.Passthrough {
			env[v.Name] = map[string]any{"passthrough": true}
		} else {
			env[v.Name] = map[string]any{"value": v.Value}
		}
	}
	files := make([]any, len(p.Files))
	for i, f := range p.Files {
		files[i] = map[string]any{"path": f.Path, "sha256": hex.EncodeToString(f.SHA256[:])}
	}
	return map[string]any{"command": cmd, "env": env, "workdir": p.Workdir, "files": files}
}

// Spec is the exec engine's job.Spec.
var Spec job.Spec = spec{}

type spec struct{}

func (spec) Name() string { return Name }

func (spec) ParseParameters(n job.Node, present bool, c *job.Checker) job.Parameters {
	if !present {
		c.Failf(n, "required for engine exec (at least command)")
		return nil
	}
	fs, ok := n.CheckedFields(c, "command", "env", "workdir", "files")
	if !ok {
		return nil
	}
	p := &Params{}
	if cn, ok := fs["command"]; !ok {
		c.Failf(n.Missing("command"), "required: the program and its arguments, e.g. [python3, -c, \"print(1)\"]")
	} else if args, nodes, err := cn.StrList(); err != nil {
		c.Add(err)
	} else if len(args) == 0 {
		c.Failf(cn, "must not be empty")
	} else if len(args) > maxArgs {
		c.Failf(cn, "has %d arguments, at most %d are allowed", len(args), maxArgs)
	} else {
		for i, a := range args {
			if len(a) > maxArgBytes {
				c.Failf(nodes[i], "argument is longer than %d bytes", maxArgBytes)
			}
		}
		prog := args[0]
		switch {
		case prog == "":
			c.Failf(nodes[0], "program must not be empty")
		case strings.ContainsRune(prog, '/') && !filepath.IsAbs(prog):
			c.Failf(nodes[0], "program %q must be an absolute path or a name without '/' (looked up in PATH)", truncate(prog))
		case filepath.IsAbs(prog) && filepath.Clean(prog) != prog:
			c.Failf(nodes[0], "program path %q is not clean (write %q)", truncate(prog), filepath.Clean(prog))
		}
		p.Command = args
	}
	if en, ok := fs["env"]; ok {
		p.Env = parseEnv(en, c)
	}
	if wn, ok := fs["workdir"]; ok {
		if w, err := wn.Str(); err != nil {
			c.Add(err)
		} else if !filepath.IsAbs(w) {
			c.Failf(wn, "must be an absolute path (leave it out for a private in-memory directory)")
		} else {
			p.Workdir = filepath.Clean(w)
		}
	}
	if fn, ok := fs["files"]; ok {
		p.Files = parseFiles(fn, c)
	}
	return p
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func parseEnv(n job.Node, c *job.Checker) []EnvVar {
	items, vals, err := n.StrList()
	if err != nil {
		c.Add(err)
		return nil
	}
	seen := map[string]bool{}
	var out []EnvVar
	for i, it := range items {
		v := EnvVar{Name: it, Passthrough: true}
		if eq := strings.IndexByte(it, '='); eq >= 0 {
			v = EnvVar{Name: it[:eq], Value: it[eq+1:]}
		}
		switch {
		case !validEnvName(v.Name):
			c.Failf(vals[i], "%q is not a valid variable name (letters, digits, '_'; NAME to pass the launcher's value, NAME=VALUE to set one)", truncate(v.Name))
			continue
		case strings.HasPrefix(strings.ToUpper(v.Name), "PPML_"):
			c.Failf(vals[i], "%s: the PPML_ prefix is reserved for the launcher", v.Name)
			continue
		case v.Passthrough && strings.HasPrefix(strings.ToUpper(v.Name), "LD_"):
			c.Failf(vals[i], "%s: dynamic-loader variables cannot be passed through from the launcher; set a fixed value with %s=VALUE", v.Name, v.Name)
			continue
		case seen[v.Name]:
			c.Failf(vals[i], "%s is listed twice", v.Name)
			continue
		}
		seen[v.Name] = true
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func parseFiles(n job.Node, c *job.Checker) []PinnedFile {
	items, err := n.Items()
	if err != nil {
		c.Add(err)
		return nil
	}
	seen := map[string]bool{}
	var out []PinnedFile
	for _, it := range items {
		fs, err := it.Fields("path", "sha256")
		if err != nil {
			c.Add(err)
			continue
		}
		var f PinnedFile
		pn, okP := fs["path"]
		hn, okH := fs["sha256"]
		if !okP || !okH {
			c.Failf(it, "needs both path and sha256")
			continue
		}
		p, err := pn.Str()
		if err != nil {
			c.Add(err)
			continue
		}
		if !filepath.IsAbs(p) {
			c.Failf(pn, "must be an absolute path")
			continue
		}
		f.Path = filepath.Clean(p)
		if seen[f.Path] {
			c.Failf(pn, "%s is listed twice", f.Path)
			continue
		}
		seen[f.Path] = true
		h, err := hn.Str()
		if err != nil {
			c.Add(err)
			continue
		}
		raw, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(h), "sha256:"))
		if err != nil || len(raw) != 32 {
			c.Failf(hn, "must be 64 hex digits (the output of sha256sum)")
			continue
		}
		copy(f.SHA256[:], raw)
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
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

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
