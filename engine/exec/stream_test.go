package exec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/memfd/memfdtest"
)

// memSink records what a stream holds.
type memSink struct {
	dirs  []string
	files map[string]string
}

func (s *memSink) Dir(rel string) error { s.dirs = append(s.dirs, rel); return nil }

func (s *memSink) File(rel string, size int64, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.files == nil {
		s.files = map[string]string{}
	}
	s.files[rel] = string(b)
	return nil
}

func TestStreamRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	entries := []streamEntry{
		{rel: "data", file: memInput(t, "d", "rows\n")},
		{rel: "parts"},
		{rel: "parts/sub/b.csv", file: memInput(t, "b", "")},
	}
	if err := writeStream(&buf, entries); err != nil {
		t.Fatal(err)
	}
	var s memSink
	if err := readStream(&buf, &s); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.dirs, s.files) != "[parts] map[data:rows\n parts/sub/b.csv:]" {
		t.Fatalf("decoded %v %v", s.dirs, s.files)
	}

	// Into a directory: read-only files, parents made as needed.
	root := t.TempDir()
	buf.Reset()
	writeStream(&buf, entries)
	if err := readStream(&buf, dirSink{root: root}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "parts/sub/b.csv"))
	if err != nil || st.Mode().Perm() != 0o400 {
		t.Fatalf("written file: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "data")); string(b) != "rows\n" {
		t.Fatalf("data %q", b)
	}
}

func record(kind byte, rel string, data ...string) []byte {
	b := []byte{kind, byte(len(rel) >> 8), byte(len(rel))}
	b = append(b, rel...)
	if kind == recordFile {
		n := len(strings.Join(data, ""))
		b = append(b, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		b = append(b, strings.Join(data, "")...)
	}
	return b
}

// Every malformed stream is refused with an error that says what is wrong.
func TestStreamRefuses(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	end := []byte{0}
	for name, c := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":      {nil, "ends early"},
		"no end":     {record('f', "a", "x"), "ends early"},
		"short data": {record('f', "a", "xyz")[:14], "ends early"},
		"kind":       {cat([]byte{'x'}, end), "unknown record kind"},
		"zero path":  {cat([]byte{'d', 0, 0}, end), "path length 0"},
		"absolute":   {cat(record('d', "/etc"), end), "not a clean relative path"},
		"dotdot":     {cat(record('f', "a/../../x", "1"), end), "not a clean relative path"},
		"up":         {cat(record('f', "..", "1"), end), "not a clean relative path"},
		"unclean":    {cat(record('f', "a//b", "1"), end), "not a clean relative path"},
		"dot":        {cat(record('d', "."), end), "not a clean relative path"},
		"nul":        {cat(record('d', "a\x00b"), end), "not a clean relative path"},
		"twice":      {cat(record('d', "a"), record('f', "a", "1"), end), "sent twice"},
		"huge":       {cat([]byte{'f', 0, 1, 'a', 0xff, 0, 0, 0, 0, 0, 0, 0}, end), "impossible size"},
		"long path":  {cat([]byte{'d', 0x20, 0x00}, end), "out of range"},
	} {
		err := readStream(bytes.NewReader(c.in), &memSink{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	// A file may not replace what an earlier record made, on disk either.
	root := t.TempDir()
	err := readStream(bytes.NewReader(cat(record('f', "a/b", "1"), record('f', "a", "2"), end)), dirSink{root: root})
	if err == nil {
		t.Fatal("a file over a directory was accepted")
	}
	if !errors.Is(err, os.ErrExist) {
		t.Logf("(error %v)", err)
	}
}

// FuzzReadStream: the shim's decoder never panics, never accepts a path
// that is not clean and relative, and never hands a sink more bytes than
// a record announced.
func FuzzReadStream(f *testing.F) {
	var buf bytes.Buffer
	writeStream(&buf, []streamEntry{{rel: "in"}, {rel: "in/a.csv", file: memfdtest.Sealed(f, "a", []byte("a,b\n1,2\n"))}})
	f.Add(buf.Bytes())
	f.Add(record('f', "../x", "1"))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &checkSink{t: t}
		readStream(bytes.NewReader(b), s)
	})
}

type checkSink struct{ t *testing.T }

func (s *checkSink) Dir(rel string) error {
	if !validStreamPath(rel) || filepath.IsAbs(rel) || strings.Contains(rel, "..") && !filepath.IsLocal(rel) {
		s.t.Fatalf("directory %q accepted", rel)
	}
	return nil
}

func (s *checkSink) File(rel string, size int64, r io.Reader) error {
	s.Dir(rel)
	n, err := io.Copy(io.Discard, r)
	if n > size {
		s.t.Fatalf("%q: %d bytes for a record of %d", rel, n, size)
	}
	return err
}
