// Package gramine writes Gramine manifest templates that run a ppml job
// inside an SGX enclave: the runtime, ppml-run, as the entrypoint with a fixed
// command line, every file the enclave executes as a trusted (measured) file,
// the job manifest itself as a trusted file, encrypted inputs and outputs as
// allowed files, temporary space in memory, DCAP remote attestation, no debug.
//
// The template is rendered by gramine-manifest and signed by gramine-sgx-sign;
// docs/sgx.md describes the steps and how to pin the resulting MRENCLAVE and
// MRSIGNER in a key policy.
package gramine

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/gramine/elfdeps"
	"github.com/ppml/ppml/job"
)

// DefaultPATH is where bare program names in an exec command are looked up,
// here and by ppml-run inside the enclave (loader.env.PATH).
var DefaultPATH = execspec.PATH

// Sizing rules (see docs/sgx.md, "Enclave size and threads"). Without
// EDMM every mapping of the process must fit in sgx.enclave_size, so the
// size adds up what ppml-run maps, then rounds up to a power of two.
const (
	// MinEnclaveSize is Gramine's default enclave size, the floor.
	MinEnclaveSize = 256 << 20
	// GoRuntimeReserve is the address space the Go runtime reserves at
	// start whatever the heap (page summaries, scavenger index, arena
	// map): measured with ppml-run under RLIMIT_AS, it fails to start
	// below ~900 MiB and fails erratically up to ~1.3 GiB (the runtime
	// retries smaller reservations), so 1.25 GiB plus the rest below.
	GoRuntimeReserve = 1280 << 20
	// GramineReserve is Gramine's own share of the enclave: LibOS and PAL
	// code and heaps, the manifest and trusted-file hashes, the tmpfs
	// bookkeeping.
	GramineReserve = 128 << 20
	// StackSize is sys.stack.size: each thread's stack. Gramine's default,
	// 256K, is too small for DuckDB, XGBoost and OpenMP workers; 8M is
	// glibc's default on Linux, which they are written for.
	StackSize = 8 << 20
	// GramineThreads are Gramine's own helper threads (IPC, async events,
	// TLS handshakes on pipes) that count against sgx.max_threads.
	GramineThreads = 4
	// GoRuntimeThreads cover the Go runtime's threads beyond GOMAXPROCS
	// (sysmon, GC workers, threads blocked in system calls, the child
	// waiter of the exec engine).
	GoRuntimeThreads = 8
)

// PoolThreads are the threads an engine's native pools start beyond the Go
// runtime's, each pool sized by resources.threads: DuckDB's workers (sql,
// and ml for query inputs), OpenMP's for XGBoost (ml). The exec engine's
// program is a process, so an enclave, of its own.
func PoolThreads(engine string, threads int) int {
	switch engine {
	case "sql":
		return threads
	case "ml":
		return 2 * threads
	}
	return 0
}

// Sizing is how sgx.enclave_size and sgx.max_threads were computed; the
// template explains each figure with it.
type Sizing struct {
	GoRuntime   int64 // GoRuntimeReserve
	Gramine     int64 // GramineReserve
	Binaries    int64 // bytes of ppml-run, its loader and libraries (mapped)
	Memory      int64 // resources.memory: heap and decrypted data
	Stacks      int64 // MaxThreads × StackSize
	Total       int64 // the sum, before rounding
	Threads     int   // resources.threads (GOMAXPROCS)
	PoolThreads int   // PoolThreads(engine, threads)
}

// Options say where things are on the host that builds the enclave.
type Options struct {
	// Runtime is the absolute path of the ppml-run binary that becomes the
	// entrypoint (and, with the rest of the enclave, MRENCLAVE).
	Runtime string
	// JobPath is the absolute path of the job manifest; it becomes a trusted
	// file and ppml-run reads it from there.
	JobPath string
	// Server, when set, is the key service URL fixed in the enclave's command
	// line (and so in MRENCLAVE). When empty, ppml-run takes it from the
	// PPML_SERVER environment variable, passed through from the host.
	Server string
	// Trusted are extra trusted files or directories (a directory is
	// measured recursively by gramine-sgx-sign).
	Trusted []string
	// ISVProdID and ISVSVN go into the enclave signature.
	ISVProdID, ISVSVN uint16
	// Resolver finds shared libraries; nil means elfdeps.System().
	Resolver *elfdeps.Resolver
	// PATH overrides DefaultPATH for bare program names.
	PATH []string
	// AllowKeyFiles lets file: keys through as allowed (host) files. The
	// host can read and replace such a key, so an SGX job refuses them
	// unless this is set, for development (ppml gramine manifest
	// --allow-key-files, which warns).
	AllowKeyFiles bool
}

// TrustedFile is one sgx.trusted_files entry.
type TrustedFile struct {
	Path   string // host path; a directory ends in "/"
	SHA256 string // hex; when set, the signer uses it instead of hashing (pinned job files)
	Why    string // for the comment in the template
}

// Mount is one fs.mounts entry.
type Mount struct {
	Type string // "chroot" or "tmpfs"
	Path string
	URI  string
}

// EnvVar is one loader.env entry.
type EnvVar struct {
	Name        string
	Value       string
	Passthrough bool
}

// Manifest is the content of a generated template.
type Manifest struct {
	JobName      string
	JobDigest    string
	Entrypoint   string
	Argv         []string
	Env          []EnvVar
	Mounts       []Mount
	TrustedFiles []TrustedFile
	AllowedFiles []string // host paths; a directory ends in "/"
	EnclaveSize  int64
	MaxThreads   int
	StackSize    int64
	Sizing       Sizing
	ISVProdID    uint16
	ISVSVN       uint16
	// Skipped lists shared libraries of scanned directories (Python
	// extension modules) that could not be resolved; they are reported, not
	// fatal, because most are never loaded.
	Skipped []string
}

// EnclaveSize rounds memory up to the power of two Gramine requires, at
// least MinEnclaveSize.
func EnclaveSize(memory int64) int64 {
	if memory <= MinEnclaveSize {
		return MinEnclaveSize
	}
	return int64(1) << (64 - bits.LeadingZeros64(uint64(memory-1)))
}

// MaxThreads is the sgx.max_threads for a job with threads threads (its
// GOMAXPROCS) whose engine pools add pools.
func MaxThreads(threads, pools int) int {
	return threads + pools + GramineThreads + GoRuntimeThreads
}

// FormatGramineSize prints a size with Gramine's units (K, M, G: powers of 1024).
func FormatGramineSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// programRunner is implemented by engine parameters that start external
// programs (the exec engine).
type programRunner interface{ Programs() []string }

// pinner is implemented by engine parameters that pin files by hash.
type pinner interface{ Pinned() []execspec.PinnedFile }

var pythonName = regexp.MustCompile(`^python3(\.[0-9]+)?$`)

// New computes the manifest for job m.
func New(m *job.Manifest, o Options) (*Manifest, error) {
	if !filepath.IsAbs(o.Runtime) || !filepath.IsAbs(o.JobPath) {
		return nil, fmt.Errorf("gramine: ppml-run binary %q and job manifest %q must be absolute paths", o.Runtime, o.JobPath)
	}
	for _, f := range []struct{ what, path string }{{"ppml-run binary", o.Runtime}, {"job manifest", o.JobPath}} {
		if err := checkHostPath(f.path, f.what); err != nil {
			return nil, err
		}
		if err := checkMount(filepath.Dir(f.path), f.what, f.path); err != nil {
			return nil, err
		}
	}
	if kf := keyFiles(m); len(kf) > 0 && !o.AllowKeyFiles {
		return nil, fmt.Errorf("gramine: key %s is a file: key; the host can read and replace a key file, so an SGX job takes its keys from the key service (kms:// keys released after attestation); for development only, --allow-key-files lets it through", kf[0])
	}
	r := o.Resolver
	if r == nil {
		r = elfdeps.System()
	}
	pathDirs := o.PATH
	if pathDirs == nil {
		pathDirs = DefaultPATH
	}
	g := &Manifest{
		JobName:    m.Name,
		JobDigest:  m.DigestString(),
		Entrypoint: o.Runtime,
		Argv:       []string{o.Runtime, "run", "--manifest", o.JobPath, "--tee", "gramine"},
		MaxThreads: MaxThreads(m.Resources.Threads, PoolThreads(m.Engine, m.Resources.Threads)),
		StackSize:  StackSize,
		ISVProdID:  o.ISVProdID,
		ISVSVN:     o.ISVSVN,
	}
	if o.Server != "" {
		g.Argv = append(g.Argv, "--server", o.Server)
	}

	t := &trustSet{byPath: map[string]int{}}
	if err := t.addProgram(o.Runtime, "ppml-run binary", r, pathDirs); err != nil {
		return nil, err
	}
	if err := t.addFile(o.JobPath, "job manifest", ""); err != nil {
		return nil, err
	}
	if p, ok := m.Parameters.(*execspec.Params); ok {
		t.python = &pythonJob{args: p.Command[1:], pythonPath: fixedEnv(p.Env, "PYTHONPATH")}
	}
	if pr, ok := m.Parameters.(programRunner); ok {
		for _, prog := range pr.Programs() {
			path, err := lookPath(prog, pathDirs)
			if err != nil {
				return nil, err
			}
			if err := t.addProgramArgs(path, "job program", r, pathDirs, t.python.argv()); err != nil {
				return nil, err
			}
		}
	}
	if p, ok := m.Parameters.(pinner); ok {
		for _, f := range p.Pinned() {
			t.add(TrustedFile{Path: f.Path, SHA256: fmt.Sprintf("%x", f.SHA256), Why: "pinned by the job"})
		}
	}
	for _, extra := range o.Trusted {
		abs, err := filepath.Abs(extra)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("gramine: trusted file: %w", err)
		}
		if fi.IsDir() {
			if err := t.addDir(abs, "requested", r); err != nil {
				return nil, err
			}
		} else if err := t.addFile(abs, "requested", ""); err != nil {
			return nil, err
		}
	}
	if bundle := "/etc/ssl/certs/ca-certificates.crt"; fileExists(bundle) {
		// TLS to the key service verifies against the system roots.
		t.add(TrustedFile{Path: bundle, Why: "TLS roots"})
	}
	g.TrustedFiles = t.files
	g.Skipped = t.skipped
	g.Sizing = Sizing{
		GoRuntime: GoRuntimeReserve, Gramine: GramineReserve, Memory: m.Resources.Memory,
		Stacks: int64(g.MaxThreads) * StackSize, Threads: m.Resources.Threads,
		PoolThreads: PoolThreads(m.Engine, m.Resources.Threads),
	}
	// What ppml-run maps: itself, its loader and libraries (the program of
	// an exec job runs in an enclave of its own).
	mapped := []string{o.Runtime}
	if res, err := r.Resolve(o.Runtime); err == nil {
		if res.Interpreter != "" {
			mapped = append(mapped, res.Interpreter)
		}
		mapped = append(mapped, res.Libraries...)
	}
	for _, p := range mapped {
		if fi, err := os.Stat(p); err == nil {
			g.Sizing.Binaries += fi.Size()
		}
	}
	g.Sizing.Total = g.Sizing.GoRuntime + g.Sizing.Gramine + g.Sizing.Binaries + g.Sizing.Memory + g.Sizing.Stacks
	g.EnclaveSize = EnclaveSize(g.Sizing.Total)

	var libDirs []string
	seenDir := map[string]bool{}
	for _, f := range t.files {
		if f.Why == "shared library" {
			d := filepath.Dir(f.Path)
			if !seenDir[d] {
				seenDir[d] = true
				libDirs = append(libDirs, d)
			}
		}
	}

	// Inputs and outputs are ppml-encrypted (AEAD with the key named in
	// their header), so the host may see and store them: allowed files.
	var mountPaths []string
	for _, f := range t.files {
		p := strings.TrimSuffix(f.Path, "/")
		if strings.HasSuffix(f.Path, "/") {
			mountPaths = append(mountPaths, p)
		} else {
			mountPaths = append(mountPaths, filepath.Dir(p))
		}
	}
	for _, in := range m.Inputs {
		if err := checkHostPath(in.Path, "inputs."+in.Name); err != nil {
			return nil, err
		}
		if err := checkMount(in.Path, "inputs."+in.Name, in.Path); err != nil {
			return nil, err
		}
		entry := in.Path
		if fi, err := os.Stat(in.Path); err == nil && fi.IsDir() {
			entry += "/"
		}
		g.AllowedFiles = append(g.AllowedFiles, entry)
		mountPaths = append(mountPaths, in.Path)
	}
	for _, out := range m.Outputs {
		if err := checkHostPath(out.Path, "outputs."+out.Name); err != nil {
			return nil, err
		}
		// The launcher writes a temporary file beside the output and renames
		// it, so the whole directory is allowed.
		dir := filepath.Dir(out.Path)
		if dir == "/" {
			return nil, fmt.Errorf("gramine: outputs.%s: %s is directly under /; put outputs in their own directory", out.Name, out.Path)
		}
		if err := checkMount(dir, "outputs."+out.Name, out.Path); err != nil {
			return nil, err
		}
		g.AllowedFiles = append(g.AllowedFiles, dir+"/")
		mountPaths = append(mountPaths, dir)
	}
	for _, key := range keyFiles(m) {
		if err := checkMount(filepath.Dir(key), "key file", key); err != nil {
			return nil, err
		}
		g.AllowedFiles = append(g.AllowedFiles, key)
		mountPaths = append(mountPaths, filepath.Dir(key))
	}
	g.AllowedFiles = dedupe(g.AllowedFiles)
	for _, p := range mountPaths {
		if err := checkHostPath(p, "trusted file directory"); err != nil {
			return nil, err
		}
		if err := checkMount(p, "trusted file directory", p); err != nil {
			return nil, err
		}
	}
	// The tmpfs comes first: chroot mounts below /tmp must be made after it.
	g.Mounts = append([]Mount{{Type: "tmpfs", Path: enclaveTmp}}, chrootMounts(mountPaths)...)

	g.Env = []EnvVar{
		{Name: "PATH", Value: strings.Join(pathDirs, ":")},
		{Name: "LD_LIBRARY_PATH", Value: strings.Join(libDirs, ":")},
		{Name: "GOMAXPROCS", Value: strconv.Itoa(m.Resources.Threads)},
		{Name: "TMPDIR", Value: enclaveTmp},
		// Gramine has no memfd_create: decrypted inputs and outputs are
		// files on this tmpfs, in enclave memory (package memfd).
		{Name: "PPML_MEMFS", Value: enclaveTmp},
		{Name: "PPML_TOKEN", Passthrough: true},
	}
	if o.Server == "" {
		g.Env = append(g.Env, EnvVar{Name: "PPML_SERVER", Passthrough: true})
	}
	if d, ok := m.Parameters.(interface{ JobWorkers() int }); ok && d.JobWorkers() > 1 {
		// A worker of a distributed job learns its place from the host (the
		// enclave's command line is fixed): it is not part of the job's
		// identity, and the workers accept each other only by attested
		// certificates. Worker 0 uses a tracker beside the enclave
		// (PPML_RABIT_TRACKER): Gramine does not start python3.
		for _, name := range []string{"PPML_WORKER_INDEX", "PPML_PEERS", "PPML_WORKER_LISTEN", "PPML_RABIT_TRACKER"} {
			g.Env = append(g.Env, EnvVar{Name: name, Passthrough: true})
		}
	}
	return g, nil
}

// keyFiles lists file: key references; in development they are read from the host.
func keyFiles(m *job.Manifest) []string {
	var out []string
	for _, in := range m.Inputs {
		if in.Key != nil && in.Key.Scheme == job.KeyFile {
			out = append(out, in.Key.AbsPath)
		}
	}
	for _, o := range m.Outputs {
		if o.Key.Scheme == job.KeyFile {
			out = append(out, o.Key.AbsPath)
		}
	}
	return out
}

// enclaveTmp is where the enclave's in-memory tmpfs is mounted; TMPDIR
// points there.
const enclaveTmp = "/tmp"

// checkHostPath refuses paths that cannot be mounted as they are: under the
// kernel's pseudo file systems (Gramine has its own /proc, /sys and /dev),
// or containing Jinja markup that gramine-manifest would expand.
func checkHostPath(p, what string) error {
	for _, bad := range []string{"{{", "{%", "{#"} {
		if strings.Contains(p, bad) {
			return fmt.Errorf("gramine: %s: path %q contains %q, which gramine-manifest would expand", what, p, bad)
		}
	}
	for _, dir := range []string{"/proc", "/sys", "/dev"} {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return fmt.Errorf("gramine: %s: %s is under %s, which the enclave does not take from the host; use another directory", what, p, dir)
		}
	}
	return nil
}

// checkMount refuses to mount the host's /tmp itself, which a file directly
// in /tmp would need: it would hide the enclave's in-memory /tmp and put
// every temporary file on the host. Host directories below /tmp are fine:
// they are mounted after the tmpfs, at the same paths (Gramine applies
// mounts in order and creates their mount points inside the tmpfs).
func checkMount(mount, what, p string) error {
	if mount != enclaveTmp {
		return nil
	}
	if p == mount {
		return fmt.Errorf("gramine: %s: %s cannot come from the host: inside the enclave it is in-memory temporary space; use a directory below it", what, p)
	}
	return fmt.Errorf("gramine: %s: %s is directly in %s, whose host copy the enclave cannot mount (its %s is in memory); move it into a directory of its own", what, p, mount, mount)
}

// chrootMounts mounts each needed host path at the same path inside the
// enclave, dropping paths already below another mount.
func chrootMounts(paths []string) []Mount {
	ps := dedupe(paths)
	sort.Strings(ps)
	var kept []string
	for _, p := range ps {
		covered := false
		for _, k := range kept {
			if p == k || strings.HasPrefix(p, k+"/") {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, p)
		}
	}
	out := make([]Mount, len(kept))
	for i, p := range kept {
		out[i] = Mount{Type: "chroot", Path: p, URI: "file:" + p}
	}
	return out
}

type trustSet struct {
	// python is the exec job's command, for a Python interpreter among
	// its programs (nil for other engines).
	python  *pythonJob
	files   []TrustedFile
	byPath  map[string]int
	skipped []string
}

func (t *trustSet) add(f TrustedFile) {
	if i, ok := t.byPath[f.Path]; ok {
		if t.files[i].SHA256 == "" {
			t.files[i].SHA256 = f.SHA256
		}
		return
	}
	t.byPath[f.Path] = len(t.files)
	t.files = append(t.files, f)
}

func (t *trustSet) addFile(path, why, sha string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("gramine: %s: %w", why, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("gramine: %s %s is not a regular file", why, path)
	}
	t.add(TrustedFile{Path: path, SHA256: sha, Why: why})
	return nil
}

// addProgram trusts an executable, its loader and libraries; for a script,
// its interpreter (#!) too; for a Python interpreter, its library
// directories.
func (t *trustSet) addProgram(path, why string, r *elfdeps.Resolver, pathDirs []string) error {
	return t.addProgramDepth(path, why, r, pathDirs, nil, 0)
}

// addProgramArgs is addProgram for the job's program, started with args
// (argv without argv[0]): for a Python interpreter they say what it runs.
func (t *trustSet) addProgramArgs(path, why string, r *elfdeps.Resolver, pathDirs, args []string) error {
	return t.addProgramDepth(path, why, r, pathDirs, args, 0)
}

func (t *trustSet) addProgramDepth(path, why string, r *elfdeps.Resolver, pathDirs, args []string, depth int) error {
	if depth > 4 {
		return fmt.Errorf("gramine: %s: too many nested #! interpreters", path)
	}
	if err := t.addFile(path, why, ""); err != nil {
		return err
	}
	isELF, err := elfdeps.IsELF(path)
	if err != nil {
		return fmt.Errorf("gramine: %s: %w", why, err)
	}
	if !isELF {
		interp, arg, err := shebang(path)
		if err != nil {
			return err
		}
		ip, err := lookPath(interp, pathDirs)
		if err != nil {
			return err
		}
		// The kernel runs "interp [arg] path args...".
		iargs := append([]string{path}, args...)
		if arg != "" {
			iargs = append([]string{arg}, iargs...)
		}
		if filepath.Base(ip) == "env" && arg != "" && !strings.HasPrefix(arg, "-") {
			if err := t.addProgramDepth(ip, "interpreter of "+path, r, pathDirs, nil, depth+1); err != nil {
				return err
			}
			p, err := lookPath(arg, pathDirs)
			if err != nil {
				return err
			}
			return t.addProgramDepth(p, "interpreter of "+path, r, pathDirs, iargs[1:], depth+1)
		}
		return t.addProgramDepth(ip, "interpreter of "+path, r, pathDirs, iargs, depth+1)
	}
	res, err := r.Resolve(path)
	if err != nil {
		return fmt.Errorf("gramine: %s %s: %w", why, path, err)
	}
	if res.Interpreter != "" {
		if err := t.addFile(res.Interpreter, "dynamic loader", ""); err != nil {
			return err
		}
	}
	for _, l := range res.Libraries {
		if err := t.addFile(l, "shared library", ""); err != nil {
			return err
		}
	}
	if pythonName.MatchString(filepath.Base(path)) {
		return t.addPython(path, args, r)
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// addDir trusts a directory (measured recursively by gramine-sgx-sign) and
// the shared libraries its ELF objects need.
func (t *trustSet) addDir(dir, why string, r *elfdeps.Resolver) error {
	t.add(TrustedFile{Path: strings.TrimSuffix(dir, "/") + "/", Why: why})
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if !strings.HasSuffix(p, ".so") && !strings.Contains(filepath.Base(p), ".so.") {
			return nil
		}
		if ok, _ := elfdeps.IsELF(p); !ok {
			return nil
		}
		res, err := r.Resolve(p)
		if err != nil {
			t.skipped = append(t.skipped, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		for _, l := range res.Libraries {
			if !strings.HasPrefix(l, strings.TrimSuffix(dir, "/")+"/") {
				t.add(TrustedFile{Path: l, Why: "shared library"})
			}
		}
		return nil
	})
}

func shebang(path string) (interp, arg string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line := string(buf[:n])
	if !strings.HasPrefix(line, "#!") {
		return "", "", fmt.Errorf("gramine: %s is neither an ELF executable nor a #! script", path)
	}
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(fields) == 0 || !filepath.IsAbs(fields[0]) {
		return "", "", fmt.Errorf("gramine: %s: #! line names no absolute interpreter", path)
	}
	if len(fields) > 1 {
		arg = fields[1]
	}
	return fields[0], arg, nil
}

// lookPath finds a program the way the exec engine will: absolute paths as
// they are, bare names in the fixed PATH (never the host's).
func lookPath(prog string, dirs []string) (string, error) {
	if filepath.IsAbs(prog) {
		if !fileExists(prog) {
			return "", fmt.Errorf("gramine: program %s does not exist on this host", prog)
		}
		return prog, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("gramine: program %q not found in %s", prog, strings.Join(dirs, ":"))
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
