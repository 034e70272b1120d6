package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/envelope/throughput"
)

// benchSubs holds the bench subcommands; other groups add theirs with
// registerBench from their own init.
var benchSubs []func() *cobra.Command

// registerBench adds a subcommand constructor under "ppml bench".
func registerBench(newCmd func() *cobra.Command) { benchSubs = append(benchSubs, newCmd) }

func init() {
	register(benchCmd)
	registerBench(newBenchEnvelopeCmd)
}

// benchCmd builds "ppml bench" with every registered subcommand.
func benchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure performance on this machine",
		Example: `  ppml bench envelope
  ppml bench envelope --size 256MiB --json`,
	}
	for _, f := range benchSubs {
		c.AddCommand(f())
	}
	return c
}

func newBenchEnvelopeCmd() *cobra.Command {
	var size string
	var rounds int
	var asJSON bool
	c := &cobra.Command{
		Use:   "envelope",
		Short: "Envelope encrypt/decrypt throughput against raw single-core AES-256-GCM",
		Long: `Encrypt an in-memory stream (1 GiB by default) into memory with the envelope, decrypt it
again, and seal the same data with raw AES-256-GCM on one core in the same run. Prints each
throughput and the envelope's ratio to raw AES-GCM (target: at least 0.7 both ways).`,
		Example: `  ppml bench envelope
  ppml bench envelope --size 256MiB --rounds 5 --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseSize(size)
			if err != nil {
				return &UsageError{Err: fmt.Errorf("--size: %w", err)}
			}
			if rounds < 1 {
				return usageErrorf("--rounds must be at least 1")
			}
			res, err := throughput.Run(n, 0, rounds)
			if err != nil {
				return fmt.Errorf("bench envelope: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res)
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
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
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
