package shareddata

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const importPath = "github.com/ppml/ppml/internal/shareddata"

// TestOnlyTestsImport keeps shareddata out of every binary: it resolves paths
// on the machine that built the code, so no non-test file may import it.
func TestOnlyTestsImport(t *testing.T) {
	root := repoRoot()
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, im := range f.Imports {
			if path, _ := strconv.Unquote(im.Path.Value); path == importPath {
				t.Errorf("%s imports %s: production code must take shared data paths as flags", p, importPath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d non-test Go files found under %s: the walk missed the repository", files, root)
	}
}

func TestDir(t *testing.T) {
	t.Setenv("PPML_SHARED", "/srv/shared")
	if got := Path("attestation", "vectors.json"); got != "/srv/shared/testdata/attestation/vectors.json" {
		t.Fatal(got)
	}
	t.Setenv("PPML_SHARED", "")
	if got, want := Dir(), filepath.Join(filepath.Dir(repoRoot()), "shared"); got != want {
		t.Fatalf("Dir() = %s, want %s", got, want)
	}
}
