package benchcli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	envelopebench "github.com/ppml/ppml/bench/envelope"
	"github.com/ppml/ppml/internal/command"
)

func newBenchEnvelopeCmd() *cobra.Command {
	var size, dir string
	var rounds int
	var asJSON, files bool
	c := &cobra.Command{
		Use:   "envelope",
		Short: "Envelope encrypt/decrypt throughput against raw single-core AES-256-GCM",
		Long: `Encrypt an in-memory stream (1 GiB by default) into memory with the envelope, decrypt it
again, and seal the same data with raw AES-256-GCM on one core in the same run. Prints each
throughput and the envelope's ratio to raw AES-GCM (target: at least 0.7 both ways).

With --files, measure what ppml encrypt and ppml decrypt do on a file (1 GiB by default) in a
RAM file system (--dir, default /dev/shm): file to file and file to standard output, beside
raw single-core AES-256-GCM over the same bytes in memory, a plain read/write copy of the
file and a write of the same bytes from memory into a new file (the I/O floors: a file output
is written by one writer at a time), in the same run. The commands run in this process, through the
functions the commands call with the options they pass (filecrypt.EncryptFile and
DecryptFile), so the raw cipher and the commands are timed alike; process start-up is left
out. The benchmark needs three times the size free in --dir and removes its files.`,
		Example: `  ppml bench envelope
  ppml bench envelope --size 256MiB --rounds 5 --json
  ppml bench envelope --files
  ppml bench envelope --files --size 256MiB --dir /dev/shm --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseSize(size)
			if err != nil {
				return &command.UsageError{Err: fmt.Errorf("--size: %w", err)}
			}
			if rounds < 1 {
				return command.Usagef("--rounds must be at least 1")
			}
			if files {
				return benchFiles(cmd, dir, size, n, rounds, asJSON)
			}
			if cmd.Flags().Changed("dir") {
				return command.Usagef("--dir goes with --files")
			}
			res, err := envelopebench.Run(n, 0, rounds)
			if err != nil {
				return fmt.Errorf("bench envelope: %w", err)
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			mb := func(v float64) string { return fmt.Sprintf("%6.0f MB/s", v/1e6) }
			fmt.Fprintf(w, "envelope benchmark: %s in memory, %d KiB segments, %d CPUs, best of %d (load average %.1f)\n",
				size, res.SegmentSize>>10, res.CPUs, rounds, res.LoadAverage)
			fmt.Fprintf(w, "                                  wall clock           per CPU second\n")
			fmt.Fprintf(w, "  raw AES-256-GCM, 1 core     %s             %s\n", mb(res.RawGCM), mb(res.RawGCMCPU))
			fmt.Fprintf(w, "  envelope encrypt, %d cores   %s  %5.2fx raw\n", res.CPUs, mb(res.Encrypt), res.EncryptRatio)
			fmt.Fprintf(w, "  envelope decrypt, %d cores   %s  %5.2fx raw\n", res.CPUs, mb(res.Decrypt), res.DecryptRatio)
			fmt.Fprintf(w, "  envelope encrypt, 1 core    %s  %5.2fx raw  %s  %5.2fx raw\n", mb(res.Encrypt1), res.Encrypt1Ratio, mb(res.Encrypt1CPU), res.Encrypt1CPURatio)
			fmt.Fprintf(w, "  envelope decrypt, 1 core    %s  %5.2fx raw  %s  %5.2fx raw\n", mb(res.Decrypt1), res.Decrypt1Ratio, mb(res.Decrypt1CPU), res.Decrypt1CPURatio)
			if res.Busy() {
				fmt.Fprintf(w, "note: other processes kept the CPUs busy; wall-clock ratios are unreliable (multi-core runs get a larger share), per-CPU-second ratios are not affected\n")
			}
			return nil
		},
	}
	c.Flags().StringVar(&size, "size", "1GiB", "stream size (e.g. 256MiB, 1GiB)")
	c.Flags().IntVar(&rounds, "rounds", 3, "runs of each measurement; the best counts")
	command.Positive(c, "rounds")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.Flags().BoolVar(&files, "files", false, "measure ppml encrypt and decrypt on a file in a RAM file system")
	c.Flags().StringVar(&dir, "dir", "/dev/shm", "with --files: directory for the benchmark's files (should be a tmpfs)")
	return c
}

func benchFiles(cmd *cobra.Command, dir, sizeText string, size int64, rounds int, asJSON bool) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := envelopebench.Files(ctx, dir, size, rounds)
	if err != nil {
		return fmt.Errorf("bench envelope --files: %w", err)
	}
	if asJSON {
		return command.WriteJSON(cmd.OutOrStdout(), res)
	}
	w := cmd.OutOrStdout()
	mb := func(v float64) string { return fmt.Sprintf("%6.0f MB/s", v/1e6) }
	kind := "a RAM file system"
	if !res.RAM {
		kind = "NOT a RAM file system: the figures include the disk"
	}
	fmt.Fprintf(w, "envelope file benchmark: %s file in %s (%s), %d CPUs, best of %d (load average %.1f)\n",
		sizeText, res.Dir, kind, res.CPUs, rounds, res.LoadAverage)
	fmt.Fprintf(w, "commands run in-process (filecrypt, as ppml encrypt/decrypt call it); process start-up not included\n")
	fmt.Fprintf(w, "                                   wall clock                        per CPU second\n")
	fmt.Fprintf(w, "  raw AES-256-GCM, 1 core, memory %s                          %s\n", mb(res.RawGCM), mb(res.RawGCMCPU))
	fmt.Fprintf(w, "  plain copy, read+write          %s  %5.2fx raw                %s\n", mb(res.Copy), res.CopyRatio, mb(res.CopyCPU))
	fmt.Fprintf(w, "  write only, from memory         %s  %5.2fx raw                %s\n", mb(res.Write), res.WriteRatio, mb(res.WriteCPU))
	for _, r := range res.Runs {
		fmt.Fprintf(w, "  %-31s %s  %5.2fx raw  %5.2fx copy   %s  %5.2fx raw\n", r.Name, mb(r.Rate), r.Ratio, r.OfCopy, mb(r.CPURate), r.CPURatio)
	}
	fmt.Fprintf(w, "a file output is written by one writer at a time (the file system locks the file for each write): no command writing to a file beats 'write only'\n")
	if res.Busy() {
		fmt.Fprintf(w, "note: other processes kept the CPUs busy; wall-clock ratios are unreliable (multi-core runs get a larger share)\n")
	}
	return nil
}

// parseSize reads sizes like 1GiB, 256MiB, 4096.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if len(s) > len(u.suffix) && s[len(s)-len(u.suffix):] == u.suffix {
			var v int64
			if _, err := fmt.Sscanf(s[:len(s)-len(u.suffix)], "%d", &v); err != nil || v <= 0 {
				return 0, fmt.Errorf("invalid size %q", s)
			}
			if fmt.Sprint(v) != s[:len(s)-len(u.suffix)] {
				return 0, fmt.Errorf("invalid size %q", s)
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("invalid size %q", s)
}
