package sim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/atomicfile/atomicfiletest"
	"github.com/ppml/ppml/attest"
)

func checkName(err error) string {
	var ce *attest.CheckError
	if errors.As(err, &ce) {
		return ce.Check
	}
	return ""
}

func newEvidence(t testing.TB, dir string, rd byte) *attest.Evidence {
	t.Helper()
	var reportData [64]byte
	for i := range reportData {
		reportData[i] = rd + byte(i)
	}
	a := &Attester{Dir: dir, Now: func() time.Time { return time.Unix(1_700_000_000, 0) }}
	ev, err := a.Evidence(context.Background(), reportData)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func trusted(t testing.TB, dir string) *Verifier {
	t.Helper()
	pub, err := LoadPublicKey(filepath.Join(dir, PlatformPubKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return &Verifier{TrustedKeys: []ed25519.PublicKey{pub}}
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	ev := newEvidence(t, dir, 7)
	cl, err := trusted(t, dir).Verify(context.Background(), ev, attest.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !cl.Insecure || cl.TEEType != "simulated" || cl.Platform != attest.PlatformSim {
		t.Fatalf("claims not marked insecure/simulated: %+v", cl)
	}
	if cl.ReportData[0] != 7 || cl.ReportData[63] != 7+63 {
		t.Fatalf("report data %x", cl.ReportData)
	}
	// The measurement is the SHA-384 of the running executable.
	exe, _ := os.ReadFile("/proc/self/exe")
	want := sha512.Sum384(exe)
	if !bytes.Equal(cl.Measurement, want[:]) {
		t.Fatal("measurement is not SHA-384 of /proc/self/exe")
	}
	// The signer is the digest of the default signing key, stable across calls.
	ev2 := newEvidence(t, dir, 9)
	cl2, err := trusted(t, dir).Verify(context.Background(), ev2, attest.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cl.Signer, cl2.Signer) || len(cl.Signer) != 32 {
		t.Fatal("signer changed between calls")
	}
	// Keys are private to the user.
	for _, f := range []string{PlatformKeyFile, SignerKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %o", st.Mode().Perm())
	}
}

func TestConfiguredSigner(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	path := filepath.Join(dir, "signer.pub")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	a := &Attester{Dir: dir, SignerKey: path}
	ev, err := a.Evidence(context.Background(), [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := trusted(t, dir).Verify(context.Background(), ev, attest.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SignerDigest(&k.PublicKey)
	if !bytes.Equal(cl.Signer, want[:]) {
		t.Fatal("signer is not the digest of the configured key")
	}
}

func TestUntrustedPlatformKeyRefused(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	ev := newEvidence(t, a, 1)
	newEvidence(t, b, 1) // creates b's key
	_, err := trusted(t, b).Verify(context.Background(), ev, attest.VerifyOptions{})
	if checkName(err) != "sim_platform_key" {
		t.Fatalf("got %v, want sim_platform_key", err)
	}
	if _, err := (&Verifier{}).Verify(context.Background(), ev, attest.VerifyOptions{}); checkName(err) != "sim_platform_key" {
		t.Fatalf("verifier without keys: %v", err)
	}
	// Evidence claiming another platform is not accepted by the sim verifier.
	if _, err := trusted(t, a).Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSNP, Data: ev.Data}, attest.VerifyOptions{}); checkName(err) != "platform" {
		t.Fatalf("platform: %v", err)
	}
}

func TestTamperEveryByte(t *testing.T) {
	dir := t.TempDir()
	ev := newEvidence(t, dir, 3)
	v := trusted(t, dir)
	for pos := range ev.Data {
		for _, mask := range []byte{0x01, 0x80} {
			d := bytes.Clone(ev.Data)
			d[pos] ^= mask
			cl, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSim, Data: d}, attest.VerifyOptions{})
			if err == nil {
				t.Fatalf("byte %d ^%#x still verifies: %+v", pos, mask, cl)
			}
		}
	}
	for _, n := range []int{0, 8, 100, EvidenceSize - 1} {
		if _, err := v.Verify(context.Background(), &attest.Evidence{Platform: attest.PlatformSim, Data: ev.Data[:n]}, attest.VerifyOptions{}); checkName(err) != "sim_format" {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
}

func TestConcurrentFirstUseSharesKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	var wg sync.WaitGroup
	keys := make([]ed25519.PrivateKey, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := PlatformKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !k.Equal(keys[0]) {
			t.Fatal("racing first uses created different keys")
		}
	}
}

func TestKeyFileWithLoosePermissionsRefused(t *testing.T) {
	dir := t.TempDir()
	newEvidence(t, dir, 0)
	os.Chmod(filepath.Join(dir, PlatformKeyFile), 0o644)
	if _, err := (&Attester{Dir: dir}).Evidence(context.Background(), [64]byte{}); err == nil {
		t.Fatal("world-readable platform key accepted")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("PPML_SIM_DIR", "/x/sim")
	if d, _ := DefaultDir(); d != "/x/sim" {
		t.Fatal(d)
	}
	t.Setenv("PPML_SIM_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if d, _ := DefaultDir(); d != "/cfg/ppml/sim" {
		t.Fatal(d)
	}
}

func FuzzParseReport(f *testing.F) {
	dir := f.TempDir()
	f.Add(newEvidence(f, dir, 0).Data)
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		if r.Flags&FlagInsecure == 0 || len(r.Raw) != EvidenceSize {
			t.Fatal("parsed evidence without INSECURE flag or with wrong size")
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	ev := newEvidence(b, dir, 0)
	v := trusted(b, dir)
	for b.Loop() {
		if _, err := v.Verify(context.Background(), ev, attest.VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKeyWriteFailuresLeaveNothing makes the key writes fail part-way (file
// size limit): no half-written platform key appears, and a failed rewrite of
// platform.pub keeps the old one.
func TestKeyWriteFailuresLeaveNothing(t *testing.T) {
	if !atomicfiletest.Child(t) {
		return
	}
	dir := t.TempDir()
	atomicfiletest.LimitFileSize(t, 64)
	if _, err := PlatformKey(dir); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("platform key write past the limit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, PlatformKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed first use left %s: %v", PlatformKeyFile, err)
	}
	pub := filepath.Join(dir, PlatformPubKeyFile)
	old := []byte("old public key\n")
	if err := os.WriteFile(pub, old, 0o644); err != nil {
		t.Fatal(err)
	}
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	if err := writePublicKey(pub, k.Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("public key write past the limit: %v", err)
	}
	atomicfiletest.Unchanged(t, pub, old)
	atomicfiletest.NoTemporaries(t, dir)
}
