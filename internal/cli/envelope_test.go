package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the command line in-process and returns the exit code and output.
func run(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(bytes.NewReader(stdin))
	err := root.Execute()
	if err != nil {
		errb.WriteString(err.Error())
	}
	return exitCode(err), out.String(), errb.String()
}

func TestDataOwnerCommands(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	key, other := p("owner.key"), p("other.key")
	csv := []byte("name,age\nMichael,\nAndy,30\nJustin,19\n")
	os.WriteFile(p("people.csv"), csv, 0o644)

	steps := []struct {
		name  string
		args  []string
		code  int
		words string // in stdout+stderr
	}{
		{"key generate", []string{"key", "generate", "-o", key}, 0, "generated key"},
		{"second key", []string{"key", "generate", "-o", other, "--json"}, 0, `"key_ref": "local:`},
		{"key generate refuses to overwrite", []string{"key", "generate", "-o", key}, 1, "already exists (use --force"},
		{"key generate without -o", []string{"key", "generate"}, 2, "-o FILE"},
		{"encrypt", []string{"encrypt", "--key", key, p("people.csv")}, 0, "people.csv.ppml (csv"},
		{"encrypt refuses to overwrite", []string{"encrypt", "--key", key, p("people.csv")}, 1, "already exists"},
		{"encrypt --force", []string{"encrypt", "--key", key, "--force", "--type", "bytes", p("people.csv")}, 0, "(bytes"},
		{"inspect", []string{"inspect", p("people.csv.ppml")}, 0, "plaintext:      36 bytes"},
		{"decrypt to stdout", []string{"decrypt", "--key", key, "-o", "-", p("people.csv.ppml")}, 0, "Justin,19"},
		{"decrypt default output exists", []string{"decrypt", "--key", key, p("people.csv.ppml")}, 1, "already exists"},
		{"decrypt -o", []string{"decrypt", "--key", key, "-o", p("back.csv"), p("people.csv.ppml")}, 0, "decrypted"},
		{"wrong key", []string{"decrypt", "--key", other, "-o", p("x"), p("people.csv.ppml")}, 1, "wrong key: the file needs local key"},
		{"missing key file", []string{"decrypt", "--key", p("nokey"), "-o", p("x"), p("people.csv.ppml")}, 1, "nokey: no such file"},
		{"missing --key", []string{"encrypt", p("people.csv")}, 2, "--key"},
		{"bad --type", []string{"encrypt", "--key", key, "--type", "xml", "-o", p("y"), p("people.csv")}, 2, "unknown content type"},
		{"unknown flag", []string{"encrypt", "--kee", key, p("people.csv")}, 2, "unknown flag"},
		{"two inputs", []string{"encrypt", "--key", key, p("a"), p("b")}, 2, "accepts 1 arg"},
		{"-r without -o", []string{"encrypt", "--key", key, "-r", dir}, 2, "-o DIR"},
		{"missing input", []string{"encrypt", "--key", key, p("nope.csv")}, 1, "nope.csv: no such file"},
		{"output directory missing", []string{"encrypt", "--key", key, "-o", p("nodir/x.ppml"), p("people.csv")}, 1, "output directory " + p("nodir") + " does not exist"},
		{"not an envelope", []string{"decrypt", "--key", key, "-o", p("x"), p("people.csv")}, 1, "not a ppml envelope"},
		{"inspect not an envelope", []string{"inspect", p("people.csv")}, 1, "not a ppml envelope"},
		{"inspect missing", []string{"inspect", p("nope")}, 1, "no such file"},
		{"decrypt name without .ppml", []string{"decrypt", "--key", key, p("back.csv")}, 1, "does not end in .ppml"},
	}
	for _, s := range steps {
		code, out, errs := run(t, nil, s.args...)
		if code != s.code || !strings.Contains(out+errs, s.words) {
			t.Fatalf("%s: exit %d (want %d), output %q %q (want %q)", s.name, code, s.code, out, errs, s.words)
		}
	}
	if got, _ := os.ReadFile(p("back.csv")); !bytes.Equal(got, csv) {
		t.Fatal("round trip differs")
	}
	if _, err := os.Stat(p("x")); err == nil {
		t.Fatal("a failed decrypt left output")
	}

	// Bad inputs with the right key: exit 1, a message, no output.
	ct, _ := os.ReadFile(p("people.csv.ppml"))
	for name, c := range map[string]struct {
		data  []byte
		words string
	}{
		"truncated":   {ct[:len(ct)-1], "truncated"},
		"flipped bit": {append(append([]byte{}, ct[:len(ct)-3]...), ct[len(ct)-3]^4, ct[len(ct)-2], ct[len(ct)-1]), "authentication failed"},
		"appended":    {append(bytes.Clone(ct), 0), "appended"},
		"zero-length": {nil, "the file is empty"},
	} {
		in := p(strings.ReplaceAll(name, " ", "_") + ".ppml")
		os.WriteFile(in, c.data, 0o600)
		code, _, errs := run(t, nil, "decrypt", "--key", key, in)
		if code != 1 || !strings.Contains(errs, c.words) {
			t.Fatalf("%s: exit %d, %q", name, code, errs)
		}
		if _, err := os.Stat(strings.TrimSuffix(in, ".ppml")); err == nil {
			t.Fatalf("%s: output written", name)
		}
	}
	code, out, _ := run(t, nil, "inspect", "--json", p("truncated.ppml"))
	if code != 1 || !strings.Contains(out, `"layout": "error"`) {
		t.Fatalf("inspect truncated: %d %s", code, out)
	}

	// Key file readable by others: a warning, and the command still works.
	os.Chmod(key, 0o644)
	code, _, errs := run(t, nil, "decrypt", "--key", key, "-o", "-", p("people.csv.ppml"))
	if code != 0 || !strings.Contains(errs, "warning: key file") || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("permissive key file: %d %q", code, errs)
	}
	os.Chmod(key, 0o600)

	// stdin to stdout both ways.
	code, enc, _ := run(t, csv, "encrypt", "--key", key, "-")
	if code != 0 {
		t.Fatal("encrypt stdin")
	}
	code, dec, _ := run(t, []byte(enc), "decrypt", "--key", key, "-")
	if code != 0 || dec != string(csv) {
		t.Fatalf("decrypt stdin: %d %q", code, dec)
	}

	// inspect --json names the key but carries no key material.
	code, out, _ = run(t, nil, "inspect", "--json", p("people.csv.ppml"))
	var info map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info["content_type"] != "bytes" || info["plaintext_bytes"] != float64(len(csv)) {
		t.Fatalf("inspect --json: %d %s", code, out)
	}
	keyText, _ := os.ReadFile(key)
	secret := strings.TrimPrefix(strings.TrimSpace(string(keyText[bytes.LastIndex(keyText, []byte("ppml-local-key-v1:")):])), "ppml-local-key-v1:")
	if strings.Contains(out, secret) {
		t.Fatal("inspect printed the key")
	}

	// Trees.
	os.MkdirAll(p("tree/sub"), 0o755)
	os.WriteFile(p("tree/sub/a.json"), []byte(`{"x":1}`), 0o644)
	if code, _, errs := run(t, nil, "encrypt", "--key", key, "-r", "-o", p("enc"), p("tree")); code != 0 {
		t.Fatalf("encrypt -r: %s", errs)
	}
	if code, out, errs := run(t, nil, "decrypt", "--key", key, "-r", "--json", "-o", p("dec"), p("enc")); code != 0 || !strings.Contains(out, `"files"`) {
		t.Fatalf("decrypt -r: %s %s", out, errs)
	}
	if b, _ := os.ReadFile(p("dec/sub/a.json")); string(b) != `{"x":1}` {
		t.Fatal("tree round trip")
	}
}

func TestGoldenVectorThroughCLI(t *testing.T) {
	code, out, errs := run(t, nil, "decrypt", "--key", "../../envelope/testdata/golden.key", "-o", "-", "../../envelope/testdata/golden.ppml")
	want, _ := os.ReadFile("../../envelope/testdata/golden.txt")
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d %q", code, errs)
	}
}

// TestRecipientCommands: a key pair from key generate --recipient; a data
// provider encrypts to the public key (file or text) and cannot decrypt;
// the owner decrypts with the private key; inspect shows the recipient's key
// id, never key material; misuse gets a message that says what to do.
func TestRecipientCommands(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("people.csv"), []byte("name,age\nAndy,30\n"), 0o644)
	code, out, errs := run(t, nil, "key", "generate", "--recipient", "-o", p("owner.key"), "--json")
	var gen map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &gen) != nil {
		t.Fatalf("exit %d %s %s", code, out, errs)
	}
	if gen["kem"] != "mlkem768x25519" || gen["public_key_path"] != p("owner.pub") || !strings.HasPrefix(gen["public_key"], "ppmlpq1") {
		t.Fatalf("%v", gen)
	}
	pub, _ := os.ReadFile(p("owner.pub"))
	if strings.TrimSpace(string(pub)) != gen["public_key"] {
		t.Fatal("owner.pub does not hold the public key")
	}
	if st, _ := os.Stat(p("owner.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", st.Mode())
	}
	code, _, _ = run(t, nil, "key", "generate", "--recipient", "--kem", "x25519", "-o", p("other.key"))
	if code != 0 {
		t.Fatal("x25519 key pair")
	}
	steps := []struct {
		name  string
		args  []string
		code  int
		words string
	}{
		{"encrypt to the public key file", []string{"encrypt", "--recipient", p("owner.pub"), p("people.csv")}, 0, "key recipient:mlkem768x25519:" + gen["key_id"]},
		{"the public key cannot decrypt", []string{"decrypt", "--key", p("owner.pub"), "-o", p("x"), p("people.csv.ppml")}, 1, "holds a public key, which encrypts (--recipient) but cannot decrypt"},
		{"another private key cannot decrypt", []string{"decrypt", "--key", p("other.key"), "-o", p("x"), p("people.csv.ppml")}, 1, "the file needs recipient key " + gen["key_id"] + " (ML-KEM-768 + X25519), but recipient key"},
		{"the private key decrypts", []string{"decrypt", "--key", p("owner.key"), "-o", "-", p("people.csv.ppml")}, 0, "Andy,30"},
		{"inspect names the recipient", []string{"inspect", p("people.csv.ppml")}, 0, "recipient:      ML-KEM-768 + X25519 public key, key id " + gen["key_id"]},
		{"encrypt to the key's text", []string{"encrypt", "--recipient", gen["public_key"], "-o", p("t.ppml"), p("people.csv")}, 0, "encrypted"},
		{"decrypt it", []string{"decrypt", "--key", p("owner.key"), "-o", "-", p("t.ppml")}, 0, "Andy,30"},
		{"the private key encrypts too", []string{"encrypt", "--key", p("owner.key"), "-o", p("k.ppml"), p("people.csv")}, 0, "key recipient:mlkem768x25519:"},
		{"key public", []string{"key", "public", p("owner.key")}, 0, gen["public_key"]},
		{"key public of a local key", []string{"key", "public", p("people.csv.ppml")}, 1, "not a ppml key file"},
		{"--key and --recipient", []string{"encrypt", "--key", p("owner.key"), "--recipient", p("owner.pub"), p("people.csv")}, 2, "either --key or --recipient"},
		{"neither", []string{"encrypt", p("people.csv")}, 2, "--recipient"},
		{"private key as recipient", []string{"encrypt", "--recipient", p("owner.key"), "-o", p("y"), p("people.csv")}, 1, "private key file, not a public key"},
		{"public key text as --key", []string{"encrypt", "--key", gen["public_key"], "-o", p("y"), p("people.csv")}, 2, "give it with --recipient"},
		{"corrupted public key text", []string{"encrypt", "--recipient", corruptChar(gen["public_key"], 100), "-o", p("y"), p("people.csv")}, 2, "checksum"},
		{"--kem without --recipient", []string{"key", "generate", "--kem", "x25519", "-o", p("z.key")}, 2, "go with --recipient"},
		{"unknown --kem", []string{"key", "generate", "--recipient", "--kem", "rsa", "-o", p("z.key")}, 2, "want mlkem768x25519 or x25519"},
		{"existing public key file", []string{"key", "generate", "--recipient", "-o", p("new.key"), "--public", p("owner.pub")}, 1, "owner.pub already exists"},
	}
	for _, s := range steps {
		code, out, errs := run(t, nil, s.args...)
		if code != s.code || !strings.Contains(out+errs, s.words) {
			t.Fatalf("%s: exit %d (want %d), output %q, want %q", s.name, code, s.code, out+errs, s.words)
		}
	}
	if _, err := os.Stat(p("new.key")); err == nil {
		t.Fatal("a refused key pair left its private key behind")
	}
	if out, _ := os.ReadFile(p("people.csv.ppml")); bytes.Contains(out, pub[:40]) {
		t.Fatal("the envelope holds the public key")
	}
}

// corruptChar changes the character at i of a Bech32 text to another
// character of the alphabet (a fixed replacement would leave the text
// unchanged whenever it already held that character).
func corruptChar(s string, i int) string {
	c := byte('q')
	if s[i] == c {
		c = 'p'
	}
	return s[:i] + string(c) + s[i+1:]
}
