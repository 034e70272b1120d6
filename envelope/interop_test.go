package envelope

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPythonReader decrypts with testdata/reader.py, a reader written from
// docs/formats/envelope.md alone, to show the spec is complete. It runs on
// Debian's interpreter (/usr/bin/python3 with python3-cryptography, which
// make deps installs), not whatever python3 comes first on PATH: a version
// manager's interpreter without the package used to skip the test
// silently. Skipped only where there is no Debian python3 at all.
func TestPythonReader(t *testing.T) {
	const debianPython = "/usr/bin/python3"
	if _, err := os.Stat(debianPython); err != nil {
		t.Skipf("%s is missing (Debian python3 with python3-cryptography runs this test)", debianPython)
	}
	exe, err := exec.Command(debianPython, "-c", "import sys, cryptography.hazmat.primitives.ciphers.aead; print(sys.executable)").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import cryptography (apt-get install python3-cryptography; make deps does): %v\n%s", debianPython, err, exe)
	}
	python := strings.TrimSpace(string(exe))
	want, _ := os.ReadFile("testdata/golden.txt")
	for _, v := range []string{"golden.ppml", "golden-length-after-wrap.ppml"} {
		out, err := exec.Command(python, "testdata/reader.py", "testdata/golden.key", filepath.Join("testdata", v)).Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("golden vector %s: %v", v, err)
		}
	}
	// The recipient vectors, and fresh files to fresh recipient keys. The
	// ML-KEM-768 part needs cryptography 47 or later (Debian 12 has 38).
	kems := []string{KEMX25519}
	if exec.Command(python, "-c", "from cryptography.hazmat.primitives.asymmetric import mlkem").Run() == nil {
		kems = append(kems, KEMMLKEM768X25519)
	} else {
		t.Log("python3 cryptography has no ML-KEM: the mlkem768x25519 vectors are not read in Python")
	}
	for _, kem := range kems {
		base := filepath.Join("testdata", "golden-recipient-"+kem)
		out, err := exec.Command(python, "testdata/reader.py", base+".key", base+".ppml").Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("golden vector %s: %v", base, err)
		}
		id := testIdentity(t, kem, 9)
		sk, _ := id.Bytes()
		dir := t.TempDir()
		keyPath, p := filepath.Join(dir, "r.key"), filepath.Join(dir, "x.ppml")
		os.WriteFile(keyPath, []byte(fmt.Sprintf("# key id: %s\nppml-recipient-key-v1:%s:%x\n", id.ID(), kem, sk)), 0o600)
		pt := pseudoRandom(3*4096+1, 8)
		ct := sealLater(t, id.Recipient(), pt, &Options{SegmentSize: 4096})
		os.WriteFile(p, ct, 0o600)
		if out, err := exec.Command(python, "testdata/reader.py", keyPath, p).Output(); err != nil || !bytes.Equal(out, pt) {
			t.Fatalf("%s: fresh file: %v", kem, err)
		}
		h, _ := ReadHeader(bytes.NewReader(ct))
		for _, at := range []int{9, h.Len() - 1} {
			data := bytes.Clone(ct)
			data[at] ^= 1
			os.WriteFile(p, data, 0o600)
			if err := exec.Command(python, "testdata/reader.py", keyPath, p).Run(); err == nil {
				t.Fatalf("%s: python reader accepted a flipped bit at %d", kem, at)
			}
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
		out, err := exec.Command(python, "testdata/reader.py", keyPath, p).Output()
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
			if err := exec.Command(python, "testdata/reader.py", keyPath, p).Run(); err == nil {
				t.Fatalf("file %d: python reader accepted a flipped bit at %d", i, at)
			}
		}
	}
}
