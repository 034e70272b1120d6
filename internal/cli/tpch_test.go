package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
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
