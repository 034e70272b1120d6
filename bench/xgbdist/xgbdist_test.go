package xgbdistbench

import (
	"context"
	"testing"
)

// A small run measures all three variants and finds one model.
func TestRun(t *testing.T) {
	r, err := Run(context.Background(), Config{Rows: 2000, Cols: 5, Rounds: 3, MaxDepth: 3, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.SingleSeconds <= 0 || r.PlainSeconds <= 0 || r.TunnelSeconds <= 0 || r.Ratio <= 0 {
		t.Fatalf("result %+v", r)
	}
	if !r.SameModel || !r.EqualsSingle {
		t.Fatalf("models differ: %+v", r)
	}
}
