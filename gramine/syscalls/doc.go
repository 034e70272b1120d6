// Package syscalls confines a process to the Linux system calls that
// Gramine implements, so that the runtime can be tested against Gramine's
// system-call surface on a machine without SGX or Gramine.
//
// Inside a Gramine enclave a system call that Gramine's LibOS has no handler
// for fails with ENOSYS (memfd_create, prctl, symlink, clone3, pidfd_open,
// ...). Confine installs a seccomp filter that does the same on Linux: every
// system call outside Gramine's table (GramineVersion names the release it
// was taken from) returns ENOSYS, the others run as usual. The filter is
// inherited across fork and execve, so a process confined before it execs
// ppml-run runs the whole runtime, its engines and the programs it starts
// under Gramine's surface.
//
// What a filter cannot show is listed in docs/sgx.md: Gramine implements
// some calls only in part (flags it rejects, files it does not emulate), and
// nothing here measures enclave memory or runs an enclave.
package syscalls
