package launcher_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/memfd"
)

// runJob runs the manifest at path as ppml-run does: loaded (parsed and
// checked) once, then run; a manifest error comes from Load, before any key
// is asked for.
func runJob(ctx context.Context, path string, cfg launcher.Config) (*launcher.Result, error) {
	m, err := launcher.Load(path)
	if err != nil {
		return nil, err
	}
	cfg.Manifest = m
	return launcher.Run(ctx, cfg)
}

func needPython(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 (Debian python3)")
	}
}

// marker returns a fresh string to plant in plaintext; finding it anywhere
// on disk after a run means plaintext leaked.
func marker(t testing.TB) string {
	b := make([]byte, 12)
	rand.Read(b)
	return "PPMLMARKER" + strings.ToUpper(hex.EncodeToString(b))
}

func newKey(t testing.TB, path string) *keyfile.Key {
	t.Helper()
	k, err := keyfile.Generate(path, false)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encryptTo(t testing.TB, path string, kw envelope.KeyWrapper, plain []byte) *envelope.Header {
	t.Helper()
	w, err := envelope.CreateFile(path, kw, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Header()
}

func decryptFrom(t testing.TB, path string, kr envelope.KeyResolver) []byte {
	t.Helper()
	m, err := memfd.Decrypt(path, kr)
	if err != nil {
		t.Fatalf("decrypt %s: %v", path, err)
	}
	defer m.Close()
	b, err := io.ReadAll(m.OSFile())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scanForMarkers fails the test if any marker appears in a file name or
// content under the test's own directories (fully), or under the shared
// temporary directories (files changed since start: plaintext a run wrote
// is necessarily newer, and other processes' old files are not ours).
func scanForMarkers(t testing.TB, start time.Time, own []string, markers ...string) {
	t.Helper()
	for _, f := range findMarkers(start, own, markers...) {
		t.Error(f)
	}
}

func findMarkers(start time.Time, own []string, markers ...string) []string {
	var found []string
	seen := map[string]bool{}
	shared := []string{os.TempDir(), "/tmp", "/dev/shm"}
	if wd, err := os.Getwd(); err == nil {
		own = append(own, wd)
	}
	scan := func(root string, since time.Time) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: others' files
			}
			if seen[p] {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			seen[p] = true
			if d.IsDir() && strings.HasPrefix(d.Name(), "go-build") {
				return filepath.SkipDir // the go tool's log of opened file names
			}
			for _, mk := range markers {
				if strings.Contains(d.Name(), mk) {
					found = append(found, "marker in file name "+p)
				}
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil || fi.ModTime().Before(since) || fi.Size() > 256<<20 {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, mk := range markers {
				if bytes.Contains(b, []byte(mk)) {
					found = append(found, "plaintext marker "+mk+" found in "+p)
				}
			}
			return nil
		})
	}
	for _, r := range own {
		scan(r, time.Time{})
	}
	for _, r := range shared {
		scan(r, start.Add(-2*time.Second))
	}
	return found
}

// recordingKeys counts calls, to show what happened before the key source
// was asked.
type recordingKeys struct {
	launcher.KeySource
	releases int
}

func (r *recordingKeys) Release(ctx context.Context, m *launcher.Manifest, reqs []launcher.KeyRequest) ([][]byte, error) {
	r.releases++
	return r.KeySource.Release(ctx, m, reqs)
}

// TEST DOUBLE — digestPolicyKeys stands in for the key service's job_digest
// policy rule in tests that run without a server: it releases keys only to
// jobs whose digest is listed, and names the key and rule otherwise. The
// real rule is exercised over a real server in kms_test.go.
type digestPolicyKeys struct {
	*launcher.LocalKeys
	allowed [32]byte
}

func (d *digestPolicyKeys) Release(ctx context.Context, lm *launcher.Manifest, reqs []launcher.KeyRequest) ([][]byte, error) {
	m := lm.Job
	if m.Digest() != d.allowed {
		de := &launcher.DeniedError{}
		for _, r := range reqs {
			de.Denials = append(de.Denials, launcher.Denial{Key: r.Ref.String(), Rule: "job_digest", Reason: "job " + m.DigestString() + " is not allowed (test double)"})
		}
		return nil, de
	}
	return d.LocalKeys.Release(ctx, lm, reqs)
}
