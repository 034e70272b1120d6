package docstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/internal/buildtest"
	"github.com/ppml/ppml/internal/shareddata"
	"github.com/ppml/ppml/ml/dataset"
)

// docTimeout bounds one document's run; the slowest (the ML example) takes
// about half a minute.
const docTimeout = 4 * time.Minute

var binDir string // ppml, ppml-run and ppml-bench, built once by TestMain

func TestMain(m *testing.M) {
	if os.Getenv(reaperVar) == "1" && len(os.Args) > 1 {
		os.Exit(reaperMain(os.Args[1:])) // see reaper_test.go
	}
	flag.Parse()
	os.Exit(func() int {
		if testing.Short() {
			return m.Run() // TestDocs skips: nothing to build
		}
		// Binaries built already: make test's, built from this checkout just
		// before (so current), or yours when iterating on a document.
		if dir := os.Getenv("PPML_DOCSTEST_BIN"); dir != "" {
			binDir, _ = filepath.Abs(dir)
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "ppml-docstest-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// ppml-run as make build builds it: without the dl engine, whose
		// documents are skipped (a dl job would go to ppml-run-dl), so no
		// libtorch to link.
		for _, b := range []buildtest.Binary{buildtest.PPML(), buildtest.Runtime("ppml_no_dl"), {Pkg: "cmd/ppml-bench"}} {
			if _, err := buildtest.Build(dir, b); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		binDir = dir
		return m.Run()
	}())
}

// repoRoot is the module root, found from the working directory go test
// gives the package.
func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// docs lists the documents that run: the guides and every example README.
func docs(t *testing.T, root string) []string {
	var out []string
	guides, err := filepath.Glob(filepath.Join(root, "docs", "guide", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, guides...)
	err = filepath.WalkDir(filepath.Join(root, "examples"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "README.md" {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range out {
		out[i], _ = filepath.Rel(root, p)
	}
	sort.Strings(out)
	return out
}

var (
	skipMu  sync.Mutex
	skipped []string
)

// TestDocs runs every guide and example README (see the package comment and
// docs/README.md) and lists the blocks it skipped, with their reasons.
func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs every document: not with -short")
	}
	root := repoRoot(t)
	list := docs(t, root)
	if len(list) == 0 {
		t.Fatal("no documents found")
	}
	t.Cleanup(func() {
		if len(skipped) > 0 {
			t.Logf("skipped blocks (%d):\n%s", len(skipped), strings.Join(skipped, "\n"))
		}
	})
	t.Run("docs", func(t *testing.T) {
		for _, rel := range list {
			t.Run(strings.TrimSuffix(rel, ".md"), func(t *testing.T) {
				t.Parallel()
				runDoc(t, root, rel)
			})
		}
	})
}

var markerRE = regexp.MustCompile("\x1edocs-test ([^\x1e]*)\x1e\n")

// markerVar is the environment variable that marks every process a
// document starts (see killMarked).
const markerVar = "DOCSTEST_RUN"

// docRun is what running one document left: its output cut into segments.
type docRun struct {
	doc     *Doc
	subst   func(string) string
	runs    int
	work    string // the checkout-like directory the document ran in
	marker  string // the value of markerVar in its environment
	runErr  error
	segs    map[string]string
	order   []string
	errLine int
}

// runDoc runs one document's blocks and checks what they printed.
func runDoc(t *testing.T, root, rel string) {
	r := execDoc(t, root, rel)
	if r == nil {
		return
	}
	r.check(t, rel)
}

// execDoc runs one document's blocks in one bash process, and ends
// whatever it started. It returns nil when no block runs.
func execDoc(t *testing.T, root, rel string) *docRun {
	src, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Parse(string(src))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	type repl struct {
		re *regexp.Regexp
		to string
	}
	var ports []repl
	for _, p := range doc.Ports {
		ports = append(ports, repl{regexp.MustCompile(`\b` + p.Number + `\b`), freePort(t)})
	}
	subst := func(s string) string {
		for _, p := range ports {
			s = p.re.ReplaceAllString(s, p.to)
		}
		return s
	}

	// The script: each block between markers, console commands one by one.
	var script strings.Builder
	lineMap := map[int]int{} // script line -> markdown line
	n := 0
	emit := func(s string, mdLine int) {
		for _, l := range strings.Split(s, "\n") {
			n++
			if mdLine > 0 {
				lineMap[n] = mdLine
			}
			script.WriteString(l + "\n")
		}
	}
	emit(`__dt() { printf '\036docs-test %s\036\n' "$*"; }
trap '__dt err $LINENO $?' ERR
set -eEo pipefail`, 0)
	runs := 0
	for bi, b := range doc.Blocks {
		if b.Skip != "" {
			skipMu.Lock()
			skipped = append(skipped, fmt.Sprintf("  %s:%d: %s", rel, b.Line, b.Skip))
			skipMu.Unlock()
			continue
		}
		switch b.Kind {
		case Script:
			runs++
			emit(fmt.Sprintf("__dt begin %d", bi), 0)
			for i, l := range b.Body {
				emit(subst(l), b.Line+1+i)
			}
			emit(fmt.Sprintf("__dt end %d", bi), 0)
		case Console:
			runs++
			for ci, c := range b.Commands {
				emit(fmt.Sprintf("__dt begin %d.%d", bi, ci), 0)
				for i, l := range c.Text {
					emit(subst(l), c.Line+i)
				}
				emit(fmt.Sprintf("__dt end %d.%d", bi, ci), 0)
			}
		}
	}
	emit("__dt done", 0)
	if runs == 0 {
		t.Skipf("%s has no block that runs", rel)
	}

	tmp := t.TempDir()
	w := checkout(t, root, tmp)
	if goRunRE.MatchString(script.String()) {
		if err := moduleShim(root, w); err != nil {
			t.Fatal(err)
		}
	}
	// The files the port directives name, in the run's copy.
	for _, p := range doc.Ports {
		for _, f := range p.Files {
			docDir, _ := filepath.Rel(root, filepath.Join(root, filepath.Dir(rel)))
			path := filepath.Join(w, docDir, filepath.FromSlash(f))
			if !strings.HasPrefix(filepath.ToSlash(docDir), "examples/") && docDir != "examples" {
				t.Fatalf("%s: docs-test port %s %s: only files of an example (a copy under examples/) can be rewritten", rel, p.Number, f)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: docs-test port %s: %v", rel, p.Number, err)
			}
			if err := os.WriteFile(path, []byte(subst(string(b))), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	outPath := filepath.Join(tmp, "output")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	marker := rand.Text()
	ctx, cancel := context.WithTimeout(context.Background(), docTimeout)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "bash", "--noprofile", "--norc", "-c", script.String(), "bash")
	cmd.Dir = w
	cmd.Env = append(docEnv(t, tmp, w), markerVar+"="+marker, reaperVar+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Whatever the document started and did not stop (a server, a daemon)
	// ends with it, however the run ends.
	defer func() {
		killGroup(t, cmd.Process.Pid)
		killMarked(t, marker)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		// The reaper ends bash and everything below it; the group's
		// SIGKILL (killGroup) follows if it does not within 15 s.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		runErr = fmt.Errorf("timed out after %v", docTimeout)
	}
	t.Logf("%s: %d blocks in %.1fs", rel, runs, time.Since(start).Seconds())

	raw, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	segs, order, errLine := split(string(raw), lineMap)
	return &docRun{doc: doc, subst: subst, runs: runs, work: w, marker: marker, runErr: runErr, segs: segs, order: order, errLine: errLine}
}

// failure says where and how the document failed, or "" when every block
// ran to the end.
func (r *docRun) failure(rel string) string {
	if _, ok := r.segs["done"]; ok {
		return ""
	}
	last := "the start"
	for i := len(r.order) - 1; i >= 0; i-- {
		if strings.HasPrefix(r.order[i], "begin ") {
			last = r.order[i]
			break
		}
	}
	where := rel
	if id := strings.TrimPrefix(last, "begin "); id != last {
		where = fmt.Sprintf("%s:%d", rel, blockLine(r.doc, id))
	}
	if r.errLine > 0 {
		where = fmt.Sprintf("%s:%d", rel, r.errLine)
	}
	return fmt.Sprintf("%s: the block failed (%v); its output:\n%s", where, r.runErr, tail(r.segs[last], 60))
}

// check compares what the blocks printed with what the document shows.
func (r *docRun) check(t *testing.T, rel string) {
	if f := r.failure(rel); f != "" {
		t.Fatal(f)
	}
	doc, segs, subst := r.doc, r.segs, r.subst
	for bi, b := range doc.Blocks {
		if b.Skip != "" {
			continue
		}
		switch b.Kind {
		case Console:
			for ci, c := range b.Commands {
				got := segs[fmt.Sprintf("begin %d.%d", bi, ci)]
				want := make([]string, len(c.Expect))
				for i, l := range c.Expect {
					want[i] = subst(l)
				}
				if !Match(want, lines(got)) {
					t.Errorf("%s:%d: $ %s\nprinted:\n%s\nthe doc shows:\n%s", rel, c.Line, strings.Join(c.Text, "\n"), indent(got), indent(strings.Join(want, "\n")))
				}
			}
		case Output:
			prev := doc.Blocks[bi-1]
			if prev.Skip != "" {
				continue
			}
			var got string
			if prev.Kind == Console {
				for ci := range prev.Commands {
					got += segs[fmt.Sprintf("begin %d.%d", bi-1, ci)]
				}
			} else {
				got = segs[fmt.Sprintf("begin %d", bi-1)]
			}
			want := make([]string, len(b.Body))
			for i, l := range b.Body {
				want[i] = subst(l)
			}
			if !Match(want, lines(got)) {
				t.Errorf("%s:%d: the block at line %d printed:\n%s\nthe doc shows:\n%s", rel, b.Line, prev.Line, indent(got), indent(strings.Join(want, "\n")))
			}
		}
	}
}

// split cuts the output at the markers: segment "begin X" is what block or
// command X printed. errLine is the markdown line of the first command that
// failed, when there was one.
func split(raw string, lineMap map[int]int) (segs map[string]string, order []string, errLine int) {
	segs = map[string]string{}
	cur := ""
	pos := 0
	for _, m := range markerRE.FindAllStringSubmatchIndex(raw, -1) {
		segs[cur] += raw[pos:m[0]]
		name := raw[m[2]:m[3]]
		pos = m[1]
		if strings.HasPrefix(name, "err ") {
			if f := strings.Fields(name); errLine == 0 && len(f) == 3 {
				l, _ := strconv.Atoi(f[1])
				errLine = lineMap[l]
			}
			continue
		}
		order = append(order, name)
		segs[name] += ""
		cur = name
	}
	segs[cur] += raw[pos:]
	return segs, order, errLine
}

func blockLine(doc *Doc, id string) int {
	bs, cs, _ := strings.Cut(id, ".")
	bi, _ := strconv.Atoi(bs)
	if bi >= len(doc.Blocks) {
		return 0
	}
	if cs != "" {
		ci, _ := strconv.Atoi(cs)
		if ci < len(doc.Blocks[bi].Commands) {
			return doc.Blocks[bi].Commands[ci].Line
		}
	}
	return doc.Blocks[bi].Line
}

// checkout lays out a fresh directory like a ppml checkout: bin/ with the
// binaries, copies of examples/ and scripts/, python/, and ../shared beside
// it as in CI. HOME is tmp/home, whose ~/.cache/ppml/datasets is the
// dataset cache the tests use.
func checkout(t *testing.T, root, tmp string) string {
	w := filepath.Join(tmp, "ppml")
	for _, d := range []string{w, filepath.Join(w, "bin"), filepath.Join(tmp, "home", ".cache", "ppml"), filepath.Join(tmp, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ppml", "ppml-run", "ppml-bench"} {
		if err := os.Symlink(filepath.Join(binDir, name), filepath.Join(w, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"examples", "scripts"} {
		if err := os.CopyFS(filepath.Join(w, d), os.DirFS(filepath.Join(root, d))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "python"), filepath.Join(w, "python")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shareddata.Dir(), filepath.Join(tmp, "shared")); err != nil {
		t.Fatal(err)
	}
	ds, err := datasetDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ds, filepath.Join(tmp, "home", ".cache", "ppml", "datasets")); err != nil {
		t.Fatal(err)
	}
	return w
}

// goRunRE finds a go run or go build in a document's script: such a
// document's checkout gets a module file (moduleShim).
var goRunRE = regexp.MustCompile(`(^|[\s;&|(])go (run|build) `)

// moduleShim makes the checkout w a Go module, so that a document's
// "go run ./examples/..." builds the copied example as in the reader's
// checkout: go.mod is the repository's, renamed ppml-docs-checkout, with
// github.com/ppml/ppml required and replaced by the repository itself, and
// go.sum is the repository's. The example's own package compiles from the
// copy; every package of ppml it imports is read from the repository,
// nothing is copied or linked into the document's directory (a document
// that writes ./kms must not write into the kms package), and the build
// cache that built the test's binaries serves them. An example cannot
// import ppml's internal packages this way; none does.
func moduleShim(root, w string) error {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	modRE := regexp.MustCompile(`(?m)^module\s+` + regexp.QuoteMeta(buildtest.Module) + `\s*$`)
	if !modRE.Match(mod) {
		return fmt.Errorf("%s/go.mod does not declare module %s", root, buildtest.Module)
	}
	mod = modRE.ReplaceAll(mod, []byte("module ppml-docs-checkout"))
	mod = append(mod, fmt.Sprintf("\nrequire %s v0.0.0\n\nreplace %s => %s\n", buildtest.Module, buildtest.Module, root)...)
	if err := os.WriteFile(filepath.Join(w, "go.mod"), mod, 0o644); err != nil {
		return err
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(w, "go.sum"), sum, 0o644)
}

var datasetOnce = sync.OnceValues(func() (string, error) {
	// Fetched (once, by scripts/datasets.sh) if missing: the ML examples need them.
	for _, f := range []string{dataset.Boston, dataset.BreastCancer} {
		if _, err := dataset.Path(f); err != nil {
			return "", err
		}
	}
	return dataset.Dir()
})

func datasetDir() (string, error) { return datasetOnce() }

// goEnv is the test's Go build and module caches (and GOPATH), which a
// document's "go run" uses although its HOME is fresh.
var goEnv = sync.OnceValue(func() []string {
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		return nil
	}
	var env []string
	for i, v := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v != "" && i < 3 {
			env = append(env, []string{"GOCACHE", "GOMODCACHE", "GOPATH"}[i]+"="+v)
		}
	}
	return env
})

// docEnv is the environment of a document's shell: the test's, without any
// PPML_ or XDG_ setting, with the checkout's bin/ first on PATH, a fresh
// HOME and TMPDIR, and the test's Go caches.
func docEnv(t *testing.T, tmp, w string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PPML_"), strings.HasPrefix(k, "XDG_"):
		case k == "HOME", k == "PATH", k == "TMPDIR", k == "PWD", k == "OLDPWD", k == "CDPATH", k == "BASH_ENV", k == "ENV",
			k == "GOCACHE", k == "GOMODCACHE", k == "GOPATH", k == markerVar:
		default:
			env = append(env, kv)
		}
	}
	env = append(env, goEnv()...)
	return append(env,
		"HOME="+filepath.Join(tmp, "home"),
		"TMPDIR="+filepath.Join(tmp, "tmp"),
		"PATH="+filepath.Join(w, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
}

// killGroup ends every process left in the document's process group and
// waits until none is left.
func killGroup(t *testing.T, pgid int) {
	if syscall.Kill(-pgid, 0) != nil {
		return
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("processes of group %d still running after SIGKILL", pgid)
}

// killMarked ends every process whose environment holds markerVar=marker:
// what a document started that left its process group (a daemon that
// forked and called setsid). It sends SIGTERM, waits up to 5 seconds and
// then SIGKILLs what is left.
func killMarked(t *testing.T, marker string) {
	pids := marked(marker)
	if len(pids) == 0 {
		return
	}
	t.Logf("ending %d process(es) the document left outside its process group: %v", len(pids), pids)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if pids = marked(marker); len(pids) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for i := 0; i < 100; i++ {
		if pids = marked(marker); len(pids) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("processes %v still running after SIGKILL", pids)
}

// marked lists the live processes (not zombies) whose environment holds
// markerVar=marker. Processes of other users are unreadable and skipped:
// a document runs as the test's user.
func marked(marker string) []int {
	want := []byte(markerVar + "=" + marker + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// The state follows the parenthesised command name.
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func indent(s string) string {
	var b bytes.Buffer
	for _, l := range lines(s) {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func tail(s string, n int) string {
	ls := lines(s)
	if len(ls) > n {
		ls = append([]string{"…"}, ls[len(ls)-n:]...)
	}
	return indent(strings.Join(ls, "\n"))
}

// TestDaemonsEnd runs a document that starts a daemon out of its process
// group (redis-server --daemonize yes, and setsid) and then fails: both
// must be gone when the harness returns.
func TestDaemonsEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server: not with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server (make deps installs it)")
	}
	root := repoRoot(t)
	rel := filepath.Join("internal", "docstest", "testdata", "daemons.md")
	r := execDoc(t, root, rel)
	f := r.failure(rel)
	if !strings.Contains(f, "daemons.md:17:") {
		t.Fatalf("the fixture should fail at its line 17 ($ false); got %q", f)
	}
	for _, name := range []string{"setsid.pid", "daemon.pid"} {
		b, err := os.ReadFile(filepath.Join(r.work, name))
		if err != nil {
			t.Fatalf("the fixture did not start its daemons: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if pgid, err := syscall.Getpgid(pid); err == nil {
			t.Errorf("%s: process %d (group %d) still runs", name, pid, pgid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if left := marked(r.marker); len(left) > 0 {
		t.Errorf("processes with the document's marker left: %v", left)
	}
}
