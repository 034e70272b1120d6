package envelope

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPythonReader decrypts with testdata/reader.py, a reader written from
// docs/formats/envelope.md alone, to show the spec is complete. Skipped when
// python3 with the cryptography package (Debian python3-cryptography) is
// missing.
func TestPythonReader(t *testing.T) {
	if err := exec.Command("python3", "-c", "import cryptography.hazmat.primitives.ciphers.aead").Run(); err != nil {
		t.Skip("python3 with the cryptography package is not installed")
	}
	out, err := exec.Command("python3", "testdata/reader.py", "testdata/golden.key", "testdata/golden.ppml").Output()
	want, _ := os.ReadFile("testdata/golden.txt")
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("golden vector: %v", err)
	}
	// A streamed (length not recorded) multi-segment file and an empty one.
	secret := bytes.Repeat([]byte{7}, 32)
	k, _ := NewLocalKey(secret)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "k.key")
	os.WriteFile(keyPath, []byte("# key id: "+k.ID()+"\nppml-local-key-v1:"+hex.EncodeToString(secret)+"\n"), 0o600)
	for _, pt := range [][]byte{pseudoRandom(5*4096+3, 5), nil} {
		p := filepath.Join(dir, "x.ppml")
		os.WriteFile(p, seal(t, k, pt, &Options{SegmentSize: 4096}), 0o600)
		out, err := exec.Command("python3", "testdata/reader.py", keyPath, p).Output()
		if err != nil || !bytes.Equal(out, pt) {
			t.Fatalf("%d bytes: %v", len(pt), err)
		}
		// And it rejects a flipped bit.
		data, _ := os.ReadFile(p)
		data[len(data)-1] ^= 1
		os.WriteFile(p, data, 0o600)
		if err := exec.Command("python3", "testdata/reader.py", keyPath, p).Run(); err == nil {
			t.Fatal("python reader accepted a flipped bit")
		}
	}
}
