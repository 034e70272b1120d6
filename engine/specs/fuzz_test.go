package specs_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/job"
)

// FuzzManifest parses arbitrary manifests with every engine's spec, as the
// key service does for every release: a manifest gives a *job.Error naming
// its problems, or a job whose canonical form is JSON and whose digest does
// not depend on the directory it was read from. Seeded with every manifest
// of the repository and the pinned inline ones (all parameters of all
// engines).
func FuzzManifest(f *testing.F) {
	filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if filepath.Ext(p) == ".yaml" {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	for _, src := range inline {
		f.Add([]byte(src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := job.Parse(data, "/fuzz", specs.All)
		if err != nil {
			var je *job.Error
			if !errors.As(err, &je) || len(je.Problems) == 0 {
				t.Fatalf("error %T %v is not a *job.Error with problems", err, err)
			}
			return
		}
		if !json.Valid(m.Canonical()) {
			t.Fatalf("canonical form is not JSON: %q", m.Canonical())
		}
		if m2, err := job.Parse(data, "/elsewhere", specs.All); err == nil && m2.Digest() != m.Digest() {
			t.Fatalf("digest depends on the base directory")
		}
	})
}
