// Package usage reads what the process and the machine are using: the
// process's CPU time, which jobs report beside wall time because on a shared
// machine it varies less, and the load average, which benchmarks print beside
// their figures.
package usage

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUTime is the process's CPU time so far (user and system, all threads),
// or 0 when it cannot be read.
func CPUTime() time.Duration {
	return CPUTimes().Total()
}

// Times is the process's CPU time split as the kernel counts it: in its
// own code, and in the kernel on its behalf (system calls, page faults).
// A benchmark reports the system part apart because it moves with what
// the machine does to memory and files, not with the code measured.
type Times struct{ User, System time.Duration }

// CPUTimes is the process's CPU time so far (all threads), or zero when
// it cannot be read.
func CPUTimes() Times {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return Times{}
	}
	return Times{User: time.Duration(ru.Utime.Nano()), System: time.Duration(ru.Stime.Nano())}
}

// Total is user and system time together.
func (t Times) Total() time.Duration { return t.User + t.System }

// Sub is the time spent from u to t.
func (t Times) Sub(u Times) Times { return Times{User: t.User - u.User, System: t.System - u.System} }

// LoadAverage is the machine's 1-minute load average, or 0 when
// /proc/loadavg cannot be read.
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(fields[0], 64)
	return f
}
