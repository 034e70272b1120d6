//go:build linux && amd64

package syscalls

import (
	"fmt"
	"runtime"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GramineVersion is the Gramine release whose system-call table Confine
// enforces.
const GramineVersion = "v1.9 (commit 2bb4dcfed29d139fd2ad2fd8f0d24de79096639e)"

// Implemented lists the names of the system calls Gramine has a handler
// for, sorted.
func Implemented() []string {
	names := make([]string, 0, len(implemented))
	for n := range implemented {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IsImplemented reports whether Gramine has a handler for the named call.
func IsImplemented(name string) bool {
	_, ok := implemented[name]
	return ok
}

// Filter is the classic-BPF seccomp program: on x86-64, a call in the
// table is allowed, any other (x32 numbers included) returns ENOSYS; any
// other architecture (int 0x80 i386 calls) also gets ENOSYS.
func Filter() []unix.SockFilter {
	nrs := make([]uint32, 0, len(implemented))
	for _, nr := range implemented {
		nrs = append(nrs, uint32(nr))
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
	const (
		archOff = 4 // offsetof(struct seccomp_data, arch)
		nrOff   = 0 // offsetof(struct seccomp_data, nr)
	)
	enosys := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	prog := []unix.SockFilter{
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, archOff),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AUDIT_ARCH_X86_64, 1, 0),
		stmt(unix.BPF_RET|unix.BPF_K, enosys),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, nrOff),
	}
	// One comparison per call, each jumping over the rest and the ENOSYS
	// return to the final ALLOW. A jump offset is 8 bits: the table must
	// stay below 255 entries, which Gramine's ~180 do.
	n := len(nrs)
	for i, nr := range nrs {
		prog = append(prog, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, nr, uint8(n-i), 0))
	}
	return append(prog,
		stmt(unix.BPF_RET|unix.BPF_K, enosys),
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW))
}

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// Confine sets no_new_privs (which an unprivileged seccomp filter needs)
// and installs Filter on every thread of this process. It cannot be undone;
// children inherit it.
func Confine() error {
	if len(implemented) > 254 {
		return fmt.Errorf("syscalls: %d calls do not fit 8-bit BPF jumps", len(implemented))
	}
	f := Filter()
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("syscalls: set no_new_privs: %w", err)
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return fmt.Errorf("syscalls: install seccomp filter: %w", errno)
	}
	return nil
}

// Exec confines this process and replaces it with argv[0] (an absolute
// path) run with argv and env. It returns only on error.
func Exec(argv, env []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("syscalls: nothing to run")
	}
	if err := Confine(); err != nil {
		return err
	}
	err := unix.Exec(argv[0], argv, env)
	return fmt.Errorf("syscalls: exec %s: %w", argv[0], err)
}
