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
	want, _ := os.ReadFile("testdata/golden.txt")
	for _, v := range []string{"golden.ppml", "golden-length-after-wrap.ppml"} {
		out, err := exec.Command("python3", "testdata/reader.py", "testdata/golden.key", filepath.Join("testdata", v)).Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("golden vector %s: %v", v, err)
		}
	}
	// A streamed (length not recorded) multi-segment file, an empty one,
	// and one written in two phases (length recorded after the wrap).
	secret := bytes.Repeat([]byte{7}, 32)
	k, _ := NewLocalKey(secret)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "k.key")
	os.WriteFile(keyPath, []byte("# key id: "+k.ID()+"\nppml-local-key-v1:"+hex.EncodeToString(secret)+"\n"), 0o600)
	for i, pt := range [][]byte{pseudoRandom(5*4096+3, 5), nil, pseudoRandom(5*4096+3, 6)} {
		p := filepath.Join(dir, "x.ppml")
		ct := seal(t, k, pt, &Options{SegmentSize: 4096})
		if i >= 2 {
			ct = sealLater(t, k, pt, &Options{SegmentSize: 4096})
		}
		os.WriteFile(p, ct, 0o600)
		out, err := exec.Command("python3", "testdata/reader.py", keyPath, p).Output()
		if err != nil || !bytes.Equal(out, pt) {
			t.Fatalf("file %d, %d bytes: %v", i, len(pt), err)
		}
		// And it rejects a flipped bit: in the body, and in the length,
		// which a two-phase file's key wrap does not cover.
		flips := []int{len(ct) - 1}
		if i >= 2 {
			flips = append(flips, 23)
		}
		for _, at := range flips {
			data := bytes.Clone(ct)
			data[at] ^= 1
			os.WriteFile(p, data, 0o600)
			if err := exec.Command("python3", "testdata/reader.py", keyPath, p).Run(); err == nil {
				t.Fatalf("file %d: python reader accepted a flipped bit at %d", i, at)
			}
		}
	}
}
