package mlcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/ml/dataset"
)

// run runs the ml command as ppml-run would, with its output captured.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := &cobra.Command{Use: "ppml-run"}
	root.AddCommand(New())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	code := command.Main(root, args, &errb)
	return code, out.String(), errb.String()
}

func TestMLCommands(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	boston := dataset.Require(t, dataset.Boston)
	steps := []struct {
		name  string
		args  []string
		code  int
		words string
	}{
		{"train", []string{"ml", "train", "--algorithm", "xgboost", "--objective", "regression", "--label", "medv", "--rounds", "20",
			"--seed", "42", "--show", "3", "-o", p("m.model"), boston}, 0, "|            features|label|        prediction|"},
		{"train metrics", []string{"ml", "train", "--algorithm", "linear_regression", "--label", "medv", "--seed", "42", "-o", p("l.model"), boston}, 0, "R²   0.694728"},
		{"train --json", []string{"ml", "train", "--algorithm", "linear_regression", "--label", "medv", "-o", p("l2.model"), "--json", boston}, 0, `"rmse":`},
		{"predict", []string{"ml", "predict", "--model", p("m.model"), "-o", p("pred.csv"), boston}, 0, "predicted 506 rows"},
		{"evaluate", []string{"ml", "evaluate", "--model", p("m.model"), boston}, 0, "metrics on 506 rows"},
		{"unknown xgboost parameter", []string{"ml", "train", "--algorithm", "xgboost", "--objective", "regression", "--label", "medv",
			"--param", "max_dept=3", "-o", p("bad.model"), boston}, 1, `"max_dept" } are not used`},
		{"missing label column", []string{"ml", "train", "--algorithm", "xgboost", "--objective", "regression", "--label", "price", "-o", p("bad.model"), boston}, 1, `label column "price"`},
		{"not a model", []string{"ml", "predict", "--model", boston, "-o", p("bad.csv"), boston}, 1, "not a model"},
		{"bad algorithm", []string{"ml", "train", "--algorithm", "svm", "--label", "medv", "-o", p("bad.model"), boston}, 2, `algorithm "svm"`},
		{"no -o", []string{"ml", "train", "--algorithm", "xgboost", "--label", "medv", boston}, 2, "-o FILE"},
		{"export", []string{"ml", "export", "-o", p("xgb.json"), p("m.model")}, 0, "wrote the xgboost model (features: 13"},
		{"export not a model", []string{"ml", "export", "-o", p("bad.json"), boston}, 1, "not a model"},
		{"refuses to overwrite", []string{"ml", "predict", "--model", p("m.model"), "-o", p("pred.csv"), boston}, 1, "exists"},
	}
	for _, s := range steps {
		code, out, errs := run(t, s.args...)
		if code != s.code || !strings.Contains(out+errs, s.words) {
			t.Errorf("%s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", s.name, code, s.code, out, errs, s.words)
		}
	}
	if _, err := os.Stat(p("bad.model")); err == nil {
		t.Error("a failed train left a model file")
	}
	if _, err := os.Stat(p("bad.csv")); err == nil {
		t.Error("a failed predict left a predictions file")
	}
}
