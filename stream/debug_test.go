package stream_test

import "testing"

func dump(t *testing.T, f *fixture, names ...string) {
	for _, n := range names {
		for p := 0; p < f.log.Partitions(n); p++ {
			t.Logf("%s/%d: %d records", n, p, len(f.log.Read(n, p)))
		}
	}
}
