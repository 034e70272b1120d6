package elfdeps

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// lddPaths runs the system's ldd, an independent implementation (the real
// loader in trace mode), and returns the paths it reports, links resolved.
func lddPaths(t *testing.T, prog string) (interp string, libs map[string]bool) {
	t.Helper()
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("ldd not installed")
	}
	out, err := exec.Command(ldd, prog).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", prog, err)
	}
	libs = map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs[real(t, f[2])] = true
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			interp = real(t, f[0])
		}
	}
	return interp, libs
}

func real(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolveMatchesLdd(t *testing.T) {
	r := System()
	progs := []string{"/usr/bin/python3", "/bin/ls", "/usr/bin/ldd", "/usr/bin/openssl", "/usr/bin/git"}
	tested := 0
	for _, p := range progs {
		if ok, err := IsELF(p); err != nil || !ok {
			continue
		}
		tested++
		res, err := r.Resolve(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		wantInterp, wantLibs := lddPaths(t, p)
		if wantInterp != "" && real(t, res.Interpreter) != wantInterp {
			t.Errorf("%s: interpreter %s, ldd says %s", p, res.Interpreter, wantInterp)
		}
		got := map[string]bool{}
		for _, l := range res.Libraries {
			got[real(t, l)] = true
		}
		for l := range wantLibs {
			if !got[l] {
				t.Errorf("%s: ldd lists %s, Resolve does not (got %v)", p, l, res.Libraries)
			}
		}
		for l := range got {
			if !wantLibs[l] && l != wantInterp {
				t.Errorf("%s: Resolve lists %s, ldd does not", p, l)
			}
		}
	}
	if tested == 0 {
		t.Skip("no dynamically linked system program found")
	}
}

func TestStaticBinary(t *testing.T) {
	// This test binary is pure Go: statically linked, nothing to resolve.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	res, err := System().Resolve(exe)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ldd", exe).CombinedOutput()
	if !strings.Contains(string(out), "not a dynamic executable") {
		t.Skipf("test binary is dynamically linked here: %s", out)
	}
	if len(res.Libraries) != 0 || res.Interpreter != "" {
		t.Errorf("static binary: interpreter %q libraries %v", res.Interpreter, res.Libraries)
	}
}

func TestNotFound(t *testing.T) {
	r := &Resolver{Dirs: []string{t.TempDir()}}
	_, err := r.Resolve("/usr/bin/python3")
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.NeededBy != "/usr/bin/python3" || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("got %v", err)
	}
	if _, err := System().Resolve("/etc/hostname"); err == nil {
		t.Fatal("non-ELF accepted")
	}
}

func TestParseLdSoConf(t *testing.T) {
	dir := t.TempDir()
	must := func(name, body string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must("ld.so.conf", "# comment\ninclude conf.d/*.conf\n/opt/a:/opt/b, /opt/c # trailing\nhwcap 0 nosegneg\nrelative/dir\n")
	must("conf.d/1.conf", "/usr/local/lib\n")
	must("conf.d/2.conf", "include "+filepath.Join(dir, "conf.d/*.conf")+"\n/x\n") // loops are cut off
	got := ParseLdSoConf(filepath.Join(dir, "ld.so.conf"))
	if len(got) < 5 || got[0] != "/usr/local/lib" || got[len(got)-3] != "/opt/a" || got[len(got)-1] != "/opt/c" {
		t.Fatalf("got %v", got)
	}
	if ParseLdSoConf(filepath.Join(dir, "missing")) != nil {
		t.Fatal("missing file gives directories")
	}
}

// FuzzResolve runs the ELF reader on arbitrary bytes; it must return an
// error or a result, never panic.
func FuzzResolve(f *testing.F) {
	for _, p := range []string{"/usr/bin/python3", "/bin/ls"} {
		if b, err := os.ReadFile(p); err == nil && len(b) < 8<<20 {
			f.Add(b[:min(len(b), 64<<10)])
		}
	}
	f.Add([]byte("\x7fELF"))
	dir := f.TempDir()
	r := &Resolver{Dirs: []string{dir}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "prog")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := r.Resolve(p)
		if err == nil && res == nil {
			t.Fatal("nil result without error")
		}
	})
}
