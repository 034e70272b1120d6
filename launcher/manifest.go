package launcher

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ppml/ppml/job"
)

// Manifest is a job manifest read and checked once per run: the exact bytes
// that are validated, attested (their digest is bound into the evidence) and
// sent to the key service, and what they parse to with the engines built
// into this runtime. Nothing parses them again.
type Manifest struct {
	// Source names the manifest in messages: its path as the caller gave
	// it, or "job manifest" for one built in memory.
	Source string
	// Raw is the manifest's bytes.
	Raw []byte
	// Job is the parsed manifest; its files were checked (job.CheckFiles).
	Job *job.Manifest
}

// Load reads the manifest at path once, parses it with the registered
// engines' specs and checks its files. Errors for the manifest itself are
// *job.Error with Source set to path.
func Load(path string) (*Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("job manifest %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, job.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("job manifest %s: %w", path, err)
	}
	return Parse(raw, filepath.Dir(abs), path)
}

// Parse checks manifest bytes built in memory (ppml sql's ad-hoc jobs) as
// Load does; dir is where relative paths start ("" is the working
// directory) and source names the manifest in messages.
func Parse(raw []byte, dir, source string) (*Manifest, error) {
	if dir == "" {
		dir = "."
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	setSource := func(err error) error {
		var je *job.Error
		if errors.As(err, &je) {
			je.Source = source
		}
		return err
	}
	m, err := job.Parse(raw, dir, Specs())
	if err != nil {
		return nil, setSource(err)
	}
	if err := m.CheckFiles(); err != nil {
		return nil, setSource(err)
	}
	return &Manifest{Source: source, Raw: raw, Job: m}, nil
}
