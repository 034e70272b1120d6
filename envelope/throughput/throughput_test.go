package throughput

import "testing"

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
