package streambench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmallRun runs the benchmark on 2 MB in two rounds: it checks that
// every part runs and that the pipelines' counts equal the in-memory
// count, not speed.
func TestSmallRun(t *testing.T) {
	dir := t.TempDir()
	rep, err := Run(context.Background(), Config{Size: 2_000_000, Dir: dir, LatencyRecords: 200, LatencyRate: 400, Checkpoint: 200 * time.Millisecond, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Error("a pipeline's word counts differ from the in-memory count")
	}
	if len(rep.Pipeline) != 2 || rep.Transport.Seconds <= 0 || rep.Memory.Seconds <= 0 || rep.Words == 0 {
		t.Fatalf("incomplete report: %+v", rep)
	}
	for _, p := range rep.Pipeline {
		if p.P99LatencyMs <= 0 || p.RatioVsTransport <= 0 || p.Checkpoints == 0 || len(p.Rounds) != 2 {
			t.Errorf("pipeline %d workers: %+v", p.Workers, p)
		}
	}
	// Every pipeline run deleted what it made: the store keeps only the
	// inputs (the text, plain and sealed, and the latency runs' sources:
	// bench-lat-plain for the transport, bench-lat-RUN-Nw-text for each
	// pipeline).
	streams, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "*"))
	if err != nil || len(streams) == 0 {
		t.Fatalf("no streams in the store (%v): is its layout still jetstream/ACCOUNT/streams/NAME?", err)
	}
	for _, s := range streams {
		n := filepath.Base(s)
		latencySource := strings.HasPrefix(n, "bench-lat-") && strings.HasSuffix(n, "-text")
		if n != "bench-plain" && n != "bench-text" && n != "bench-lat-plain" && !latencySource {
			t.Errorf("stream %s left in the store after the runs", n)
		}
	}
	t.Logf("%+v", rep)
}
