package filecrypt

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/envelope"
)

func newKey(t *testing.T) *envelope.LocalKey {
	t.Helper()
	s := make([]byte, 32)
	rand.Read(s)
	k, err := envelope.NewLocalKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

var quiet = Options{Quiet: true}

func TestFileRoundTrip(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "people.csv")
	pt := []byte("name,age\nAndy,30\nJustin,19\n")
	os.WriteFile(in, pt, 0o644)
	res, err := EncryptFile(in, "", k, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if res.Output != in+".ppml" || res.Type != "csv" || res.Bytes != int64(len(pt)) || res.KeyRef != k.Ref().String() {
		t.Fatalf("result %+v", res)
	}
	os.Remove(in)
	res, err = DecryptFile(in+".ppml", "", k, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(in); !bytes.Equal(got, pt) || res.Output != in {
		t.Fatalf("decrypted %q to %s", got, res.Output)
	}
	if st, _ := os.Stat(in); st.Mode().Perm() != 0o600 {
		t.Fatalf("plaintext output mode %v", st.Mode())
	}
	// An explicit type wins over the extension.
	res, err = EncryptFile(in, filepath.Join(dir, "m.ppml"), k, Options{Quiet: true, Type: envelope.TypeModel})
	if err != nil || res.Type != "model" {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestStdinStdout(t *testing.T) {
	k := newKey(t)
	pt := randBytes(3<<20 + 5)
	var ct, out bytes.Buffer
	if _, err := EncryptFile("-", "", k, Options{Quiet: true, Stdin: bytes.NewReader(pt), Stdout: &ct}); err != nil {
		t.Fatal(err)
	}
	h, _ := envelope.ReadHeader(bytes.NewReader(ct.Bytes()))
	if h.LengthKnown() {
		t.Fatal("stdin input recorded a length")
	}
	if _, err := DecryptFile("-", "", k, Options{Quiet: true, Stdin: bytes.NewReader(ct.Bytes()), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), pt) {
		t.Fatal("stdin/stdout round trip differs")
	}
}

// stdoutFile is a file holding prefix, positioned at its end, as a shell
// redirection (flag 0: >, os.O_APPEND: >>) would give a command.
func stdoutFile(t *testing.T, flag int, prefix string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stdout")
	os.WriteFile(p, []byte(prefix), 0o600)
	f, err := os.OpenFile(p, os.O_WRONLY|flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekEnd)
	t.Cleanup(func() { f.Close() })
	return f
}

// TestStdoutRedirectedToFile: decrypting to a stdout that is a regular file
// (written in place, in one pass) appends the plaintext after what the file
// held and leaves the offset at its end, so later writes follow it.
func TestStdoutRedirectedToFile(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	pt := randBytes(5<<20 + 11)
	plain := filepath.Join(dir, "data.bin")
	os.WriteFile(plain, pt, 0o600)
	if _, err := EncryptFile(plain, "", k, quiet); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{0, os.O_APPEND} {
		sf := stdoutFile(t, flag, "head\n")
		if _, err := DecryptFile(plain+".ppml", "-", k, Options{Quiet: true, Stdout: sf}); err != nil {
			t.Fatal(err)
		}
		sf.Write([]byte("tail\n"))
		if b, _ := os.ReadFile(sf.Name()); string(b) != "head\n"+string(pt)+"tail\n" {
			t.Fatalf("flags %#x: stdout file holds %d bytes, want %d", flag, len(b), len(pt)+10)
		}
		// Encrypting to it works the same way.
		sf = stdoutFile(t, flag, "")
		if _, err := EncryptFile(plain, "-", k, Options{Quiet: true, Stdout: sf}); err != nil {
			t.Fatal(err)
		}
		got, err := DecryptFile(sf.Name(), filepath.Join(t.TempDir(), "o"), k, quiet)
		if err != nil || got.Bytes != int64(len(pt)) {
			t.Fatalf("flags %#x: encrypted to stdout: %v", flag, err)
		}
	}
}

// TestEncryptToStdoutFileFails: encrypting to a stdout redirected to a
// file writes the segments in place; when a write fails (here the file
// size limit, EFBIG) the file is cut back to what it held before.
func TestEncryptToStdoutFileFails(t *testing.T) {
	k := newKey(t)
	plain := filepath.Join(t.TempDir(), "data.bin")
	os.WriteFile(plain, randBytes(5<<20), 0o600)
	sf := stdoutFile(t, 0, "before\n")
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 2 << 20
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip("cannot lower the file size limit:", err)
	}
	_, err := EncryptFile(plain, "-", k, Options{Quiet: true, Stdout: sf})
	unix.Setrlimit(unix.RLIMIT_FSIZE, &old)
	if err == nil || !strings.Contains(err.Error(), "write segment") {
		t.Fatalf("encrypt beyond the file size limit: %v", err)
	}
	if b, _ := os.ReadFile(sf.Name()); string(b) != "before\n" {
		t.Fatalf("stdout file holds %d bytes after a failed encryption", len(b))
	}
	if off, _ := sf.Seek(0, io.SeekCurrent); off != 7 {
		t.Fatalf("stdout file offset %d after a failed encryption", off)
	}
}

func TestGuessType(t *testing.T) {
	for name, want := range map[string]envelope.ContentType{
		"a.csv": envelope.TypeCSV, "a.CSV.ppml": envelope.TypeCSV, "b.json": envelope.TypeJSON, "c.jsonl": envelope.TypeJSON,
		"d.parquet": envelope.TypeParquet, "m.ubj": envelope.TypeModel, "x": envelope.TypeBytes, "x.bin": envelope.TypeBytes,
	} {
		if got := GuessType(name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// TestBadInput covers the list at the file level: every case fails
// with a message naming the problem and leaves no output behind.
func TestBadInput(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	pt := randBytes(3<<20 + 7)
	plain := filepath.Join(dir, "data.bin")
	os.WriteFile(plain, pt, 0o600)
	good := filepath.Join(dir, "data.bin.ppml")
	if _, err := EncryptFile(plain, good, k, quiet); err != nil {
		t.Fatal(err)
	}
	ct, _ := os.ReadFile(good)
	hl := len(ct) - int(envelope.BodyLen(uint64(len(pt)), envelope.DefaultSegmentSize))
	seg := envelope.DefaultSegmentSize + envelope.TagSize

	decryptFails := func(t *testing.T, data []byte, kr envelope.KeyResolver, want error, words string) {
		t.Helper()
		d := t.TempDir()
		in := filepath.Join(d, "in.ppml")
		os.WriteFile(in, data, 0o600)
		out := filepath.Join(d, "out")
		_, err := DecryptFile(in, out, kr, quiet)
		if err == nil {
			t.Fatal("decrypt succeeded")
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("error %q is not %v", err, want)
		}
		if !strings.Contains(err.Error(), words) {
			t.Fatalf("error %q does not say %q", err, words)
		}
		if got := names(t, d); len(got) != 1 {
			t.Fatalf("left behind: %v", got)
		}
		// From a file to stdout: nothing comes out of a bad file.
		var fileOut bytes.Buffer
		DecryptFile(in, "-", kr, Options{Quiet: true, Stdout: &fileOut})
		if fileOut.Len() != 0 {
			t.Fatalf("stdout got %d bytes from a bad file", fileOut.Len())
		}
		// To stdout redirected to a file (one pass, in place): the file is
		// cut back to what it held before; in append mode (two passes)
		// nothing is appended.
		for _, flag := range []int{0, os.O_APPEND} {
			sf := stdoutFile(t, flag, "before\n")
			DecryptFile(in, "-", kr, Options{Quiet: true, Stdout: sf})
			if b, _ := os.ReadFile(sf.Name()); string(b) != "before\n" {
				t.Fatalf("stdout file (flags %#x) holds %d bytes after a bad file", flag, len(b))
			}
			if off, _ := sf.Seek(0, io.SeekCurrent); off != 7 {
				t.Fatalf("stdout file offset %d after a bad file", off)
			}
		}
		// From stdin, only whole authenticated segments come out.
		var stdout bytes.Buffer
		DecryptFile("-", "", kr, Options{Quiet: true, Stdin: bytes.NewReader(data), Stdout: &stdout})
		if !bytes.HasPrefix(pt, stdout.Bytes()) || stdout.Len()%envelope.DefaultSegmentSize != 0 {
			t.Fatalf("stdout got %d bytes that are not whole authenticated segments", stdout.Len())
		}
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(ct)) }

	t.Run("wrong key", func(t *testing.T) {
		decryptFails(t, ct, newKey(t), envelope.ErrWrongKey, "wrong key: the file needs local key "+k.ID())
	})
	t.Run("truncation", func(t *testing.T) {
		for _, n := range []int{0, 5, hl - 1, hl, hl + 100, hl + seg, len(ct) - 1} {
			want, words := error(envelope.ErrTruncated), "truncated"
			if n == 0 {
				want, words = envelope.ErrNotEnvelope, "empty"
			}
			decryptFails(t, ct[:n], k, want, words)
		}
	})
	t.Run("flipped bit", func(t *testing.T) {
		for _, off := range []int{8, 30, hl - 1, hl, hl + seg + 3, len(ct) - 1} {
			decryptFails(t, mutate(func(b []byte) []byte { b[off] ^= 0x10; return b }), k, nil, "")
		}
		decryptFails(t, mutate(func(b []byte) []byte { b[hl+2*seg+10] ^= 1; return b }), k, envelope.ErrAuth, "segment 2: authentication failed")
	})
	t.Run("two segments swapped", func(t *testing.T) {
		decryptFails(t, mutate(func(b []byte) []byte {
			a := bytes.Clone(b[hl : hl+seg])
			copy(b[hl:], b[hl+seg:hl+2*seg])
			copy(b[hl+seg:], a)
			return b
		}), k, envelope.ErrAuth, "segment 0: authentication failed")
	})
	t.Run("segment from another file under the same key spliced in", func(t *testing.T) {
		other := filepath.Join(dir, "other.ppml")
		EncryptFile(plain, other, k, quiet)
		oc, _ := os.ReadFile(other)
		decryptFails(t, mutate(func(b []byte) []byte { copy(b[hl+seg:hl+2*seg], oc[hl+seg:]); return b }), k, envelope.ErrAuth, "segment 1")
	})
	t.Run("header of file A on the body of file B", func(t *testing.T) {
		other := filepath.Join(dir, "other2.ppml")
		EncryptFile(plain, other, k, quiet)
		oc, _ := os.ReadFile(other)
		decryptFails(t, append(bytes.Clone(ct[:hl]), oc[hl:]...), k, envelope.ErrAuth, "does not belong to this header")
	})
	t.Run("appended bytes after the last segment", func(t *testing.T) {
		decryptFails(t, append(bytes.Clone(ct), 'x'), k, envelope.ErrTrailingData, "appended")
	})
	t.Run("zero-length file", func(t *testing.T) {
		decryptFails(t, nil, k, envelope.ErrNotEnvelope, "empty")
	})
	t.Run("empty plaintext round-trips", func(t *testing.T) {
		d := t.TempDir()
		e := filepath.Join(d, "empty")
		os.WriteFile(e, nil, 0o600)
		if _, err := EncryptFile(e, "", k, quiet); err != nil {
			t.Fatal(err)
		}
		os.Remove(e)
		if _, err := DecryptFile(e+".ppml", "", k, quiet); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(e); err != nil || len(b) != 0 {
			t.Fatalf("%v %d", err, len(b))
		}
	})
	t.Run("a file that is not an envelope", func(t *testing.T) {
		decryptFails(t, []byte("name,age\n"), k, envelope.ErrNotEnvelope, "not a ppml envelope")
	})
	t.Run("missing or unreadable paths", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "o")
		if _, err := EncryptFile(filepath.Join(dir, "missing.csv"), out, k, quiet); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.csv") {
			t.Fatalf("encrypt missing: %v", err)
		}
		if _, err := DecryptFile(filepath.Join(dir, "missing.ppml"), out, k, quiet); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("decrypt missing: %v", err)
		}
		if _, err := EncryptFile(dir, out, k, quiet); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("directory input: %v", err)
		}
		// /proc/self/mem opens but every read at offset 0 fails (EIO), even for root.
		if _, err := EncryptFile("/proc/self/mem", out, k, quiet); err == nil || !strings.Contains(err.Error(), "input/output error") {
			t.Fatalf("unreadable input: %v", err)
		}
		if os.Getuid() != 0 {
			locked := filepath.Join(t.TempDir(), "locked")
			os.WriteFile(locked, []byte("x"), 0)
			if _, err := EncryptFile(locked, out, k, quiet); !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("permission: %v", err)
			}
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatal("output written")
		}
	})
	t.Run("output directory missing", func(t *testing.T) {
		out := filepath.Join(dir, "nodir", "x.ppml")
		if _, err := EncryptFile(plain, out, k, quiet); err == nil || !strings.Contains(err.Error(), "output directory "+filepath.Join(dir, "nodir")+" does not exist") {
			t.Fatalf("encrypt: %v", err)
		}
		if _, err := DecryptFile(good, filepath.Join(dir, "nodir", "x"), k, quiet); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("decrypt: %v", err)
		}
	})
	t.Run("existing output is not replaced without force", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "x")
		os.WriteFile(out, []byte("keep"), 0o600)
		if _, err := DecryptFile(good, out, k, quiet); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("%v", err)
		}
		if b, _ := os.ReadFile(out); string(b) != "keep" {
			t.Fatal("replaced")
		}
		if _, err := DecryptFile(good, out, k, Options{Quiet: true, Force: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := EncryptFile(plain, plain, k, Options{Quiet: true, Force: true}); err == nil {
			t.Fatal("encrypting a file onto itself")
		}
	})
	t.Run("disk full while writing", func(t *testing.T) {
		small := mountSmallTmpfs(t)
		if _, err := EncryptFile(plain, filepath.Join(small, "x.ppml"), k, quiet); err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Fatalf("encrypt: %v", err)
		}
		if _, err := DecryptFile(good, filepath.Join(small, "x"), k, quiet); err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Fatalf("decrypt: %v", err)
		}
		if got := names(t, small); len(got) != 0 {
			t.Fatalf("left behind on the full disk: %v", got)
		}
	})
}

func mountSmallTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs (%v: %s); envelope's size-limited writer test covers disk full", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

func TestTree(t *testing.T) {
	k := newKey(t)
	root := t.TempDir()
	src := filepath.Join(root, "src")
	files := map[string][]byte{
		"a.csv":          []byte("x,y\n1,2\n"),
		"sub/b.json":     []byte(`{"a":1}`),
		"sub/deep/c.bin": randBytes(70000),
		"empty":          nil,
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	}
	os.MkdirAll(filepath.Join(src, "emptydir"), 0o755)
	os.Symlink("a.csv", filepath.Join(src, "link"))
	enc := filepath.Join(root, "enc")
	res, err := EncryptTree(src, enc, k, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != len(files) || len(res.Skipped) != 1 {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(enc, "sub/deep/c.bin.ppml")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(enc, "README"), []byte("not encrypted"), 0o644)
	dec := filepath.Join(root, "dec")
	res, err = DecryptTree(enc, dec, k, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != len(files) || len(res.Skipped) != 1 {
		t.Fatalf("decrypt result %+v", res)
	}
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(dec, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dec, "emptydir")); err != nil || !st.IsDir() {
		t.Fatal("empty directory not mirrored")
	}
	// A second run refuses before writing anything.
	before := names(t, dec)
	if _, err := DecryptTree(enc, dec, k, quiet); !strings.Contains(fmtErr(err), "already exist") {
		t.Fatalf("rerun: %v", err)
	}
	if after := names(t, dec); len(after) != len(before) {
		t.Fatal("rerun wrote files")
	}
	if _, err := EncryptTree(src, filepath.Join(src, "sub", "out"), k, quiet); !strings.Contains(fmtErr(err), "inside the input tree") {
		t.Fatalf("output inside input: %v", err)
	}
	if _, err := EncryptTree(src, filepath.Join(root, "no", "out"), k, quiet); !strings.Contains(fmtErr(err), "does not exist") {
		t.Fatalf("missing parent: %v", err)
	}
	if _, err := EncryptTree(filepath.Join(root, "nope"), filepath.Join(root, "o2"), k, quiet); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing input: %v", err)
	}
	// A tampered file stops the tree with its name; the files before it are complete.
	bad := filepath.Join(enc, "sub", "b.json.ppml")
	data, _ := os.ReadFile(bad)
	data[len(data)-1] ^= 1
	os.WriteFile(bad, data, 0o600)
	_, err = DecryptTree(enc, filepath.Join(root, "dec2"), k, quiet)
	if err == nil || !strings.Contains(err.Error(), "b.json.ppml") {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "dec2", "sub", "b.json")); err == nil {
		t.Fatal("tampered file produced output")
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
