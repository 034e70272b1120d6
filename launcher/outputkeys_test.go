package launcher_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/exec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
)

// TEST DOUBLE — releasingKeys stands in for the key service's release of
// output keys in tests that run without a server (the real release is
// exercised over a real server in kmsoutput_test.go): each output gets a
// fresh data key wrapped, with the AAD it was asked with, under a local
// key-encryption key, so the outputs can be read with that key. Inputs come
// from launcher.LocalKeys.
type releasingKeys struct {
	*launcher.LocalKeys
	kek    *envelope.LocalKey
	dkSize int // data key size to hand out; 0: 32
	extra  int // output keys to add to the answer (a broken source)
	asked  []launcher.OutputKeyRequest
	issued []*issuedKey
}

func (r *releasingKeys) ReleaseWithOutputs(ctx context.Context, manifest *launcher.Manifest, reqs []launcher.KeyRequest, outs []launcher.OutputKeyRequest) ([][]byte, []envelope.KeyWrapper, error) {
	keys, err := r.LocalKeys.Release(ctx, manifest, reqs)
	if err != nil {
		return nil, nil, err
	}
	r.asked = append(r.asked, outs...)
	var ws []envelope.KeyWrapper
	for i := 0; i < len(outs)+r.extra; i++ {
		aad := outs[min(i, len(outs)-1)].AAD
		dk, wrapped, ref, err := r.kek.NewDataKey(aad)
		if err != nil {
			return nil, nil, err
		}
		if r.dkSize != 0 {
			dk = bytes.Repeat([]byte{0xaa}, r.dkSize)
		}
		k := &issuedKey{ref: ref, aad: bytes.Clone(aad), dk: dk, wrapped: wrapped}
		r.issued = append(r.issued, k)
		ws = append(ws, k)
	}
	return keys, ws, nil
}

// issuedKey behaves as kms client.OutputKey does: one envelope (the one
// whose header has the AAD of the release), one use, launcher.Zero.
type issuedKey struct {
	ref          envelope.KeyRef
	aad, wrapped []byte
	dk           []byte
	handed       []byte // the slice given to the writer, to check it was cleared
	used, zeroed bool
}

func (k *issuedKey) NewDataKey(aad []byte) ([]byte, []byte, envelope.KeyRef, error) {
	if !bytes.Equal(aad, k.aad) {
		return nil, nil, envelope.KeyRef{}, errors.New("issued for another envelope header")
	}
	if k.used {
		return nil, nil, envelope.KeyRef{}, errors.New("already used")
	}
	k.used, k.handed, k.dk = true, k.dk, nil
	return k.handed, k.wrapped, k.ref, nil
}

func (k *issuedKey) Zero() { clear(k.dk); k.dk, k.zeroed = nil, true }

// kmsOutputsJob writes a job with a local input, two outputs under one
// kms:// key and one under a key file. The program fails with exitCode
// unless it is 0.
func kmsOutputsJob(t *testing.T, e *jobEnv, exitCode int) string {
	t.Helper()
	mf := filepath.Join(e.dir, "two-phase.yaml")
	writeFile(t, mf, fmt.Sprintf(`name: two-phase
engine: exec
inputs:
  people: people.txt.ppml
outputs:
  upper: {path: out/upper.txt.ppml, key: kms://kms.example.org/lab.results, content_type: text/csv}
  count: {path: out/count.txt.ppml, key: kms://kms.example.org/lab.results}
  copy: {path: out/copy.txt.ppml, key: file:owner.key}
parameters:
  command: [/bin/sh, -c, 'tr a-z A-Z < "$PPML_INPUT_PEOPLE" > "$PPML_OUTPUT_UPPER"; wc -l < "$PPML_INPUT_PEOPLE" > "$PPML_OUTPUT_COUNT"; cat "$PPML_INPUT_PEOPLE" > "$PPML_OUTPUT_COPY"; exit %d']
`, exitCode))
	return mf
}

func newReleasingKeys(t *testing.T, e *jobEnv) *releasingKeys {
	t.Helper()
	lk, err := launcher.NewLocalKeys(e.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	kek := newKey(t, filepath.Join(t.TempDir(), "results.key")).LocalKey
	return &releasingKeys{LocalKeys: lk, kek: kek}
}

// TestKMSOutputsTwoPhase: a kms:// output's header is made before the
// release (its wrap AAD is what the release is asked with), and the file is
// written from it after the job, recording the plaintext length.
func TestKMSOutputsTwoPhase(t *testing.T) {
	e := newJobEnv(t)
	keys := newReleasingKeys(t, e)
	if _, err := runJob(context.Background(), kmsOutputsJob(t, e, 0), launcher.Config{Keys: keys}); err != nil {
		t.Fatalf("run: %v", err)
	}
	// In the manifest's (sorted) output order; the key-file output is not asked for.
	if len(keys.asked) != 2 || keys.asked[0].Output != "count" || keys.asked[1].Output != "upper" {
		t.Fatalf("output keys asked for: %+v", keys.asked)
	}
	for _, a := range keys.asked {
		if len(a.AAD) != 63 || binary.BigEndian.Uint16(a.AAD[10:]) != envelope.FlagLengthAfterWrap || binary.BigEndian.Uint64(a.AAD[16:]) != envelope.UnknownLength {
			t.Fatalf("%s: AAD %x is not a header drafted to record its length after the wrap", a.Output, a.AAD)
		}
	}
	if bytes.Equal(keys.asked[0].AAD[24:63], keys.asked[1].AAD[24:63]) {
		t.Fatal("two outputs share a salt and nonce prefix")
	}
	plain := "ALICE\nBOB\n" + e.markers[0] + "\n"
	want := map[string]string{"upper": strings.ToUpper(plain), "count": "3\n", "copy": "alice\nbob\n" + e.markers[0] + "\n"}
	for name, w := range want {
		path := filepath.Join(e.outDir, name+".txt.ppml")
		kr := envelope.KeyResolver(keys.kek)
		if name == "copy" {
			kr = e.key
		}
		if got := decryptFrom(t, path, kr); strings.TrimSpace(string(got)) != strings.TrimSpace(w) {
			t.Fatalf("%s: %q, want %q", name, got, w)
		}
		// What ppml inspect shows: the length is recorded, and only the
		// kms:// outputs recorded it after the wrap.
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		in, err := envelope.Inspect(f, -1)
		f.Close()
		n := uint64(len(decryptFrom(t, path, kr)))
		if err != nil || in.PlaintextBytes == nil || *in.PlaintextBytes != n || in.Layout != "ok" || in.LengthAfterWrap != (name != "copy") {
			t.Fatalf("%s: inspect %+v, %v (plaintext %d bytes)", name, in, err, n)
		}
	}
	f, _ := os.Open(filepath.Join(e.outDir, "upper.txt.ppml"))
	h, _ := envelope.ReadHeader(f)
	f.Close()
	if h.ContentType != envelope.TypeCSV || !bytes.Equal(h.WrapAAD(), keys.asked[1].AAD) {
		t.Fatalf("upper: header %+v does not match the draft", h)
	}
	for i, k := range keys.issued {
		if !k.used || !bytes.Equal(k.handed, make([]byte, envelope.DataKeySize)) {
			t.Fatalf("output key %d: used %v, data key cleared %v", i, k.used, bytes.Equal(k.handed, make([]byte, envelope.DataKeySize)))
		}
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 3 {
		t.Fatalf("output directory holds %d entries", len(ents))
	}
	e.scan(t)
}

// TestKMSOutputsFailures: a failed job, a wrong-size released data key and
// a key source answering with the wrong number of output keys all leave no
// output, and released output keys are cleared.
func TestKMSOutputsFailures(t *testing.T) {
	e := newJobEnv(t)
	noOutputs := func(t *testing.T) {
		t.Helper()
		if ents, _ := os.ReadDir(e.outDir); len(ents) != 0 {
			t.Fatalf("outputs written: %v", ents)
		}
	}
	t.Run("failed job", func(t *testing.T) {
		keys := newReleasingKeys(t, e)
		_, err := runJob(context.Background(), kmsOutputsJob(t, e, 3), launcher.Config{Keys: keys})
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Code != 3 {
			t.Fatalf("want exit status 3, got %v", err)
		}
		noOutputs(t)
		if len(keys.issued) != 2 {
			t.Fatalf("%d output keys released, want 2 (so the test proves nothing)", len(keys.issued))
		}
		for i, k := range keys.issued {
			if k.used || !k.zeroed {
				t.Fatalf("output key %d of a failed job: used %v, zeroed %v", i, k.used, k.zeroed)
			}
		}
	})
	t.Run("wrong-size data key", func(t *testing.T) {
		for _, size := range []int{16, 64} {
			keys := newReleasingKeys(t, e)
			keys.dkSize = size
			_, err := runJob(context.Background(), kmsOutputsJob(t, e, 0), launcher.Config{Keys: keys})
			if err == nil || !strings.Contains(err.Error(), "output count:") || !strings.Contains(err.Error(), fmt.Sprintf("%d-byte data key, want 32", size)) {
				t.Fatalf("%d-byte output data key: %v", size, err)
			}
			noOutputs(t)
			if k := keys.issued[0]; !bytes.Equal(k.handed, make([]byte, size)) {
				t.Fatal("the refused data key was not cleared")
			}
		}
	})
	t.Run("wrong number of output keys", func(t *testing.T) {
		keys := newReleasingKeys(t, e)
		keys.extra = 1
		_, err := runJob(context.Background(), kmsOutputsJob(t, e, 0), launcher.Config{Keys: keys})
		if err == nil || !strings.Contains(err.Error(), "3 output keys for 1 and 2 requests") {
			t.Fatalf("extra output key: %v", err)
		}
		noOutputs(t)
		for i, k := range keys.issued {
			if !k.zeroed {
				t.Fatalf("output key %d not zeroed", i)
			}
		}
	})
	e.scan(t)
}

// TestOutputDraftIsSingleUse: an output's drafted header makes one file; a
// second file from it is refused before anything is created.
func TestOutputDraftIsSingleUse(t *testing.T) {
	e := newJobEnv(t)
	keys := newReleasingKeys(t, e)
	m, err := job.Load(kmsOutputsJob(t, e, 0), launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	ok, err := launcher.LoadOutputKeys(context.Background(), m, keys)
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Zero()
	_, ws, err := keys.ReleaseWithOutputs(context.Background(), nil, nil, ok.Reqs())
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.SetReleased(ws); err != nil {
		t.Fatal(err)
	}
	const upper = 2 // copy, count, upper
	if m.Outputs[upper].Name != "upper" || !ok.Drafted(upper) {
		t.Fatalf("outputs %+v", m.Outputs)
	}
	first := filepath.Join(e.outDir, "first.ppml")
	w, err := ok.Create(upper, first, "text/plain", 2)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hi"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = ok.Create(upper, filepath.Join(e.outDir, "second.ppml"), "text/plain", 2)
	if err == nil || !strings.Contains(err.Error(), "already used for a file") {
		t.Fatalf("second file from one output header: %v", err)
	}
	if ents, _ := os.ReadDir(e.outDir); len(ents) != 1 {
		t.Fatalf("output directory holds %v", ents)
	}
	if got := decryptFrom(t, first, keys.kek); string(got) != "hi" {
		t.Fatalf("first file: %q", got)
	}
}
