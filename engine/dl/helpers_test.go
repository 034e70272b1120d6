package dlengine

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ppml/ppml/dl/idx"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/dataset"
)

// fashionSubset returns items [from, to) of a Fashion-MNIST IDX file, as a gzip-compressed IDX
// file (the form the datasets are published in).
func fashionSubset(t testing.TB, name string, from, to int) []byte {
	t.Helper()
	raw := fashionRaw(t, name)
	a, err := idx.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	head := []byte{0, 0, idx.TypeUint8, byte(len(a.Dims))}
	head = binary.BigEndian.AppendUint32(head, uint32(to-from))
	for _, d := range a.Dims[1:] {
		head = binary.BigEndian.AppendUint32(head, uint32(d))
	}
	item := make([]byte, a.ItemSize())
	for i := from; i < to; i++ {
		a.Read(i, item)
		head = append(head, item...)
	}
	return gz(head)
}

// fashionFiles caches the inflated Fashion-MNIST files: several tests take subsets of them.
var fashionFiles sync.Map // dataset name → []byte

func fashionRaw(t testing.TB, name string) []byte {
	t.Helper()
	if b, ok := fashionFiles.Load(name); ok {
		return b.([]byte)
	}
	f, err := os.Open(dataset.Require(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := idx.Gunzip(f, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	fashionFiles.Store(name, raw)
	return raw
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// workspace is an examples directory as its README prepares it: the manifests, a local key,
// inputs encrypted under it and an empty out directory; TMPDIR is a directory of its own, so
// that the test can check that no plaintext was left there.
type workspace struct {
	dir, tmp string
	key      *envelope.LocalKey
	markers  [][]byte
}

func newWorkspace(t *testing.T, examples string) *workspace {
	t.Helper()
	w := &workspace{dir: t.TempDir(), tmp: t.TempDir()}
	t.Setenv("TMPDIR", w.tmp)
	if examples != "" {
		ents, err := os.ReadDir(examples)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".yaml") {
				envelopetest.CopyFile(t, filepath.Join(examples, e.Name()), filepath.Join(w.dir, e.Name()))
			}
		}
	}
	k, err := keyfile.Generate(filepath.Join(w.dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	w.key = k.LocalKey
	if err := os.Mkdir(filepath.Join(w.dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *workspace) encrypt(t *testing.T, name string, plain []byte, ct envelope.ContentType) {
	t.Helper()
	envelopetest.Encrypt(t, filepath.Join(w.dir, name), w.key, plain, ct)
}

func (w *workspace) manifest(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs a manifest through ppml run's launcher with the local key.
func (w *workspace) run(t *testing.T, manifest string) (string, error) {
	t.Helper()
	keys, err := launcher.NewLocalKeys(filepath.Join(w.dir, "owner.key"))
	if err != nil {
		t.Fatal(err)
	}
	var log, stderr bytes.Buffer
	m, err := launcher.Load(filepath.Join(w.dir, manifest))
	if err == nil {
		_, err = launcher.Run(context.Background(), launcher.Config{Manifest: m, Keys: keys, Log: &log, Stderr: &stderr})
	}
	if err != nil && stderr.Len() > 0 {
		t.Logf("%s: the program's stderr:\n%s", manifest, stderr.String())
	}
	for _, m := range w.markers {
		if bytes.Contains(log.Bytes(), m) || err != nil && strings.Contains(err.Error(), string(m)) {
			t.Errorf("%s: data in the launcher log or error", manifest)
		}
	}
	return log.String(), err
}

func (w *workspace) out(t *testing.T, name string) []byte {
	t.Helper()
	return envelopetest.Decrypt(t, filepath.Join(w.dir, "out", name), w.key)
}

// noOutputs checks that a failed job left nothing in out/.
func (w *workspace) noOutputs(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(w.dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("a failed job left %d file(s) in out/ (first %s)", len(ents), ents[0].Name())
	}
}

// scan checks that no marker is in any file of the workspace or TMPDIR.
func (w *workspace) scan(t *testing.T) {
	t.Helper()
	for _, m := range w.markers {
		envelopetest.AssertNoMarker(t, w.dir, m)
		envelopetest.AssertNoMarker(t, w.tmp, m)
	}
}
