package mlengine

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/ml/dataset"
)

// RunFiles with a local key: inputs are envelopes, outputs are encrypted, the directory holds
// no plaintext afterwards, and a failing job leaves no output file.
func TestRunFilesEncrypted(t *testing.T) {
	secret := make([]byte, envelope.LocalKeySize)
	rand.Read(secret)
	key, err := envelope.NewLocalKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain, err := os.ReadFile(dataset.Require(t, dataset.Boston))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "boston.csv.ppml")
	var buf bytes.Buffer
	if _, err := envelope.Encrypt(&buf, bytes.NewReader(plain), key, &envelope.Options{ContentType: envelope.TypeCSV}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(enc, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	model := filepath.Join(dir, "m.ppml")
	spec := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Regression, Label: "medv", Rounds: 10, TestFraction: 0.2, Seed: 42}
	if _, err := RunFiles(ctx, Config{Threads: 1}, spec, Files{Inputs: map[string]string{mlspec.InputTrain: enc},
		Outputs: map[string]string{mlspec.OutputModel: model}, Resolver: key, Wrapper: key}); err != nil {
		t.Fatal(err)
	}
	preds := filepath.Join(dir, "p.csv.ppml")
	res, err := RunFiles(ctx, Config{Threads: 1}, &mlspec.Params{Task: mlspec.Predict}, Files{Inputs: map[string]string{mlspec.InputModel: model, mlspec.InputData: enc},
		Outputs: map[string]string{mlspec.OutputPredictions: preds}, Resolver: key, Wrapper: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 506 {
		t.Fatalf("%d rows", res.Rows)
	}
	var dec bytes.Buffer
	f, err := os.Open(preds)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := envelope.Decrypt(&dec, f, key); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dec.String(), "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat,medv,prediction\n") {
		t.Fatalf("predictions start %q", dec.String()[:100])
	}
	// Nothing in the directory is plaintext: no file contains the CSV header or a model key.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if bytes.Contains(b, []byte("crim,zn")) || bytes.Contains(b, []byte("ppml-model")) || bytes.Contains(b, []byte("learner")) {
			t.Errorf("%s holds plaintext", e.Name())
		}
	}
	// A failing job (missing label) leaves no output file and no temp file behind.
	bad := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Regression, Label: "price", Rounds: 3}
	if _, err := RunFiles(ctx, Config{Threads: 1}, bad, Files{Inputs: map[string]string{mlspec.InputTrain: enc},
		Outputs: map[string]string{mlspec.OutputModel: filepath.Join(dir, "bad.ppml")}, Resolver: key, Wrapper: key}); err == nil {
		t.Fatal("no error")
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(entries) {
		t.Errorf("failed job left files: %v", after)
	}
}
