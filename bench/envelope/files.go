package envelopebench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/filecrypt"
	"github.com/ppml/ppml/internal/usage"
)

// FileResult is `ppml bench envelope --files`: the encrypt and decrypt
// commands' code path (filecrypt.EncryptFile and DecryptFile, with the
// options the commands pass) on a file in a RAM file system, beside raw
// single-core AES-256-GCM over the same bytes in memory, in the same run.
// Throughputs are plaintext bytes per second of wall-clock time; ratios are
// against raw AES-GCM. CPU figures are bytes per second of the process's CPU
// time (all threads, kernel included), which other processes' load does not
// distort.
type FileResult struct {
	Bytes       int64   `json:"bytes"`
	Dir         string  `json:"dir"`
	RAM         bool    `json:"dir_in_ram"` // Dir is a tmpfs
	CPUs        int     `json:"cpus"`
	Rounds      int     `json:"rounds"`
	LoadAverage float64 `json:"load_average"` // 1-minute load before the run

	RawGCM    float64 `json:"raw_aes_256_gcm_bytes_per_sec"`
	RawGCMCPU float64 `json:"raw_aes_256_gcm_bytes_per_cpu_sec"`
	// Copy is a plain read/write copy of the plaintext file into a new file
	// in 1 MiB pieces: the I/O any file-to-file command does, with no
	// cryptography: the floor the commands cannot beat.
	Copy      float64 `json:"copy_bytes_per_sec"`
	CopyCPU   float64 `json:"copy_bytes_per_cpu_sec"`
	CopyRatio float64 `json:"copy_ratio"`
	// Write writes the same number of bytes from memory into a new file in
	// 1 MiB pieces: a file output's share of the work alone. A file system
	// like tmpfs takes the file's lock for every write, so writes into one
	// file do not run on two cores at once, and no command that writes its
	// whole output there can be faster than this.
	Write      float64 `json:"write_bytes_per_sec"`
	WriteCPU   float64 `json:"write_bytes_per_cpu_sec"`
	WriteRatio float64 `json:"write_ratio"`

	Runs []FileRun `json:"runs"`
}

// FileRun is one command measured.
type FileRun struct {
	Name     string  `json:"name"` // e.g. "encrypt file to file"
	Command  string  `json:"command"`
	Rate     float64 `json:"bytes_per_sec"`
	CPURate  float64 `json:"bytes_per_cpu_sec"`
	Ratio    float64 `json:"ratio"`      // Rate / raw AES-GCM
	CPURatio float64 `json:"cpu_ratio"`  // CPURate / raw AES-GCM per CPU second
	OfCopy   float64 `json:"copy_ratio"` // Rate / Copy
}

// Busy reports whether other processes competed for the CPUs, which makes
// wall-clock ratios unreliable.
func (r FileResult) Busy() bool { return r.LoadAverage > float64(r.CPUs)+0.5 }

// Files measures the commands on a size-byte file in a new directory under
// dir (removed afterwards, also when ctx is cancelled), best of rounds. The
// outputs of each run are removed before the next, outside the timing, so
// no run pays for freeing the previous one's pages.
func Files(ctx context.Context, dir string, size int64, rounds int) (FileResult, error) {
	rounds = max(rounds, 1)
	res := FileResult{Bytes: size, Dir: dir, CPUs: runtime.GOMAXPROCS(0), Rounds: rounds, LoadAverage: usage.LoadAverage()}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return res, fmt.Errorf("benchmark directory: %w", err)
	}
	res.RAM = st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
	if need := uint64(3*size + 64<<20); st.Bavail*uint64(st.Bsize) < need {
		return res, fmt.Errorf("benchmark directory %s has %d MiB free; the benchmark needs %d MiB (plaintext, envelope and decrypted copy)", dir, st.Bavail*uint64(st.Bsize)>>20, need>>20)
	}
	work, err := os.MkdirTemp(dir, "ppml-bench-files-")
	if err != nil {
		return res, fmt.Errorf("benchmark directory: %w", err)
	}
	defer os.RemoveAll(work)
	p := func(name string) string { return filepath.Join(work, name) }

	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	if err := writePattern(p("data.bin"), chunk, size); err != nil {
		return res, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	key, err := envelope.NewLocalKey(secret)
	if err != nil {
		return res, err
	}
	quiet := filecrypt.Options{Quiet: true}
	if _, err := filecrypt.EncryptFile(p("data.bin"), p("data.bin.ppml"), key, quiet); err != nil {
		return res, fmt.Errorf("encrypt: %w", err)
	}

	// Raw AES-GCM seals the same amount of data, 1 MiB at a time, from
	// memory into one reused buffer: the cipher's own speed on one core.
	pt := make([]byte, 64<<20)
	for off := 0; off < len(pt); off += len(chunk) {
		copy(pt[off:], chunk)
	}
	gk := make([]byte, 32)
	rand.Read(gk)
	blk, _ := aes.NewCipher(gk)
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		return res, err
	}
	raw := func() error {
		out := make([]byte, len(chunk)+16)
		nonce := make([]byte, 12)
		for done := int64(0); done < size; {
			for off := 0; off < len(pt) && done < size; off += len(chunk) {
				n := int(min(int64(len(chunk)), size-done))
				nonce[0]++
				gcm.Seal(out[:0], nonce, pt[off:off+n], nil)
				done += int64(n)
			}
		}
		return nil
	}
	clean := func(names ...string) func() {
		return func() {
			for _, n := range names {
				os.Remove(p(n))
			}
		}
	}
	// Every run starts with no other run's output left, so the directory
	// never holds more than the plaintext, the envelope and one output.
	cleanOutputs := clean("copy.bin", "write.bin", "out.ppml", "out.bin", "stdout")
	// toStdout runs f with the command's standard output redirected to a
	// new file, as `ppml ... -o - > FILE` does.
	toStdout := func(f func(o filecrypt.Options) error) func() error {
		return func() error {
			out, err := os.OpenFile(p("stdout"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			o := quiet
			o.Stdout = out
			err = f(o)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			return err
		}
	}
	type cmd struct {
		run
		command string
		before  func()
	}
	cmds := []*cmd{
		{run: run{name: "encrypt file to file", f: func() error {
			_, err := filecrypt.EncryptFile(p("data.bin"), p("out.ppml"), key, quiet)
			return err
		}}, command: "ppml encrypt --key K -o OUT.ppml IN", before: cleanOutputs},
		{run: run{name: "decrypt file to file", f: func() error {
			_, err := filecrypt.DecryptFile(p("data.bin.ppml"), p("out.bin"), key, quiet)
			return err
		}}, command: "ppml decrypt --key K -o OUT IN.ppml", before: cleanOutputs},
		{run: run{name: "encrypt file to stdout", f: toStdout(func(o filecrypt.Options) error {
			_, err := filecrypt.EncryptFile(p("data.bin"), "-", key, o)
			return err
		})}, command: "ppml encrypt --key K -o - IN > OUT.ppml", before: cleanOutputs},
		{run: run{name: "decrypt file to stdout", f: toStdout(func(o filecrypt.Options) error {
			_, err := filecrypt.DecryptFile(p("data.bin.ppml"), "-", key, o)
			return err
		})}, command: "ppml decrypt --key K -o - IN.ppml > OUT", before: cleanOutputs},
	}
	rawRun := &cmd{run: run{name: "raw AES-GCM", f: raw, thread: true}}
	copyRun := &cmd{run: run{name: "copy", f: func() error { return copyFile(p("data.bin"), p("copy.bin")) }}, before: cleanOutputs}
	writeRun := &cmd{run: run{name: "write", f: func() error { return writePattern(p("write.bin"), chunk, size) }}, before: cleanOutputs}
	all := append([]*cmd{rawRun, copyRun, writeRun}, cmds...)
	for i := 0; i < rounds; i++ {
		for _, c := range all {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if c.before != nil {
				c.before()
			}
			runtime.GC()
			if err := c.measure(); err != nil {
				return res, err
			}
		}
	}
	wall := func(r *run) float64 { return float64(size) / r.wall.Seconds() }
	cpu := func(r *run) float64 { return float64(size) / max(r.cpu, time.Microsecond).Seconds() }
	res.RawGCM, res.RawGCMCPU = wall(&rawRun.run), cpu(&rawRun.run)
	res.Copy, res.CopyCPU = wall(&copyRun.run), cpu(&copyRun.run)
	res.CopyRatio = res.Copy / res.RawGCM
	res.Write, res.WriteCPU = wall(&writeRun.run), cpu(&writeRun.run)
	res.WriteRatio = res.Write / res.RawGCM
	for _, c := range cmds {
		r := FileRun{Name: c.name, Command: c.command, Rate: wall(&c.run), CPURate: cpu(&c.run)}
		r.Ratio, r.CPURatio, r.OfCopy = r.Rate/res.RawGCM, r.CPURate/res.RawGCMCPU, r.Rate/res.Copy
		res.Runs = append(res.Runs, r)
	}
	return res, nil
}

func writePattern(path string, chunk []byte, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	for done := int64(0); done < size; {
		n, err := f.Write(chunk[:min(int64(len(chunk)), size-done)])
		if err != nil {
			f.Close()
			return err
		}
		done += int64(n)
	}
	return f.Close()
}

// copyFile copies with read and write in 1 MiB pieces (not
// copy_file_range, which a command that transforms the data cannot use).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				out.Close()
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	return out.Close()
}
