package usage

import (
	"syscall"
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

// TestSystemTimeGrows: time in system calls is counted as system time,
// apart from user time (a busy loop of system calls until it shows, for
// at most two seconds: the kernel accounts by ticks).
func TestSystemTimeGrows(t *testing.T) {
	t0 := CPUTimes()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		for range 1000 {
			syscall.Getppid()
		}
		if CPUTimes().Sub(t0).System > 0 {
			return
		}
	}
	t.Fatalf("no system time after 2 s of system calls: %+v", CPUTimes().Sub(t0))
}
