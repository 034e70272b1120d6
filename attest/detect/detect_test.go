package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tree struct{ gramine, tsm, dev string }

func newTree(t *testing.T) tree {
	d := t.TempDir()
	tr := tree{filepath.Join(d, "dev", "attestation"), filepath.Join(d, "sys", "kernel", "config", "tsm", "report"), filepath.Join(d, "dev")}
	os.MkdirAll(tr.dev, 0o755)
	return tr
}

func (tr tree) opts() Options {
	return Options{GramineRoot: tr.gramine, TSMRoot: tr.tsm, DevRoot: tr.dev}
}

func TestDetect(t *testing.T) {
	t.Run("nothing", func(t *testing.T) {
		tr := newTree(t)
		_, err := Detect(tr.opts())
		var ne *NoTEEError
		if !errors.As(err, &ne) || len(ne.Reasons) != 2 || !strings.Contains(err.Error(), "--tee sim") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("gramine dcap", func(t *testing.T) {
		tr := newTree(t)
		os.MkdirAll(tr.gramine, 0o755)
		os.WriteFile(filepath.Join(tr.gramine, "attestation_type"), []byte("dcap\n"), 0o644)
		os.MkdirAll(tr.tsm, 0o755) // Gramine wins: it is the narrower environment
		r, err := Detect(tr.opts())
		if err != nil || r.Backend != "gramine" || r.Attester.Name() != "gramine" || !strings.Contains(r.Reason, "dcap") {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("gramine epid", func(t *testing.T) {
		tr := newTree(t)
		os.MkdirAll(tr.gramine, 0o755)
		os.WriteFile(filepath.Join(tr.gramine, "attestation_type"), []byte("epid\n"), 0o644)
		_, err := Detect(tr.opts())
		if err == nil || !strings.Contains(err.Error(), `"epid"`) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("tsm snp", func(t *testing.T) {
		tr := newTree(t)
		os.MkdirAll(tr.tsm, 0o755)
		os.WriteFile(filepath.Join(tr.dev, "sev-guest"), nil, 0o600)
		r, err := Detect(tr.opts())
		if err != nil || r.Backend != "tsm" || r.Attester.Name() != "tsm" || !strings.Contains(r.Reason, "sev-guest") {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("guest device without configfs", func(t *testing.T) {
		tr := newTree(t)
		os.WriteFile(filepath.Join(tr.dev, "tdx_guest"), nil, 0o600)
		_, err := Detect(tr.opts())
		if err == nil || !strings.Contains(err.Error(), "tdx_guest") || !strings.Contains(err.Error(), "configfs") {
			t.Fatalf("%v", err)
		}
	})
}
