package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/progress"
	"github.com/ppml/ppml/keyfile"
)

func TestTPCHGenerate(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, nil, "tpch", "generate", "--sf", "0.01", "-o", dir, "--tables", "nation,region,orders", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum struct {
		Files []struct {
			Table string `json:"table"`
			Path  string `json:"path"`
			Rows  int64  `json:"rows"`
		} `json:"files"`
		Rows int64 `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(sum.Files) != 3 || sum.Rows != 25+5+15000 {
		t.Fatalf("summary: %+v", sum)
	}
	for _, f := range sum.Files {
		data, err := os.ReadFile(f.Path)
		if err != nil || !bytes.HasPrefix(data, []byte("PAR1")) || !bytes.HasSuffix(data, []byte("PAR1")) {
			t.Errorf("%s is not a Parquet file (%v)", f.Path, err)
		}
	}
	// Existing files are not replaced without --force.
	if code, _, errOut := run(t, nil, "tpch", "generate", "--sf", "0.01", "-o", dir, "--tables", "nation"); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("overwrite without --force: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "tpch", "generate", "--sf", "0.01", "-o", dir, "--tables", "nation", "--force"); code != 0 {
		t.Errorf("--force: exit %d %s", code, errOut)
	}
	for _, bad := range [][]string{
		{"tpch", "generate", "-o", dir},
		{"tpch", "generate", "--sf", "0.01"},
		{"tpch", "generate", "--sf", "1.5", "-o", dir},
		{"tpch", "generate", "--sf", "-1", "-o", dir},
		{"tpch", "generate", "--sf", "0.01", "-o", dir, "--tables", "lineitems"},
		{"tpch", "generate", "--sf", "0.01", "-o", dir, "--compression", "lzma"},
		{"tpch", "generate", "--sf", "0.01", "-o", dir, "--variant", "oracle"},
	} {
		if code, _, _ := run(t, nil, bad...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, ExitUsage)
		}
	}
}

func TestTPCHGenerateEncrypted(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "owner.key")
	if _, err := keyfile.Generate(keyPath, false); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "enc")
	if code, _, errOut := run(t, nil, "tpch", "generate", "--sf", "0.01", "-o", out, "--tables", "region,nation", "--key", keyPath); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	k, err := keyfile.Load(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 2 {
		t.Fatalf("%d files in output, want 2", len(entries))
	}
	for _, n := range []string{"region.parquet.ppml", "nation.parquet.ppml"} {
		raw, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("ALGERIA")) || bytes.Contains(raw, []byte("AFRICA")) {
			t.Errorf("%s holds plaintext", n)
		}
		var plain bytes.Buffer
		h, err := envelope.Decrypt(&plain, bytes.NewReader(raw), k.LocalKey)
		if err != nil {
			t.Fatalf("decrypt %s: %v", n, err)
		}
		if h.ContentType != envelope.TypeParquet || !bytes.HasPrefix(plain.Bytes(), []byte("PAR1")) {
			t.Errorf("%s: type %v, plaintext is not Parquet", n, h.ContentType)
		}
	}
}

// TestTPCHGenerateProgress: on a terminal the progress line names the
// tables, their expected rows, bytes and rate, and ends with the time taken;
// with --json, or when stderr is a pipe, nothing is drawn. (The drawing
// itself, estimate included, is tested in internal/progress.)
func TestTPCHGenerateProgress(t *testing.T) {
	defer func(d time.Duration) { progress.Delay = d }(progress.Delay)
	progress.Delay = 0 // show even this short job
	generate := func(stderr *os.File, extra ...string) {
		t.Helper()
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(stderr)
		root.SetArgs(append([]string{"tpch", "generate", "--sf", "0.01", "-o", t.TempDir(), "--tables", "region,orders,lineitem"}, extra...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if out.Len() == 0 {
			t.Fatal("no summary on stdout")
		}
	}
	// onTerminal runs generate with a pseudo-terminal as stderr and returns
	// what was drawn on it.
	onTerminal := func(extra ...string) string {
		ptm, tty, err := pty.Open()
		if err != nil {
			t.Skipf("no pseudo-terminal: %v", err)
		}
		defer ptm.Close()
		drawn := make(chan []byte)
		go func() { b, _ := io.ReadAll(ptm); drawn <- b }()
		generate(tty, extra...)
		tty.Close() // the master's reads end once the output is drained
		return string(<-drawn)
	}

	got := onTerminal()
	final := regexp.MustCompile(`\r\x1b\[Ktpch SF 0\.01 100%  [0-9.]+ [KM]iB  [0-9.]+ [KM]iB/s  in [0-9]+s  3/3 done\r\n$`)
	if !final.MatchString(got) {
		t.Fatalf("terminal does not end with the final line: %q", got)
	}
	// Every line drawn before it is one of the display's.
	for _, l := range strings.Split(got, "\r\x1b[K")[1:] {
		if !strings.HasPrefix(l, "tpch SF 0.01 ") || !strings.Contains(l, "/3 done") {
			t.Fatalf("line %q in %q", l, got)
		}
	}
	if got := onTerminal("--json"); got != "" {
		t.Fatalf("progress with --json: %q", got)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	generate(w)
	w.Close()
	if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Fatalf("progress on a pipe: %q", b)
	}
}
