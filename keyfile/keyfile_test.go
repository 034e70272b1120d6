package keyfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
)

func TestGenerateLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "owner.key")
	k, err := Generate(p, false)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	l, err := Load(p)
	if err != nil || l.ID() != k.ID() || l.Warning != "" {
		t.Fatalf("load: %v %q", err, l.Warning)
	}
	// The loaded key decrypts what the generated one encrypted.
	var buf bytes.Buffer
	if _, err := envelope.Encrypt(&buf, strings.NewReader("secret"), k, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := envelope.Decrypt(&out, &buf, l); err != nil || out.String() != "secret" {
		t.Fatal(err)
	}
	// No overwrite without force; force replaces with a new key.
	if _, err := Generate(p, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite without force: %v", err)
	}
	k2, err := Generate(p, true)
	if err != nil || k2.ID() == k.ID() {
		t.Fatalf("force: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("leftover files: %v", ents)
	}
}

func TestBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing key file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.key"))
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.key") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("key file with wrong permissions", func(t *testing.T) {
		p := filepath.Join(dir, "open.key")
		if _, err := Generate(p, false); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o644)
		k, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(k.Warning, "0644") || !strings.Contains(k.Warning, "chmod 600") {
			t.Fatalf("warning %q", k.Warning)
		}
	})
	t.Run("unreadable key file", func(t *testing.T) {
		if os.Getuid() == 0 {
			// root reads anything; a directory stands in for an unreadable path.
			if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("%v", err)
			}
			return
		}
		p := filepath.Join(dir, "locked.key")
		Generate(p, false)
		os.Chmod(p, 0)
		if _, err := Load(p); !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("%v", err)
		}
	})
	for name, content := range map[string]string{
		"not a key file": "name,age\nAndy,30\n",
		"empty":          "",
		"short key":      Prefix + "abcd\n",
		"uppercase hex":  Prefix + strings.Repeat("AB", 32) + "\n",
		"two keys":       Prefix + strings.Repeat("ab", 32) + "\n" + Prefix + strings.Repeat("cd", 32) + "\n",
		"id mismatch":    "# key id: 00000000000000000000000000000000\n" + Prefix + strings.Repeat("ab", 32) + "\n",
		"huge":           strings.Repeat("#", maxFileSize+10),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			os.WriteFile(p, []byte(content), 0o600)
			if _, err := Load(p); err == nil {
				t.Fatal("loaded")
			} else if !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestGoldenKeyFile(t *testing.T) {
	k, err := Load("../envelope/testdata/golden.key")
	if err != nil {
		t.Fatal(err)
	}
	f, err := envelope.OpenFile("../envelope/testdata/golden.ppml", k)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Header().KeyRef.KeyID != k.ID() {
		t.Fatal("golden key id")
	}
}

func FuzzParse(f *testing.F) {
	gold, _ := os.ReadFile("../envelope/testdata/golden.key")
	f.Add(gold)
	f.Add([]byte(Prefix + strings.Repeat("ab", 32)))
	f.Add([]byte("# key id: x\n\n" + Prefix))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Parse(data)
		if err != nil {
			return
		}
		if len(k.ID()) != 32 {
			t.Fatalf("id %q", k.ID())
		}
	})
}
