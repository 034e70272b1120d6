package benchcli

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	tpchbench "github.com/ppml/ppml/bench/tpch"
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/tpch"
)

func newBenchTPCHCmd() *cobra.Command {
	var (
		sf                    float64
		threads, rounds       int
		memory, answers, qs   string
		scratch               string
		keep, asJSON, verbose bool
	)
	c := &cobra.Command{
		Use:   "tpch --sf N",
		Short: "TPC-H on encrypted Parquet through the SQL engine against plain DuckDB, in one run",
		Long: `Generate TPC-H at scale factor N into a scratch directory, once as plaintext Parquet
and once as envelope-encrypted Parquet (one file per table, under a fresh key that is
never written down), then run the 22 queries (a) through the SQL engine on the
encrypted files - decrypted into memfds, the decryption and the locked-down engine's
start counted in the encrypted total - and (b) through the same engine, with the same
settings, threads and memory limit, on the plaintext files, so that only where the
bytes come from differs; the two sides alternate which goes first, each query runs
--rounds times per side and the fastest run counts. At SF 0.01, 0.1 and 1 every
result of both sides is checked against the published answers (--answers, default
$PPML_SHARED/testdata/tpch/answers, or ../shared/testdata/tpch/answers beside the
source tree the binary was built from). Prints per-query times and
ratios and the total ratio (target at SF 1: at most 1.15). The scratch directory
(TMPDIR) needs room for the data twice (about 0.5 GB per SF).`,
		Example: `  ppml bench tpch --sf 0.1
  ppml bench tpch --sf 1 --threads 2 --memory 4GiB --json
  ppml bench tpch --sf 0.01 --queries 1,6,14 --answers ../shared/testdata/tpch/answers`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("sf") || sf <= 0 {
				return command.Usagef("give the scale factor with --sf N (e.g. 0.1 or 1)")
			}
			if sf >= 1 && sf != float64(int64(sf)) {
				return command.Usagef("--sf %g: scale factors of 1 or more must be integers", sf)
			}
			if rounds < 1 {
				return command.Usagef("--rounds must be at least 1")
			}
			if threads < 1 {
				return command.Usagef("--threads must be at least 1")
			}
			mem, err := parseSize(memory)
			if err != nil {
				return &command.UsageError{Err: fmt.Errorf("--memory: %w", err)}
			}
			var queries []int
			if qs != "" {
				for _, s := range strings.Split(qs, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil || n < 1 || n > tpch.NumQueries {
						return command.Usagef("--queries: %q is not a query number 1..%d", s, tpch.NumQueries)
					}
					queries = append(queries, n)
				}
			}
			if answers == "" {
				answers = tpchbench.DefaultAnswersDir()
			}
			if tpchbench.AnswerSet(sf) != "" && answers == "" {
				return command.Usagef("--sf %g is checked against the published answers: give their directory with --answers (or set PPML_SHARED)", sf)
			}
			dir, err := os.MkdirTemp(scratch, "ppml-bench-tpch-")
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(cmd.ErrOrStderr(), "keeping the generated files in %s\n", dir)
			} else {
				defer os.RemoveAll(dir)
			}
			cfg := tpchbench.Config{SF: sf, Dir: dir, Threads: threads, Memory: mem, AnswersDir: answers, Queries: queries, Rounds: rounds}
			if verbose || !asJSON {
				cfg.Log = cmd.ErrOrStderr()
			}
			rep, err := tpchbench.Run(cmd.Context(), cfg)
			if err != nil {
				return fmt.Errorf("bench tpch: %w", err)
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), rep)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "TPC-H SF %g: %d threads, memory limit %s, %d bytes of Parquet, best of %d, load average %s\n",
				rep.SF, rep.Threads, memory, rep.DataBytes, rep.Rounds, rep.LoadAverageAtFinish)
			fmt.Fprintf(w, "query   encrypted      plain   ratio   rows  checked\n")
			for _, q := range rep.Queries {
				fmt.Fprintf(w, "q%02d    %9.3fs %9.3fs   %5.2f %6d  %v\n", q.Query, q.Encrypted, q.Plain, q.Ratio, q.Rows, q.Checked)
			}
			fmt.Fprintf(w, "decrypt into memory %.3fs, engine start %.3fs (plain start %.3fs)\n", rep.DecryptSeconds, rep.OpenSeconds, rep.OpenPlainSeconds)
			fmt.Fprintf(w, "total  %9.3fs %9.3fs   %5.2f   (queries only: %.2f; target at SF 1: <= 1.15)\n", rep.EncryptedTotal, rep.PlainTotal, rep.Ratio, rep.QueryRatio)
			if rep.Checked {
				fmt.Fprintln(w, "every result matched the published answers")
			}
			return nil
		},
	}
	f := c.Flags()
	f.Float64Var(&sf, "sf", 0, "scale factor (0.01, 0.1 and 1 are checked against the answers)")
	f.IntVar(&threads, "threads", runtime.NumCPU(), "DuckDB threads, both sides")
	f.StringVar(&memory, "memory", "4GiB", "DuckDB memory limit, both sides")
	f.StringVar(&answers, "answers", "", "directory of the answer sets sf0.01, sf0.1, sf1 (default $PPML_SHARED/testdata/tpch/answers or <repo>/../shared/...)")
	f.IntVar(&rounds, "rounds", 3, "runs of each query on each side; the fastest counts (the decryption is counted once)")
	f.StringVar(&qs, "queries", "", "comma-separated query numbers (default: all 22)")
	f.StringVar(&scratch, "dir", "", "where to make the scratch directory (default TMPDIR)")
	f.BoolVar(&keep, "keep", false, "keep the generated files")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	command.Positive(c, "threads", "rounds")
	f.BoolVar(&verbose, "verbose", false, "progress lines on stderr also with --json")
	return c
}
