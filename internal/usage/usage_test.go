package usage

import (
	"testing"
	"time"
)

func TestCPUTimeGrows(t *testing.T) {
	c0 := CPUTime()
	for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
	}
	if c1 := CPUTime(); c1 <= c0 {
		t.Fatalf("CPU time %v after a busy loop, %v before", c1, c0)
	}
}
