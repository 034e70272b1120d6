package exec

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// # Memory limit
//
// Go's os/exec cannot set an rlimit in the child between fork and exec, and
// setting it on the child's pid after Start (prlimit) races with the
// program's first allocations. So the child is first this very binary,
// started as a shim: it lowers RLIMIT_DATA (soft and hard) and execve's
// the program in place, keeping its pid, process group, death signal and
// descriptors. Neither cgroups nor privileges are needed, and Gramine
// supports re-executing the binary it runs.
//
// RLIMIT_DATA rather than RLIMIT_AS: since Linux 4.7 it counts private
// writable mappings (heap and anonymous mmap, which is where numpy, Go and
// JVM heaps live) but not PROT_NONE reservations, so runtimes that reserve
// large virtual ranges up front (Go, JVM, some allocators) still start;
// RLIMIT_AS would kill them at start-up under a limit they never use.

// shimArg0 and shimEnv mark a child started as the shim. Both must be
// present, so neither a stray environment variable nor an odd argv[0] alone
// turns an ordinary ppml command into the shim.
const (
	shimArg0 = "ppml-exec-shim"
	shimEnv  = "PPML_EXEC_SHIM"
)

// shimExitCode is the status of a shim that could not set the limit or
// start the program (as a shell's "command cannot be executed").
const shimExitCode = 127

func init() {
	if len(os.Args) == 0 || os.Args[0] != shimArg0 || os.Getenv(shimEnv) != "1" {
		return
	}
	err := runShim(os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "ppml exec: %v\n", err)
	os.Exit(shimExitCode)
}

// shimArgs is the argv of the shim that runs prog with argv under a
// RLIMIT_DATA of limit bytes.
func shimArgs(limit int64, prog string, argv []string) []string {
	return append([]string{shimArg0, strconv.FormatInt(limit, 10), prog}, argv...)
}

// runShim sets the limit and replaces the process with the program; it
// returns only on failure. args is limit, program path, then the program's
// argv; the shim's marker variable is removed from env.
func runShim(args, env []string) error {
	if len(args) < 3 {
		return fmt.Errorf("memory limit shim: %d arguments, want limit, program and argv", len(args))
	}
	limit, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || limit == 0 {
		return fmt.Errorf("memory limit shim: bad limit %q", args[0])
	}
	if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		return fmt.Errorf("set memory limit (RLIMIT_DATA %d): %w", limit, err)
	}
	clean := make([]string, 0, len(env))
	for _, kv := range env {
		if len(kv) > len(shimEnv) && kv[:len(shimEnv)+1] == shimEnv+"=" {
			continue
		}
		clean = append(clean, kv)
	}
	if err := unix.Exec(args[1], args[2:], clean); err != nil {
		return fmt.Errorf("start %s: %w", args[1], err)
	}
	return nil
}
