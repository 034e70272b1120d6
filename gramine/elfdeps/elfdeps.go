// Package elfdeps finds the files the dynamic loader opens to start an ELF
// program: its interpreter (PT_INTERP) and the shared libraries named by
// DT_NEEDED, transitively, searched the way glibc's ld.so searches (DT_RPATH,
// DT_RUNPATH, /etc/ld.so.conf, the system directories). It reads no
// environment: a Gramine manifest must not depend on the host's
// LD_LIBRARY_PATH.
package elfdeps

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Resolver searches libraries in Dirs after an object's own RPATH/RUNPATH.
// It remembers the ELF files it has read, so one Resolver used for many
// programs (a Python installation has hundreds of extension modules) reads
// each library once. It is safe for concurrent use.
type Resolver struct {
	Dirs []string

	mu      sync.Mutex
	objects map[string]*object
}

// System returns a resolver with the directories of /etc/ld.so.conf followed
// by the loader's built-in directories for this architecture.
func System() *Resolver {
	dirs := ParseLdSoConf("/etc/ld.so.conf")
	dirs = append(dirs, builtinDirs()...)
	return &Resolver{Dirs: dedupe(dirs)}
}

func builtinDirs() []string {
	triplet := map[string]string{
		"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
		"riscv64": "riscv64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
	}[runtime.GOARCH]
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// ParseLdSoConf reads an ld.so.conf file with its include directives.
// Missing files yield no directories.
func ParseLdSoConf(path string) []string {
	return parseLdSoConf(path, 0)
}

func parseLdSoConf(path string, depth int) []string {
	if depth > 8 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ':' || r == ',' })
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "include":
			for _, pat := range fields[1:] {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(filepath.Dir(path), pat)
				}
				matches, _ := filepath.Glob(pat)
				for _, m := range matches {
					dirs = append(dirs, parseLdSoConf(m, depth+1)...)
				}
			}
		case "hwcap":
		default:
			for _, d := range fields {
				if filepath.IsAbs(d) {
					dirs = append(dirs, filepath.Clean(d))
				}
			}
		}
	}
	return dirs
}

// Result is what the loader opens to start one program.
type Result struct {
	// Interpreter is the program's PT_INTERP (the dynamic loader), or "".
	Interpreter string
	// Libraries are the resolved shared libraries, each once, in the order
	// a breadth-first walk finds them. Paths are as the loader opens them
	// (search directory + DT_NEEDED name), not with links resolved.
	Libraries []string
}

// NotFoundError says which library could not be found, for which object.
type NotFoundError struct {
	Library  string
	NeededBy string
	Searched []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("shared library %s needed by %s not found (searched %s)", e.Library, e.NeededBy, strings.Join(e.Searched, ":"))
}

type object struct {
	path    string
	class   elf.Class
	machine elf.Machine
	needed  []string
	rpath   []string
	runpath []string
	interp  string
}

func load(path string) (*object, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	o := &object{path: path, class: f.Class, machine: f.Machine}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				return nil, fmt.Errorf("%s: read PT_INTERP: %w", path, err)
			}
			o.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if f.Section(".dynamic") == nil && !hasDynamicProg(f) {
		return o, nil // static
	}
	if o.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("%s: read DT_NEEDED: %w", path, err)
	}
	origin := filepath.Dir(path)
	for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			return nil, fmt.Errorf("%s: read %v: %w", path, tag, err)
		}
		var dirs []string
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
				// $LIB and $PLATFORM depend on the running CPU; such entries are skipped.
				if d == "" || strings.Contains(d, "$") || !filepath.IsAbs(d) {
					continue
				}
				dirs = append(dirs, filepath.Clean(d))
			}
		}
		if tag == elf.DT_RPATH {
			o.rpath = dirs
		} else {
			o.runpath = dirs
		}
	}
	return o, nil
}

func hasDynamicProg(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// object returns the parsed ELF file at path, from the cache when it was read before.
func (r *Resolver) object(path string) (*object, error) {
	r.mu.Lock()
	o, ok := r.objects[path]
	r.mu.Unlock()
	if ok {
		return o, nil
	}
	o, err := load(path)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.objects == nil {
		r.objects = map[string]*object{}
	}
	r.objects[path] = o
	r.mu.Unlock()
	return o, nil
}

// compatible reports whether a library can be loaded into o (same class and
// machine); ld.so skips incompatible candidates and keeps searching.
func (r *Resolver) compatible(path string, o *object) bool {
	lib, err := r.object(path)
	return err == nil && lib.class == o.class && lib.machine == o.machine
}

// Resolve returns the interpreter and libraries the program at path needs.
func (r *Resolver) Resolve(path string) (*Result, error) {
	main, err := r.object(path)
	if err != nil {
		return nil, fmt.Errorf("read ELF %s: %w", path, err)
	}
	res := &Result{Interpreter: main.interp}
	seen := map[string]bool{}  // DT_NEEDED names already satisfied
	added := map[string]bool{} // resolved paths
	queue := []*object{main}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, name := range o.needed {
			if seen[name] {
				continue
			}
			found, searched := r.find(name, o, main)
			if found == "" {
				return nil, &NotFoundError{Library: name, NeededBy: o.path, Searched: searched}
			}
			seen[name] = true
			if added[found] {
				continue
			}
			added[found] = true
			res.Libraries = append(res.Libraries, found)
			lib, err := r.object(found)
			if err != nil {
				return nil, fmt.Errorf("read ELF %s (needed by %s): %w", found, o.path, err)
			}
			queue = append(queue, lib)
		}
	}
	return res, nil
}

func (r *Resolver) find(name string, o, main *object) (string, []string) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err == nil {
			return name, nil
		}
		return "", []string{name}
	}
	var dirs []string
	if len(o.runpath) == 0 {
		// DT_RPATH applies only when there is no DT_RUNPATH, and the
		// executable's DT_RPATH applies to every object it loads.
		dirs = append(dirs, o.rpath...)
		if o != main && len(main.runpath) == 0 {
			dirs = append(dirs, main.rpath...)
		}
	}
	dirs = append(dirs, o.runpath...)
	dirs = append(dirs, r.Dirs...)
	dirs = dedupe(dirs)
	for _, d := range dirs {
		p := filepath.Join(d, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if r.compatible(p, o) {
			return p, dirs
		}
	}
	return "", dirs
}

// IsELF reports whether the file starts with the ELF magic.
func IsELF(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, err
	}
	return string(magic[:]) == elf.ELFMAG, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
