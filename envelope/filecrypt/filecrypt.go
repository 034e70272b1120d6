// Package filecrypt encrypts and decrypts files and directory trees with the
// envelope format: the data-owner commands' logic, with paths, stdin/stdout,
// no-clobber and atomic outputs.
package filecrypt

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/progress"
)

// Ext is the suffix of encrypted files.
const Ext = ".ppml"

// Options for the operations.
type Options struct {
	Force bool                 // replace existing outputs
	Type  envelope.ContentType // encrypt: content type; zero guesses from the name
	Quiet bool                 // no progress bar
	// Stdin, Stdout and Progress default to the process's streams.
	Stdin    io.Reader
	Stdout   io.Writer
	Progress *os.File
}

func (o *Options) stdin() io.Reader {
	if o.Stdin != nil {
		return o.Stdin
	}
	return os.Stdin
}

func (o *Options) stdout() io.Writer {
	if o.Stdout != nil {
		return o.Stdout
	}
	return os.Stdout
}

func (o *Options) bar(label string, total int64) *progress.Bar {
	out := o.Progress
	if out == nil {
		out = os.Stderr
	}
	return progress.New(out, label, total, o.Quiet)
}

// Result describes one file processed.
type Result struct {
	Input  string `json:"input"`
	Output string `json:"output"`
	Type   string `json:"type"`
	Bytes  int64  `json:"plaintext_bytes"`
	KeyRef string `json:"key_ref"`
}

// GuessType maps a file name's extension to a content type.
func GuessType(name string) envelope.ContentType {
	switch strings.ToLower(filepath.Ext(strings.TrimSuffix(name, Ext))) {
	case ".csv", ".tsv":
		return envelope.TypeCSV
	case ".json", ".jsonl", ".ndjson":
		return envelope.TypeJSON
	case ".parquet", ".pq":
		return envelope.TypeParquet
	case ".model", ".ubj", ".xgb", ".onnx", ".pt", ".pth", ".safetensors", ".gguf":
		return envelope.TypeModel
	}
	return envelope.TypeBytes
}

// EncryptOutput is the default output name: IN.ppml, or stdout for stdin.
func EncryptOutput(in string) string {
	if in == "-" {
		return "-"
	}
	return in + Ext
}

// DecryptOutput is the default output name: IN without .ppml, or stdout for stdin.
func DecryptOutput(in string) (string, error) {
	if in == "-" {
		return "-", nil
	}
	out, ok := strings.CutSuffix(in, Ext)
	if !ok || out == "" || strings.HasSuffix(out, string(filepath.Separator)) {
		return "", fmt.Errorf("cannot name the output: %s does not end in %s; give -o", in, Ext)
	}
	return out, nil
}

// openInput opens a regular input file (or stdin for "-") and returns its size
// (-1 when unknown).
func openInput(in string, o *Options) (io.Reader, func(), int64, error) {
	if in == "-" {
		return o.stdin(), func() {}, -1, nil
	}
	f, err := os.Open(in)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("input: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("input: %w", err)
	}
	if st.IsDir() {
		f.Close()
		return nil, nil, 0, fmt.Errorf("input %s is a directory (use -r for a tree)", in)
	}
	size := int64(-1)
	if st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, func() { f.Close() }, size, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// EncryptFile encrypts in to out ("" for the default name; "-" for
// stdin/stdout). A file output appears only complete, or not at all.
//
// A regular input file is read with positional reads on every core (the
// segments are independent); a file output is written the same way, each
// segment straight to its place. Standard input is read as a stream.
func EncryptFile(in, out string, kw envelope.KeyWrapper, o Options) (Result, error) {
	if out == "" {
		out = EncryptOutput(in)
	}
	if in != "-" && out != "-" && sameFile(in, out) {
		return Result{}, fmt.Errorf("output %s is the input file", out)
	}
	src, done, size, err := openInput(in, &o)
	if err != nil {
		return Result{}, err
	}
	defer done()
	typ := o.Type
	if typ == 0 {
		typ = GuessType(in)
	}
	opts := &envelope.Options{ContentType: typ, Size: size, SizeKnown: size >= 0}
	bar := o.bar("encrypt "+displayName(in), size)
	defer bar.Clear() // after an error; a no-op after Done
	// copyIn encrypts the whole input into w: positionally from a regular
	// file, else as a stream.
	copyIn := func(w interface {
		io.Writer
		ReadFromAt(io.ReaderAt, int64) (int64, error)
	}) (int64, error) {
		// Size 0 may be a /proc file that stats empty but has content:
		// the stream path reads it and fails on the declared length.
		if f, ok := src.(*os.File); ok && size > 0 {
			n, err := w.ReadFromAt(bar.ReaderAt(f), size)
			if err == nil {
				err = grewCheck(f, in, size)
			}
			return n, err
		}
		return io.Copy(w, bar.Reader(src))
	}
	var hdr *envelope.Header
	var n int64
	inFile, _ := src.(*os.File)
	if sf, start, ok := rewindableStdout(out, o); ok && inFile != nil && size > 0 {
		// Standard output is a regular file that ends where we start (a
		// shell redirection): the header goes there in order, then every
		// segment straight to its place, as into a file output; on failure
		// the file is cut back to where it was.
		w, err := envelope.NewWriter(sf, kw, opts)
		if err != nil {
			return Result{}, cutBack(sf, start, err)
		}
		body := start + int64(w.Header().Len())
		if n, err = w.ReadFromAtTo(bar.ReaderAt(inFile), size, &offsetFile{sf, body}); err == nil {
			err = grewCheck(inFile, in, size)
		}
		if err == nil {
			_, err = sf.Seek(body+int64(envelope.BodyLen(uint64(size), w.Header().SegmentSize)), io.SeekStart)
		}
		if err != nil {
			return Result{}, cutBack(sf, start, err)
		}
		hdr = w.Header()
	} else if out == "-" {
		w, err := envelope.NewWriter(o.stdout(), kw, opts)
		if err != nil {
			return Result{}, err
		}
		if n, err = copyIn(w); err == nil {
			err = w.Close()
		}
		if err != nil {
			return Result{}, err
		}
		hdr = w.Header()
	} else {
		w, err := envelope.CreateFile(out, kw, opts, o.Force)
		if err != nil {
			return Result{}, outputErr(err)
		}
		defer w.Abort()
		if n, err = copyIn(w); err != nil {
			return Result{}, err
		}
		bar.Phase("sync " + displayName(out) + " to disk")
		if err = w.Close(); err != nil {
			return Result{}, err
		}
		hdr = w.Header()
	}
	bar.Done()
	return Result{Input: in, Output: out, Type: typ.String(), Bytes: n, KeyRef: hdr.KeyRef.String()}, nil
}

// grewCheck fails if the input has more than size bytes now: the stream
// path fails on a file that grew, and so do the positional ones.
func grewCheck(f *os.File, in string, size int64) error {
	var b [1]byte
	if m, _ := f.ReadAt(b[:], size); m > 0 {
		return fmt.Errorf("input %s grew while it was being encrypted (it had %d bytes when encryption started)", in, size)
	}
	return nil
}

// cutBack truncates standard output (a regular file) back to start after
// err, so a failed command leaves there what was there before.
func cutBack(sf *os.File, start int64, err error) error {
	if terr := sf.Truncate(start); terr != nil {
		return fmt.Errorf("%w (and standard output could not be cut back to where it started: %v)", err, terr)
	}
	sf.Seek(start, io.SeekStart)
	return err
}

// displayName is how progress lines name a file: its base name, or stdin.
func displayName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return filepath.Base(path)
}

// DecryptFile decrypts in to out ("" for the default name; "-" for
// stdin/stdout). A file output appears only if every segment authenticated.
// To stdout from a file, a bad file writes nothing: to a pipe or terminal
// every segment is authenticated in a first pass; to a regular file (a
// shell redirection) the plaintext is written in one pass and cut off again
// if a segment fails. From stdin, data streams: only authenticated segments
// are written and output stops at the first failure.
func DecryptFile(in, out string, kr envelope.KeyResolver, o Options) (Result, error) {
	if out == "" {
		var err error
		if out, err = DecryptOutput(in); err != nil {
			return Result{}, err
		}
	}
	if in != "-" && out != "-" && sameFile(in, out) {
		return Result{}, fmt.Errorf("output %s is the input file", out)
	}
	var res Result
	var err error
	if in == "-" {
		res, err = decryptStream(out, kr, o)
	} else {
		res, err = decryptFile(in, out, kr, o)
	}
	res.Input = in
	return res, err
}

// decryptStream decrypts standard input: segments are authenticated as they
// arrive, on every core, and written in order.
func decryptStream(out string, kr envelope.KeyResolver, o Options) (Result, error) {
	r, err := envelope.NewReader(o.stdin(), kr)
	if err != nil {
		return Result{}, fmt.Errorf("stdin: %w", err)
	}
	hdr := r.Header()
	total := int64(-1)
	if hdr.LengthKnown() {
		total = int64(hdr.PlaintextLength)
	}
	bar := o.bar("decrypt stdin", total)
	defer bar.Clear()
	var n int64
	if out == "-" {
		if n, err = r.WriteTo(bar.Writer(o.stdout())); err != nil {
			return Result{}, err
		}
	} else {
		af, err := atomicfile.Create(out, atomicfile.Options{Perm: 0o600, Overwrite: o.Force})
		if err != nil {
			return Result{}, outputErr(err)
		}
		defer af.Abort()
		if n, err = r.WriteTo(bar.Writer(af)); err != nil {
			return Result{}, err
		}
		bar.Phase("sync " + displayName(out) + " to disk")
		if err := af.Commit(); err != nil {
			return Result{}, err
		}
	}
	bar.Done()
	return Result{Output: out, Type: hdr.ContentType.String(), Bytes: n, KeyRef: hdr.KeyRef.String()}, nil
}

// decryptFile decrypts a regular file with positional reads on every core.
// To a file, each segment's plaintext goes straight to its place in the
// (temporary) output; to stdout, a first pass authenticates every segment
// and a second writes them in order.
func decryptFile(in, out string, kr envelope.KeyResolver, o Options) (Result, error) {
	st, err := os.Stat(in)
	if err != nil {
		return Result{}, fmt.Errorf("input: %w", err)
	}
	if st.IsDir() {
		return Result{}, fmt.Errorf("input %s is a directory (use -r for a tree)", in)
	}
	// Open checks the key, the layout and the final segment before any
	// output exists. Reads are metered for the verification pass.
	osf, err := os.Open(in)
	if err != nil {
		return Result{}, fmt.Errorf("input: %w", err)
	}
	defer osf.Close()
	if st, err = osf.Stat(); err != nil {
		return Result{}, fmt.Errorf("input: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Result{}, fmt.Errorf("input %s is not a regular file", in)
	}
	mf := &meteredFile{f: osf}
	ef, err := envelope.Open(mf, st.Size(), kr)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", in, err)
	}
	defer ef.Close()
	hdr, size := ef.Header(), ef.Size()
	var n int64
	if sf, start, ok := rewindableStdout(out, o); ok {
		// Standard output is a regular file that ends where we start (a
		// shell redirection): write in place in one pass, and cut it back
		// to where it was if any segment fails, so a bad file leaves no
		// output there either.
		bar := o.bar("decrypt "+displayName(in), size)
		defer bar.Clear()
		n, err = ef.WriteAllAt(bar.WriterAt(&offsetFile{sf, start}))
		if err == nil {
			_, err = sf.Seek(start+n, io.SeekStart)
		}
		if err != nil {
			return Result{}, cutBack(sf, start, fmt.Errorf("%s: %w", in, err))
		}
		bar.Done()
	} else if out == "-" {
		// Authenticate the whole file before the first byte goes out, so a
		// bad file yields no output on a pipe or terminal either.
		vbar := o.bar("verify "+displayName(in), st.Size()-int64(hdr.Len()))
		mf.bar.Store(vbar)
		err = ef.Verify()
		mf.bar.Store(nil)
		if err != nil {
			vbar.Clear()
			return Result{}, fmt.Errorf("%s: %w", in, err)
		}
		vbar.Done()
		bar := o.bar("decrypt "+displayName(in), size)
		defer bar.Clear()
		if n, err = ef.WriteTo(bar.Writer(o.stdout())); err != nil {
			return Result{}, fmt.Errorf("%s: %w", in, err)
		}
		bar.Done()
	} else {
		af, err := atomicfile.Create(out, atomicfile.Options{Perm: 0o600, Overwrite: o.Force})
		if err != nil {
			return Result{}, outputErr(err)
		}
		defer af.Abort()
		bar := o.bar("decrypt "+displayName(in), size)
		defer bar.Clear()
		if n, err = ef.WriteAllAt(bar.WriterAt(af)); err != nil {
			return Result{}, fmt.Errorf("%s: %w", in, err)
		}
		bar.Phase("sync " + displayName(out) + " to disk")
		if err := af.Commit(); err != nil {
			return Result{}, fmt.Errorf("%s: %w", in, err)
		}
		bar.Done()
	}
	return Result{Output: out, Type: hdr.ContentType.String(), Bytes: n, KeyRef: hdr.KeyRef.String()}, nil
}

// rewindableStdout returns standard output and its offset when out is "-"
// and standard output is a regular file that ends at its offset and is not
// in append mode: what the command writes there can be taken back.
func rewindableStdout(out string, o Options) (*os.File, int64, bool) {
	if out != "-" {
		return nil, 0, false
	}
	f, ok := o.stdout().(*os.File)
	if !ok {
		return nil, 0, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, 0, false
	}
	if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_APPEND != 0 {
		return nil, 0, false
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil || off != st.Size() {
		return nil, 0, false
	}
	return f, off, true
}

// offsetFile writes at positions relative to base.
type offsetFile struct {
	f    *os.File
	base int64
}

func (o *offsetFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, o.base+off) }

// meteredFile counts positional reads on the progress bar it holds, if
// any; the bar changes between passes.
type meteredFile struct {
	f   *os.File
	bar atomic.Pointer[progress.Bar]
}

func (m *meteredFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := m.f.ReadAt(p, off)
	m.bar.Load().Add(n)
	return n, err
}

func outputErr(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w (use --force to replace it)", err)
	}
	return err
}

type job struct{ in, out string }

// plan lists the files of a tree and their mirror paths. keep selects input
// files and maps their relative name to the output's.
func plan(inDir, outDir string, force bool, rename func(rel string) (string, bool)) ([]job, []string, []string, error) {
	st, err := os.Stat(inDir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("input: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, nil, fmt.Errorf("input %s is not a directory", inDir)
	}
	absIn, _ := filepath.Abs(inDir)
	absOut, _ := filepath.Abs(outDir)
	if rel, err := filepath.Rel(absIn, absOut); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return nil, nil, nil, fmt.Errorf("output directory %s is inside the input tree %s", outDir, inDir)
	}
	if ost, err := os.Stat(outDir); err == nil && !ost.IsDir() {
		return nil, nil, nil, fmt.Errorf("output %s exists and is not a directory", outDir)
	} else if err != nil {
		parent := filepath.Dir(filepath.Clean(outDir))
		if pst, perr := os.Stat(parent); perr != nil || !pst.IsDir() {
			return nil, nil, nil, fmt.Errorf("output directory %s does not exist", parent)
		}
	}
	var jobs []job
	var dirs, skipped []string
	err = filepath.WalkDir(inDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		rel, _ := filepath.Rel(inDir, p)
		switch {
		case d.IsDir():
			dirs = append(dirs, filepath.Join(outDir, rel))
		case d.Type().IsRegular():
			name, ok := rename(rel)
			if !ok {
				skipped = append(skipped, p)
				return nil
			}
			jobs = append(jobs, job{p, filepath.Join(outDir, name)})
		default:
			skipped = append(skipped, p) // symlinks and special files
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if !force {
		var exist []string
		for _, j := range jobs {
			if _, err := os.Lstat(j.out); err == nil {
				exist = append(exist, j.out)
			}
		}
		if len(exist) > 0 {
			sort.Strings(exist)
			more := ""
			if len(exist) > 3 {
				more = fmt.Sprintf(" and %d more", len(exist)-3)
				exist = exist[:3]
			}
			return nil, nil, nil, fmt.Errorf("outputs already exist: %s%s (use --force to replace them)", strings.Join(exist, ", "), more)
		}
	}
	return jobs, dirs, skipped, nil
}

func mkdirs(dirs []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create output directory: %w", err)
		}
	}
	return nil
}

// TreeResult lists what a tree operation did.
type TreeResult struct {
	Files   []Result `json:"files"`
	Skipped []string `json:"skipped,omitempty"`
}

// EncryptTree mirrors inDir into outDir, encrypting every regular file to
// NAME.ppml. Symbolic links and special files are skipped and listed. It
// checks for existing outputs before writing anything and stops at the first
// failure; every output written is complete.
func EncryptTree(inDir, outDir string, kw envelope.KeyWrapper, o Options) (TreeResult, error) {
	jobs, dirs, skipped, err := plan(inDir, outDir, o.Force, func(rel string) (string, bool) { return rel + Ext, true })
	if err != nil {
		return TreeResult{}, err
	}
	res := TreeResult{Skipped: skipped}
	if err := mkdirs(dirs); err != nil {
		return res, err
	}
	for _, j := range jobs {
		r, err := EncryptFile(j.in, j.out, kw, o)
		if err != nil {
			return res, fmt.Errorf("%s: %w", j.in, err)
		}
		res.Files = append(res.Files, r)
	}
	return res, nil
}

// DecryptTree mirrors inDir into outDir, decrypting every NAME.ppml to NAME;
// other files are skipped and listed.
func DecryptTree(inDir, outDir string, kr envelope.KeyResolver, o Options) (TreeResult, error) {
	jobs, dirs, skipped, err := plan(inDir, outDir, o.Force, func(rel string) (string, bool) {
		name, ok := strings.CutSuffix(rel, Ext)
		return name, ok && filepath.Base(rel) != Ext
	})
	if err != nil {
		return TreeResult{}, err
	}
	res := TreeResult{Skipped: skipped}
	if err := mkdirs(dirs); err != nil {
		return res, err
	}
	for _, j := range jobs {
		r, err := DecryptFile(j.in, j.out, kr, o)
		if err != nil {
			return res, err
		}
		res.Files = append(res.Files, r)
	}
	return res, nil
}
