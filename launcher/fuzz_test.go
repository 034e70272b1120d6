package launcher

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
)

// FuzzCollect feeds arbitrary bytes to the launcher as an input file (the
// host controls input files): reading the header and checking it against
// a pinned key must give a request or an error, never a panic, and a
// request must carry what the header said.
func FuzzCollect(f *testing.F) {
	dir := f.TempDir()
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		f.Fatal(err)
	}
	good := filepath.Join(dir, "seed.ppml")
	envelopetest.Encrypt(f, good, k.LocalKey, []byte("seed"), envelope.TypeBytes)
	b, _ := os.ReadFile(good)
	f.Add(b, true)
	f.Add(b[:40], false)
	f.Add([]byte("PPMLENV"), false)
	// One input file per fuzzing process, rewritten for each input: a
	// directory per execution would cost more than collect itself.
	p := filepath.Join(dir, "in.ppml")
	f.Fuzz(func(t *testing.T, data []byte, pin bool) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m := &job.Manifest{Inputs: []job.Input{{Name: "in", Path: p}}}
		if pin {
			ref, _ := job.ParseKeyRef("file:"+filepath.Join(dir, "owner.key"), dir)
			m.Inputs[0].Key = &ref
		}
		reqs, err := collect(m, nil, nil)
		if err != nil {
			return
		}
		if len(reqs) != 1 || reqs[0].Input != "in" || len(reqs[0].Wrapped) == 0 {
			t.Fatalf("requests %+v", reqs)
		}
		if _, err := envelope.ParseKeyRef(reqs[0].Ref.String()); err != nil {
			t.Fatalf("request names an invalid key reference: %v", err)
		}
	})
}
