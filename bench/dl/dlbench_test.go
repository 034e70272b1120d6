package dlbench

import (
	"context"
	"testing"
)

// A small run of the whole benchmark: both sides train and report plausible figures. Speed is
// not asserted here (ppml bench dl measures it).
func TestSmallRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Epochs, cfg.BatchSize, cfg.Images, cfg.TestImages, cfg.TempDir = 1, 64, 1500, 500, t.TempDir()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.TrainImages != 1500 || res.TestImages != 500 || res.EngineEpochSeconds <= 0 || res.PythonEpochSeconds <= 0 || res.EnginePredictRate <= 0 {
		t.Fatalf("%+v", res)
	}
	if res.EngineAccuracy < 0.5 || res.PythonAccuracy < 0.5 {
		t.Fatalf("accuracy after one epoch on 1,500 images: engine %.3f, python %.3f", res.EngineAccuracy, res.PythonAccuracy)
	}
}
