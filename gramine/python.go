package gramine

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/gramine/elfdeps"
)

// # Python programs
//
// A Python job loads far more than its interpreter binary: the modules of
// the standard library and of installed packages it imports, the ones those
// import, and what the interpreter loads at start-up. Trusting the whole
// standard library and dist-packages would measure thousands of files (slow
// starts; any apt upgrade changes MRENCLAVE). So the generator asks the
// job's own interpreter: pyimports.py, run with -I (no environment, no user
// site, no script directory) so that nothing of the job runs on the host,
// snapshots the modules the interpreter imported at start-up and follows
// the job's imports transitively by parsing, never executing, each module
// on the interpreter's sys.path (plus the job's PYTHONPATH and script
// directory). The standard library is then trusted module by module (with
// each module's cached bytecode, which the interpreter reads first); an
// installed package, whole, as a directory (packages read their own data
// files and import their own modules dynamically); the job's own modules,
// file by file. What it cannot see — imports with computed names
// (importlib.import_module, __import__, codecs looked up by name), imports
// made by C extensions, lazy imports inside library functions — the owner
// adds with --trusted or parameters.files (docs/sgx.md).

//go:embed pyimports.py
var pyImports string

// pythonJob is what the generator knows of an exec job's Python command.
type pythonJob struct {
	args       []string // the command's arguments (argv without argv[0])
	pythonPath string   // PYTHONPATH the job sets ("" if none)
}

func (p *pythonJob) argv() []string {
	if p == nil {
		return nil
	}
	return p.args
}

// fixedEnv is the value the job sets for name ("" if none or passthrough).
func fixedEnv(env []execspec.EnvVar, name string) string {
	for _, v := range env {
		if v.Name == name && !v.Passthrough {
			return v.Value
		}
	}
	return ""
}

// pythonRequest is pyimports.py's argument.
type pythonRequest struct {
	Path    []string `json:"path"`
	Code    []string `json:"code"`
	Scripts []string `json:"scripts"`
	Modules []string `json:"modules"`
}

// pythonScan is pyimports.py's answer.
type pythonScan struct {
	Startup    map[string]string `json:"startup"`
	Modules    map[string]string `json:"modules"`
	Unresolved []string          `json:"unresolved"`
	Stdlib     []string          `json:"stdlib"`
	SiteDirs   []string          `json:"sitedirs"`
	PthFiles   []string          `json:"pth"`
	CacheTag   string            `json:"cache_tag"`
}

// parsePythonArgs reads the interpreter's command line as CPython does:
// options, then -c CODE, -m MODULE, a script, or nothing (- or standard
// input: no code to follow). It also reports -S (no site: a different
// start-up) and -E/-I (PYTHONPATH ignored).
func parsePythonArgs(args []string) (req pythonRequest, noSite, ignoreEnv bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) && args[i+1] != "-" {
				req.Scripts = append(req.Scripts, args[i+1])
			}
			return
		}
		if len(a) < 2 || a[0] != '-' || strings.HasPrefix(a, "--") {
			if a != "-" && !strings.HasPrefix(a, "--") {
				req.Scripts = append(req.Scripts, a)
			}
			if !strings.HasPrefix(a, "--") {
				return
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			switch c := a[j]; c {
			case 'S':
				noSite = true
			case 'E', 'I':
				ignoreEnv = true
			case 'c', 'm', 'W', 'X':
				val := a[j+1:]
				if val == "" && i+1 < len(args) {
					i++
					val = args[i]
				}
				switch c {
				case 'c':
					req.Code = append(req.Code, val)
					return
				case 'm':
					req.Modules = append(req.Modules, val)
					return
				}
				j = len(a)
			}
		}
	}
	return
}

// scanPython runs pyimports.py with interp for the command args.
func scanPython(interp string, args []string, pythonPath string) (*pythonScan, error) {
	req, noSite, ignoreEnv := parsePythonArgs(args)
	if pythonPath != "" && !ignoreEnv {
		for _, d := range strings.Split(pythonPath, ":") {
			if d != "" {
				req.Path = append(req.Path, d)
			}
		}
	}
	reqJSON, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	flags := []string{"-I"}
	if noSite {
		flags = append(flags, "-S")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interp, append(flags, "-c", pyImports, string(reqJSON))...)
	cmd.Env = []string{"PATH=" + strings.Join(DefaultPATH, ":")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gramine: finding the modules the job's Python code imports (%s): %v: %s", interp, err, strings.TrimSpace(stderr.String()))
	}
	var s pythonScan
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		return nil, fmt.Errorf("gramine: reading %s's module list: %w", interp, err)
	}
	return &s, nil
}

// addPython trusts what the Python interpreter at interp loads for args:
// its start-up modules and the job's imports, transitively.
func (t *trustSet) addPython(interp string, args []string, r *elfdeps.Resolver) error {
	var pythonPath string
	if t.python != nil {
		pythonPath = t.python.pythonPath
	}
	s, err := scanPython(interp, args, pythonPath)
	if err != nil {
		return err
	}
	req, _, _ := parsePythonArgs(args)
	for _, script := range req.Scripts {
		if abs, err := filepath.Abs(script); err == nil && fileExists(abs) {
			t.add(TrustedFile{Path: abs, Why: "Python script"})
		}
	}
	under := func(p string, dirs []string) string {
		for _, d := range dirs {
			if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
				return d
			}
		}
		return ""
	}
	add := func(name, file, why string) error {
		if file == "" || !filepath.IsAbs(file) {
			return nil // built in, frozen
		}
		fi, err := os.Stat(file)
		if err != nil || fi.IsDir() {
			return nil // a namespace package: nothing to load
		}
		if site := under(file, s.SiteDirs); site != "" {
			// An installed package: its top-level directory, whole.
			rel := strings.TrimPrefix(file, strings.TrimSuffix(site, "/")+"/")
			top, _, nested := strings.Cut(rel, "/")
			if nested {
				return t.addDir(filepath.Join(site, top), why+" package "+top, r)
			}
		}
		label := why + " module " + name
		if under(file, s.Stdlib) == "" && under(file, s.SiteDirs) == "" {
			label = "Python module " + name + ", the job's own"
		}
		if isExtension(file) {
			return t.addProgram(file, "Python extension "+name, r, nil)
		}
		t.add(TrustedFile{Path: file, Why: label})
		if pyc := cachedBytecode(file, s.CacheTag); pyc != "" {
			t.add(TrustedFile{Path: pyc, Why: label + " (bytecode)"})
		}
		return nil
	}
	for _, names := range []struct {
		mods map[string]string
		why  string
	}{{s.Startup, "Python start-up:"}, {s.Modules, "Python"}} {
		keys := make([]string, 0, len(names.mods))
		for k := range names.mods {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := add(k, names.mods[k], names.why); err != nil {
				return err
			}
		}
	}
	for _, pth := range s.PthFiles {
		t.add(TrustedFile{Path: pth, Why: "Python start-up: site's .pth file"})
	}
	return nil
}

func isExtension(p string) bool {
	return strings.HasSuffix(p, ".so") || strings.Contains(filepath.Base(p), ".so.")
}

// cachedBytecode is the __pycache__ file CPython reads instead of a
// module's source when it is there and current ("" if absent).
func cachedBytecode(src, tag string) string {
	if tag == "" || !strings.HasSuffix(src, ".py") {
		return ""
	}
	p := filepath.Join(filepath.Dir(src), "__pycache__", strings.TrimSuffix(filepath.Base(src), ".py")+"."+tag+".pyc")
	if !fileExists(p) {
		return ""
	}
	return p
}
