// Package dataset finds the public datasets of the ML and deep-learning examples and tests
// (Boston housing, Wisconsin breast cancer, Fashion-MNIST, the SpamAssassin corpus), fetching
// them with scripts/datasets.sh when they are not there yet.
//
// The directory is $PPML_DATASETS, or $HOME/.cache/ppml/datasets. The files are public data,
// never protected data, so a plain cache on disk is fine.
package dataset

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Files the script provides.
const (
	Boston       = "boston.csv"        // label "medv", 13 features, 506 rows
	BreastCancer = "breast_cancer.csv" // label "target" (0 malignant, 1 benign), 30 features, 569 rows
	// Fashion-MNIST, gzip-compressed IDX: 60,000 training and 10,000 test 28×28 images.
	FashionTrainImages = "fashion-mnist/train-images-idx3-ubyte.gz"
	FashionTrainLabels = "fashion-mnist/train-labels-idx1-ubyte.gz"
	FashionTestImages  = "fashion-mnist/t10k-images-idx3-ubyte.gz"
	FashionTestLabels  = "fashion-mnist/t10k-labels-idx1-ubyte.gz"
	// SpamAssassin public corpus: columns group, id, text, label (1 spam), 6,046 rows.
	Spam = "spam.csv"
)

// Dir returns the dataset directory.
func Dir() (string, error) {
	if d := os.Getenv("PPML_DATASETS"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("dataset directory: set PPML_DATASETS: %w", err)
	}
	return filepath.Join(home, ".cache", "ppml", "datasets"), nil
}

// script is <repo>/scripts/datasets.sh, found from this file's location.
func script() string {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(filepath.Dir(file))) // <repo>/ml/dataset/dataset.go
	return filepath.Join(repo, "scripts", "datasets.sh")
}

var fetchMu sync.Mutex

// Path returns the path of a dataset file, running scripts/datasets.sh first if it is missing.
func Path(name string) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	fetchMu.Lock()
	defer fetchMu.Unlock()
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	cmd := exec.Command("bash", script(), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("fetch datasets with %s %s: %w\n%s", script(), dir, err, out)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("datasets.sh ran but %s is still missing: %w", p, err)
	}
	return p, nil
}

// Require is Path for tests: a dataset that cannot be had fails the test (it is never a reason
// to skip, since the script needs only npm and apt).
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := Path(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
