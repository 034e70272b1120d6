package envelopebench

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestRun checks the measurement runs end to end (round trip included); the
// speeds themselves are for `ppml bench envelope`, never asserted.
func TestRun(t *testing.T) {
	res, err := Run(8<<20+5, 1<<16, 1)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"raw": res.RawGCM, "encrypt": res.Encrypt, "decrypt": res.Decrypt, "encrypt1": res.Encrypt1, "decrypt1": res.Decrypt1} {
		if v <= 0 {
			t.Errorf("%s throughput %v", name, v)
		}
	}
	if res.EncryptRatio != res.Encrypt/res.RawGCM {
		t.Error("ratio")
	}
}

// TestFiles runs the file benchmark end to end on a small file and checks it
// leaves nothing behind; the speeds are never asserted.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	res, err := Files(context.Background(), dir, 3<<20+5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 4 || res.RawGCM <= 0 || res.Copy <= 0 || res.Write <= 0 || res.WriteRatio != res.Write/res.RawGCM {
		t.Fatalf("%+v", res)
	}
	for _, r := range res.Runs {
		if r.Rate <= 0 || r.Ratio != r.Rate/res.RawGCM || r.Command == "" {
			t.Fatalf("%+v", r)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	// A cancelled run stops and cleans up too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Files(ctx, dir, 1<<20, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left behind after cancel: %v", left)
	}
}
