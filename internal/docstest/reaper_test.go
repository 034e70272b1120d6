package docstest

import (
	"bytes"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// A document's bash runs under a reaper: the test binary itself, started
// again with reaperVar set, which makes itself a child subreaper
// (PR_SET_CHILD_SUBREAPER) and starts bash. Whatever the document starts
// and then orphans — a server that daemonizes (fork, setsid, parent exits)
// — is reparented to the reaper instead of init, so that when bash ends, or
// the reaper is told to stop (SIGTERM, on a timeout), it finds every one of
// them among its descendants and ends them. This is what tini -s and
// systemd do. It catches what the environment marker (killMarked) cannot:
// redis-server overwrites its environment block with its process title.
const reaperVar = "DOCSTEST_REAPER"

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, linux/prctl.h

// reaperMain is the reaper's main: it runs args and returns its exit status
// once nothing it started is left.
func reaperMain(args []string) int {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		os.Stderr.WriteString("docstest reaper: PR_SET_CHILD_SUBREAPER: " + e.Error() + "\n")
		return 125
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	for _, kv := range os.Environ() {
		if len(kv) < len(reaperVar)+1 || kv[:len(reaperVar)+1] != reaperVar+"=" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		os.Stderr.WriteString("docstest reaper: " + err.Error() + "\n")
		return 125
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-stop:
		cmd.Process.Kill()
		<-done
	}
	endDescendants()
	if cmd.ProcessState == nil {
		return 125
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// endDescendants sends SIGTERM to every descendant, gives them 5 seconds,
// SIGKILLs the rest, and reaps them all (they are its children by then:
// orphans come to the subreaper).
func endDescendants() {
	sig := syscall.SIGTERM
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		var ws syscall.WaitStatus
		for {
			if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
		ds := descendants(os.Getpid())
		if len(ds) == 0 {
			return
		}
		if i == 0 || (sig == syscall.SIGTERM && time.Now().After(deadline)) {
			if i > 0 {
				sig = syscall.SIGKILL
			}
			for _, p := range ds {
				syscall.Kill(p, sig)
			}
		}
		if sig == syscall.SIGKILL && time.Now().After(deadline.Add(5*time.Second)) {
			os.Stderr.WriteString("docstest reaper: processes still running after SIGKILL\n")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// descendants lists the processes below pid, zombies included: a zombie
// child is reaped by the next Wait4, and the reaper must not exit before,
// or the process would outlive it for an instant.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(string(f[1]))
		parent[p] = pp
	}
	var out []int
	for p := range parent {
		for q, n := parent[p], 0; q > 0 && n < 64; q, n = parent[q], n+1 {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
