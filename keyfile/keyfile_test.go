package keyfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestIdentityFiles: a generated key pair's private key file (0600) and
// public key file (0644) load back; files encrypted to the public key
// decrypt with the private key file; Load (local keys only) and LoadAny
// tell the kinds apart.
func TestIdentityFiles(t *testing.T) {
	for _, kem := range []string{envelope.KEMMLKEM768X25519, envelope.KEMX25519} {
		dir := t.TempDir()
		priv, pub := filepath.Join(dir, "owner.key"), filepath.Join(dir, "owner.pub")
		id, err := GenerateIdentity(priv, kem, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteRecipient(pub, id.Recipient(), false); err != nil {
			t.Fatal(err)
		}
		for p, mode := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
			if st, _ := os.Stat(p); st.Mode().Perm() != mode {
				t.Fatalf("%s: mode %v", p, st.Mode())
			}
		}
		r, err := LoadRecipient(pub)
		if err != nil || r.ID() != id.ID() {
			t.Fatalf("%s: public key file: %v", kem, err)
		}
		a, err := LoadAny(priv)
		if err != nil || a.Identity == nil || a.Local != nil || a.Identity.ID() != id.ID() || a.Warning != "" {
			t.Fatalf("%s: LoadAny: %v", kem, err)
		}
		var buf bytes.Buffer
		if _, err := envelope.Encrypt(&buf, strings.NewReader("secret"), r, nil); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := envelope.Decrypt(&out, &buf, a.KeyResolver()); err != nil || out.String() != "secret" {
			t.Fatalf("%s: %v", kem, err)
		}
		if _, err := Load(priv); err == nil || !strings.Contains(err.Error(), "holds a recipient private key") {
			t.Fatalf("Load of a recipient key: %v", err)
		}
		if _, err := LoadRecipient(priv); err == nil || !strings.Contains(err.Error(), "private key file, not a public key") {
			t.Fatalf("private key as public key: %v", err)
		}
		if _, err := GenerateIdentity(priv, kem, false); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("overwrite without force: %v", err)
		}
	}
	// Local keys load through LoadAny too.
	p := filepath.Join(t.TempDir(), "local.key")
	k, _ := Generate(p, false)
	if a, err := LoadAny(p); err != nil || a.Local == nil || a.Identity != nil || a.Ref() != k.Ref() {
		t.Fatalf("LoadAny local: %v", err)
	}
}

func TestBadIdentityFiles(t *testing.T) {
	gold, _ := os.ReadFile("../envelope/testdata/golden-recipient-x25519.key")
	line := RecipientPrefix + "x25519:" + strings.Repeat("ab", 32)
	for name, tc := range map[string]struct{ content, want string }{
		"unknown type":      {RecipientPrefix + "rsa:" + strings.Repeat("ab", 32), "unknown recipient key type"},
		"no type":           {RecipientPrefix + strings.Repeat("ab", 32), "want ppml-recipient-key-v1:KEM:KEY"},
		"short key":         {RecipientPrefix + "x25519:abcd", "64 lowercase hex digits"},
		"two keys":          {line + "\n" + Prefix + strings.Repeat("ab", 32), "more than one key line"},
		"id mismatch":       {"# key id: 00000000000000000000000000000000\n" + line, "says key id"},
		"public mismatch":   {strings.Replace(string(gold), "ppml1", "ppml1q", 1), "public key it states"},
		"public on a local": {"# public key: ppml1x\n" + Prefix + strings.Repeat("ab", 32), "local key has no public key"},
	} {
		if _, err := ParseIdentity([]byte(tc.content)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := ParseIdentity(gold); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(gold); err == nil || !strings.Contains(err.Error(), "not a local key") {
		t.Fatalf("Parse of a recipient key: %v", err)
	}
	for name, tc := range map[string]struct{ content, want string }{
		"two keys":  {"ppml1mskv5v0gusammywl7lj8tn9rx3ltg7qs04dawedt5jhy5vxrt4zq4hpgzt\nppml1mskv5v0gusammywl7lj8tn9rx3ltg7qs04dawedt5jhy5vxrt4zq4hpgzt\n", "more than one public key"},
		"empty":     {"# nothing\n", "empty public key"},
		"corrupted": {"ppml1mskv5v0gusammywl7lj8tn9rx3ltg7qs04dawedt5jhy5vxrt4zq4hpgzq\n", "checksum"},
	} {
		if _, err := ParseRecipient([]byte(tc.content)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("public key %s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestGoldenRecipientKeyFiles: the spec's recipient key files parse, and
// their keys open the golden recipient vectors.
func TestGoldenRecipientKeyFiles(t *testing.T) {
	for _, kem := range []string{envelope.KEMMLKEM768X25519, envelope.KEMX25519} {
		base := "../envelope/testdata/golden-recipient-" + kem
		a, err := LoadAny(base + ".key")
		if err != nil {
			t.Fatal(err)
		}
		r, err := LoadRecipient(base + ".pub")
		if err != nil || r.ID() != a.Identity.ID() {
			t.Fatalf("%s: %v", kem, err)
		}
		f, err := envelope.OpenFile(base+".ppml", a.KeyResolver())
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// The recipient fuzz targets are seeded with X25519 keys only: a hybrid
// key's 1959-character public key makes inputs so large that the fuzzer's
// minimization of each new one stalls it; the parsing code is the same.
func FuzzParseIdentity(f *testing.F) {
	gold, _ := os.ReadFile("../envelope/testdata/golden-recipient-x25519.key")
	f.Add(gold)
	f.Add([]byte(RecipientPrefix + "x25519:" + strings.Repeat("ab", 32)))
	f.Add([]byte(RecipientPrefix + "mlkem768x25519:" + strings.Repeat("cd", 32)))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ParseIdentity(data)
		if err != nil {
			return
		}
		// What parses re-renders to a file that parses to the same key.
		again, err := MarshalIdentity(id, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		id2, err := ParseIdentity(again)
		if err != nil || id2.ID() != id.ID() {
			t.Fatalf("re-rendered key file: %v", err)
		}
	})
}

func FuzzParseRecipientFile(f *testing.F) {
	gold, _ := os.ReadFile("../envelope/testdata/golden-recipient-x25519.pub")
	f.Add(gold)
	f.Add([]byte("# comment\nppml1qq\nqq\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecipient(data)
		if err != nil {
			return
		}
		again, err := ParseRecipient(MarshalRecipient(r))
		if err != nil || again.ID() != r.ID() {
			t.Fatalf("re-rendered public key file: %v", err)
		}
	})
}
