package ccel

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ppml/ppml/attest"
)

type fakeAttester struct{ platform attest.Platform }

func (fakeAttester) Name() string { return "tsm" }

func (f fakeAttester) Evidence(context.Context, [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	return &attest.Evidence{Platform: f.platform, Data: []byte("quote")}, nil
}

// TestAttesterAddsTheLog: TDX evidence gets the log cut at its end; an
// absent or unparsable log area leaves the evidence without one; other
// platforms get none.
func TestAttesterAddsTheLog(t *testing.T) {
	area := readLog(t, "ccel_grub.bin.gz") // 64 KiB area, 0xFF after the log
	l, _ := Parse(area)
	dir := t.TempDir()
	path := filepath.Join(dir, "CCEL")
	os.WriteFile(path, area, 0o400)
	a := &Attester{Base: fakeAttester{attest.PlatformTDX}, Path: path}
	ev, err := a.Evidence(context.Background(), [64]byte{})
	if err != nil || !bytes.Equal(ev.EventLog, area[:l.Length]) || a.Name() != "tsm" {
		t.Fatalf("tdx: %v, %d log bytes (want %d)", err, len(ev.EventLog), l.Length)
	}
	for name, p := range map[string]string{"absent": filepath.Join(dir, "none"), "garbage": filepath.Join(dir, "garbage")} {
		os.WriteFile(filepath.Join(dir, "garbage"), []byte("not a log"), 0o400)
		ev, err := (&Attester{Base: fakeAttester{attest.PlatformTDX}, Path: p}).Evidence(context.Background(), [64]byte{})
		if err != nil || ev.EventLog != nil {
			t.Fatalf("%s: %v %d", name, err, len(ev.EventLog))
		}
	}
	ev, err = (&Attester{Base: fakeAttester{attest.PlatformSNP}, Path: path}).Evidence(context.Background(), [64]byte{})
	if err != nil || ev.EventLog != nil {
		t.Fatalf("snp: %v", err)
	}
}
