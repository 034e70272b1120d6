package mlbench

import (
	"context"
	"os"
	"testing"
)

// A small run checks the wiring (encrypt, memfd, engine, Python); the numbers are not asserted.
func TestSmallRun(t *testing.T) {
	dir := t.TempDir()
	res, err := Run(context.Background(), Config{Rows: 2000, Cols: 5, Rounds: 3, MaxDepth: 3, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.EncryptedBytes == 0 || res.EngineTrainSeconds <= 0 || res.PythonTrainSeconds <= 0 || res.Ratio <= 0 {
		t.Fatalf("%+v", res)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
