package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/memfd"
)

// # How inputs reach the program
//
// Two routes, chosen per input, one contract for the program: each input
// is a read-only regular file (or a directory of them) it opens by the
// path in PPML_INPUT_<NAME>, as often as it likes, and may seek in or map.
//
//   - Shared: an input whose files are memfds (Linux, including TDX and
//     SEV-SNP guests) is handed over as inherited descriptors; the program
//     opens /proc/self/fd/N, which reaches the very memfd: no copy. A
//     directory input is a private directory of symbolic links to those
//     paths.
//   - Streamed: an input whose files are tmpfs files, which is what the
//     runtime has where memfd_create is missing — Gramine, where the child
//     is another enclave with a tmpfs of its own — is sent over a pipe to
//     the shim, which writes it into the child's in-memory directory
//     (stream.go) before the program starts. So is a directory input where
//     symbolic links are missing (Gramine again). It costs a copy in the
//     child's memory, which a separate enclave needs anyway.

// handover is the plan for one run's inputs.
type handover struct {
	shared   []Input
	stream   []streamEntry
	inputDir string         // where the shim writes streamed inputs
	streamed map[string]int // input name -> index of its first entry
	pipeR    *os.File       // the shim's end, descriptor 3
	pipeW    *os.File
}

// planInputs chooses each input's route.
func planInputs(inputs []Input, private string) (*handover, error) {
	h := &handover{streamed: map[string]int{}}
	symlinks := -1 // unknown until a shared directory input needs them
	for _, in := range inputs {
		if shareable(in) {
			if !in.IsDir {
				h.shared = append(h.shared, in)
				continue
			}
			if symlinks < 0 {
				symlinks = 0
				if canSymlink(private) {
					symlinks = 1
				}
			}
			if symlinks == 1 {
				h.shared = append(h.shared, in)
				continue
			}
		}
		h.streamed[in.Name] = len(h.stream)
		if !in.IsDir {
			h.stream = append(h.stream, streamEntry{rel: in.Name, file: in.File})
			continue
		}
		h.stream = append(h.stream, streamEntry{rel: in.Name})
		for _, e := range in.Dir {
			rel := in.Name + "/" + e.Path
			if !validStreamPath(rel) || !strings.HasPrefix(rel, in.Name+"/") {
				return nil, fmt.Errorf("exec: input %s: entry %q escapes its directory", in.Name, e.Path)
			}
			h.stream = append(h.stream, streamEntry{rel: rel, file: e.File})
		}
	}
	if len(h.stream) == 0 {
		return h, nil
	}
	memfs, err := memfd.MemFS()
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	if h.inputDir, err = os.MkdirTemp(memfs, "ppml-exec-in-"); err != nil {
		return nil, fmt.Errorf("exec: input directory: %w", err)
	}
	if h.pipeR, h.pipeW, err = os.Pipe(); err != nil {
		h.cleanup()
		return nil, fmt.Errorf("exec: input stream: %w", err)
	}
	return h, nil
}

// shareable: every file of the input is a memfd.
func shareable(in Input) bool {
	if !in.IsDir {
		return in.File != nil && in.File.IsMemfd()
	}
	for _, e := range in.Dir {
		if !e.File.IsMemfd() {
			return false
		}
	}
	return true
}

// canSymlink reports whether symbolic links can be made in dir (Gramine
// answers ENOSYS).
func canSymlink(dir string) bool {
	probe := filepath.Join(dir, ".symlink-probe")
	err := os.Symlink("probe", probe)
	os.Remove(probe)
	return !errors.Is(err, unix.ENOSYS)
}

// share attaches the shared inputs to cmd (after the stream's descriptor,
// if any) and sets every input's variable.
func (h *handover) share(cmd *osexec.Cmd, vars map[string]string, private string) error {
	for name, i := range h.streamed {
		vars[job.InputEnv(name)] = filepath.Join(h.inputDir, filepath.FromSlash(h.stream[i].rel))
	}
	attach := func(f *memfd.File) string {
		cmd.ExtraFiles = append(cmd.ExtraFiles, f.OSFile())
		return "/proc/self/fd/" + strconv.Itoa(2+len(cmd.ExtraFiles))
	}
	for _, in := range h.shared {
		if !in.IsDir {
			vars[job.InputEnv(in.Name)] = attach(in.File)
			continue
		}
		dir := filepath.Join(private, "in", in.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("exec: input directory %s: %w", in.Name, err)
		}
		for _, e := range in.Dir {
			link := filepath.Join(dir, filepath.FromSlash(e.Path))
			if !strings.HasPrefix(link, dir+string(filepath.Separator)) {
				return fmt.Errorf("exec: input %s: entry %q escapes its directory", in.Name, e.Path)
			}
			if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
				return fmt.Errorf("exec: input directory %s: %w", in.Name, err)
			}
			if err := os.Symlink(attach(e.File), link); err != nil {
				return fmt.Errorf("exec: input directory %s: %w", in.Name, err)
			}
		}
		vars[job.InputEnv(in.Name)] = dir
	}
	return nil
}

// send streams the inputs to the started shim; the channel yields the
// outcome once the stream is written or the shim has gone.
func (h *handover) send() <-chan error {
	ch := make(chan error, 1)
	if h.pipeW == nil {
		ch <- nil
		return ch
	}
	// The child holds its own copy of the read end: this one would keep
	// a write to a dead shim from failing.
	h.pipeR.Close()
	go func() {
		err := writeStream(h.pipeW, h.stream)
		if cerr := h.pipeW.Close(); err == nil {
			err = cerr
		}
		ch <- err
	}()
	return ch
}

// cleanup releases the pipe and removes the parent's input directory (on
// Linux the shim's copies are in it; in Gramine they are in the child's
// enclave and went with it).
func (h *handover) cleanup() {
	if h.pipeR != nil {
		h.pipeR.Close()
	}
	if h.pipeW != nil {
		h.pipeW.Close()
	}
	if h.inputDir != "" {
		os.RemoveAll(h.inputDir)
	}
}
