package exec

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// # The shim
//
// The program is not started directly: the child is first this very
// binary, started as a shim, which prepares the process and then execve's
// the program in place, keeping its pid, process group and descriptors.
// It does, in the child, what os/exec cannot do between fork and exec:
//
//   - receive the inputs streamed over descriptor 3 (stream.go) into the
//     child's own in-memory directory — in Gramine, where each process is
//     an enclave with its own tmpfs, the only way files reach the child;
//   - make and enter the private working directory, for the same reason
//     (a directory made by the parent is not in the child's tmpfs);
//   - lower RLIMIT_DATA to the job's memory (soft and hard).
//
// Gramine runs execve inside the same enclave, so what the shim leaves in
// its tmpfs is there for the program. Neither cgroups nor privileges are
// needed.
//
// The limit is set here because setting it on the child's pid after Start
// (prlimit) races with the program's first allocations. RLIMIT_DATA rather
// than RLIMIT_AS: since Linux 4.7 it counts private writable mappings (heap
// and anonymous mmap, which is where numpy, Go and JVM heaps live) but not
// PROT_NONE reservations, so runtimes that reserve large virtual ranges up
// front (Go, JVM, some allocators) still start; RLIMIT_AS would kill them
// at start-up under a limit they never use.

// shimArg0 and shimEnv mark a child started as the shim. Both must be
// present, so neither a stray environment variable nor an odd argv[0] alone
// turns an ordinary ppml command into the shim.
const (
	shimArg0 = "ppml-exec-shim"
	shimEnv  = "PPML_EXEC_SHIM"
)

// shimExitCode is the status of a shim that could not prepare or start the
// program (as a shell's "command cannot be executed").
const shimExitCode = 127

// streamFD is the descriptor the input stream reaches the shim on.
const streamFD = 3

func init() {
	if len(os.Args) == 0 || os.Args[0] != shimArg0 || os.Getenv(shimEnv) != "1" {
		return
	}
	err := runShim(os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "ppml exec: %v\n", err)
	os.Exit(shimExitCode)
}

// shimSpec is what the shim does before it becomes the program.
type shimSpec struct {
	memory   int64  // RLIMIT_DATA in bytes; 0: none
	workdir  string // where the program starts
	mkWork   bool   // create workdir (the private one) first
	inputDir string // receive the input stream into it; "": no stream
	prog     string
	argv     []string
}

// args is the shim's argv: shimArg0 MEMORY WORKDIR MKWORK INPUTDIR PROG ARGV...
func (s shimSpec) args() []string {
	mk := "0"
	if s.mkWork {
		mk = "1"
	}
	return append([]string{shimArg0, strconv.FormatInt(s.memory, 10), s.workdir, mk, s.inputDir, s.prog}, s.argv...)
}

func parseShimArgs(args []string) (shimSpec, error) {
	if len(args) < 6 {
		return shimSpec{}, fmt.Errorf("shim: %d arguments, want memory, workdir, mkwork, input directory, program and argv", len(args))
	}
	mem, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || mem < 0 {
		return shimSpec{}, fmt.Errorf("shim: bad memory limit %q", args[0])
	}
	if args[1] == "" || args[1][0] != '/' || (args[2] != "0" && args[2] != "1") || (args[3] != "" && args[3][0] != '/') || args[4] == "" {
		return shimSpec{}, fmt.Errorf("shim: malformed arguments %q", args[:5])
	}
	return shimSpec{memory: mem, workdir: args[1], mkWork: args[2] == "1", inputDir: args[3], prog: args[4], argv: args[5:]}, nil
}

// runShim prepares the process and replaces it with the program; it
// returns only on failure. The shim's marker variable is removed from env.
func runShim(args, env []string) error {
	s, err := parseShimArgs(args)
	if err != nil {
		return err
	}
	if s.inputDir != "" {
		stream := os.NewFile(streamFD, "input stream")
		if err := os.MkdirAll(s.inputDir, 0o700); err != nil {
			return fmt.Errorf("input directory: %w", err)
		}
		err := readStream(stream, dirSink{root: s.inputDir})
		stream.Close()
		if err != nil {
			return fmt.Errorf("receive inputs: %w", err)
		}
	}
	if s.mkWork {
		if err := os.MkdirAll(s.workdir, 0o700); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	if err := os.Chdir(s.workdir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if s.memory > 0 {
		lim := uint64(s.memory)
		if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
			return fmt.Errorf("set memory limit (RLIMIT_DATA %d): %w", lim, err)
		}
	}
	clean := make([]string, 0, len(env))
	for _, kv := range env {
		if len(kv) > len(shimEnv) && kv[:len(shimEnv)+1] == shimEnv+"=" {
			continue
		}
		clean = append(clean, kv)
	}
	if err := unix.Exec(s.prog, s.argv, clean); err != nil {
		return fmt.Errorf("start %s: %w", s.prog, err)
	}
	return nil
}
