package tpchbench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/internal/shareddata"
)

// A small run goes through both sides end to end: real dbgen data, real
// envelope encryption and memfds, the engine over both, and every result of
// both sides checked against the published SF 0.01 answers (Run fails on a
// wrong one). q17 is the query whose plaintext side once ran on other
// DuckDB settings.
func TestRunChecksBothSides(t *testing.T) {
	answers := shareddata.Require(t, "tpch", "answers", "sf0.01")
	rep, err := Run(context.Background(), Config{SF: 0.01, Dir: t.TempDir(), Threads: 1, Memory: 1 << 30,
		AnswersDir: filepath.Dir(answers), Queries: []int{1, 17}, Rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Checked || len(rep.Queries) != 2 {
		t.Fatalf("report: checked %v, %d queries", rep.Checked, len(rep.Queries))
	}
	for _, q := range rep.Queries {
		if !q.Checked || q.Rows == 0 || q.Encrypted <= 0 || q.Plain <= 0 {
			t.Errorf("q%02d: %+v", q.Query, q)
		}
	}
	if rep.DataBytes <= 0 || rep.OpenPlainSeconds <= 0 || rep.OpenSeconds <= 0 || rep.DecryptSeconds <= 0 {
		t.Errorf("report: %+v", rep)
	}
}

func TestDefaultAnswersDir(t *testing.T) {
	shared := t.TempDir()
	t.Setenv("PPML_SHARED", shared) // restored after the test
	if got, want := DefaultAnswersDir(), filepath.Join(shared, "testdata", "tpch", "answers"); got != want {
		t.Errorf("with PPML_SHARED: %q, want %q", got, want)
	}
	// Without it, the source tree's neighbour, where the tests find it too,
	// or "" when that is missing.
	os.Unsetenv("PPML_SHARED")
	got := DefaultAnswersDir()
	want := shareddata.Path("tpch", "answers")
	wi, err := os.Stat(want)
	if err != nil {
		if got != "" {
			t.Errorf("no %s, yet the default is %q", want, got)
		}
		return
	}
	gi, err := os.Stat(got)
	if err != nil || !os.SameFile(gi, wi) {
		t.Errorf("from the source tree: %q, want %q (%v)", got, want, err)
	}
}
