package benchcli

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	streambench "github.com/ppml/ppml/bench/stream"
	"github.com/ppml/ppml/internal/command"
)

func newBenchStreamCmd() *cobra.Command {
	var cfg streambench.Config
	var size string
	var asJSON bool
	c := &cobra.Command{
		Use:   "stream",
		Short: "Streaming WordCount on encrypted records through embedded JetStream vs the transport and an in-memory count",
		Long: `WordCount over generated text (50 MB by default) sealed as encrypted stream records (100 lines
each) in embedded NATS JetStream, with 1-minute event-time windows and checkpoints, run on 1
and 2 workers. In the same run: a plain consumer that reads the same text from the same
broker and counts words without decryption, windows or checkpoints (the transport ceiling),
and a plain in-memory Go word count. Prints records/s, end-to-end latency (publish to
checkpoint commit, at a paced publishing rate) and the pipelines' ratios to both baselines
(target: ratio_vs_transport ≤ 1.3). The transport's and every pipeline's counts are checked
against the in-memory count. Before the measured runs, the transport and a 1-worker pipeline
run once unmeasured (--no-warmup: not), so that no measured run pays for growing the heap.
The baselines and pipelines are then measured in --rounds rounds, interleaved; each figure is
the median over the rounds, a ratio the median of the ratios within a round.`,
		Example: `  ppml bench stream
  ppml bench stream --size 10MiB --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseSize(size)
			if err != nil {
				return &command.UsageError{Err: fmt.Errorf("--size: %w", err)}
			}
			cfg.Size = n
			if cfg.Rounds < 1 {
				return &command.UsageError{Err: fmt.Errorf("--rounds: %d: at least 1", cfg.Rounds)}
			}
			for _, w := range cfg.Workers {
				if w < 1 {
					return &command.UsageError{Err: fmt.Errorf("--workers: %d: a pipeline needs at least 1 worker", w)}
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && !asJSON && command.IsTerminal(f) {
				cfg.Progress = func(s string) { fmt.Fprintf(f, "bench stream: %s...\n", s) }
			}
			rep, err := streambench.Run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("bench stream: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return command.WriteJSON(w, rep)
			}
			fmt.Fprintf(w, "stream benchmark: WordCount over %.1f MB (%d records of %d lines, %d words, %d distinct), %d partitions, %d windows, checkpoints every %s, %d CPUs\n",
				float64(rep.TextBytes)/1e6, rep.Records, rep.LinesPerRecord, rep.Words, rep.DistinctWords, rep.Partitions, rep.Windows, rep.Checkpoint, rep.CPUs)
			fmt.Fprintf(w, "  %-28s %8s %8s %8s %10s %8s %9s %9s %9s %9s %9s %9s\n", "", "seconds", "CPU s", "sys s", "records/s", "MB/s", "p50 ms", "p99 ms", "vs trans", "vs mem", "CPU trans", "CPU mem")
			row := func(label string, r streambench.Result) {
				fmt.Fprintf(w, "  %-28s %8.2f %8.2f %8.2f %10.0f %8.1f %9.1f %9.1f %9.2f %9.2f %9.2f %9.2f\n", label, r.Seconds, r.CPUSeconds, r.SystemCPUSeconds, r.RecordsPerSec, r.MBPerSec,
					r.P50LatencyMs, r.P99LatencyMs, r.RatioVsTransport, r.RatioVsMemory, r.CPURatioVsTransport, r.CPURatioVsMemory)
			}
			row("in-memory Go word count", rep.Memory)
			row("transport (plain consumer)", rep.Transport)
			for _, p := range rep.Pipeline {
				row(fmt.Sprintf("pipeline, %d worker(s)", p.Workers), p)
			}
			if !rep.Verified {
				return fmt.Errorf("bench stream: the transport's or a pipeline's counts differ from the in-memory count")
			}
			fmt.Fprintf(w, "medians of %d rounds; counts verified against the in-memory count; target ratio_vs_transport ≤ %.1f; load average before the run %.1f on %d CPUs\n", rep.Rounds, rep.Target, rep.LoadAverage, rep.CPUs)
			return nil
		},
	}
	c.Flags().StringVar(&size, "size", "50000000", "bytes of text to count (50 MB; also 10MiB, 1GiB)")
	c.Flags().IntVar(&cfg.Partitions, "partitions", 4, "source partitions")
	c.Flags().DurationVar(&cfg.Checkpoint, "checkpoint", 0, "checkpoint interval (default 2s, the engine's)")
	c.Flags().StringVar(&cfg.Dir, "dir", "", "JetStream's store (default: a temporary directory)")
	c.Flags().IntSliceVar(&cfg.Workers, "workers", nil, "worker counts of the pipeline runs (default 1,2)")
	c.Flags().StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of each pipeline run to PREFIX-Nw.pprof (N workers)")
	c.Flags().IntVar(&cfg.Rounds, "rounds", 3, "measured rounds of every run (figures are medians)")
	c.Flags().BoolVar(&cfg.NoWarmup, "no-warmup", false, "measure cold runs (the first then also grows the heap)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
