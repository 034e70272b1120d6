package queue

import (
	"runtime"
	"strings"
	"testing"
)

// TestDataBoundedBeforeDecoding: an entry's data field larger than any record's base64 is
// refused before it is decoded (Redis values reach 512 MB), in both serdes.
func TestDataBoundedBeforeDecoding(t *testing.T) {
	w := &Worker{cfg: Config{AllowPlaintext: true}}
	for _, c := range []struct{ data, serde string }{
		{strings.Repeat("A", maxDataLen+4), ""},
		{"{" + strings.Repeat(" ", maxDataLen), "stream"},
	} {
		var err error
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		_, _, err = w.decode("u", c.data, c.serde)
		runtime.ReadMemStats(&b)
		if alloc := b.TotalAlloc - a.TotalAlloc; alloc > 1<<20 {
			t.Errorf("serde %q: %d bytes allocated", c.serde, alloc)
		}
		if err == nil || !strings.Contains(err.Error(), "more than the") {
			t.Errorf("serde %q: %v", c.serde, err)
		}
	}
}
