package benchcli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	mlbench "github.com/ppml/ppml/bench/ml"
	"github.com/ppml/ppml/internal/command"
)

func newBenchMLCmd() *cobra.Command {
	var cfg mlbench.Config
	var asJSON bool
	c := &cobra.Command{
		Use:   "ml",
		Short: "XGBoost training through the ml engine from an encrypted input vs python3-xgboost in plaintext",
		Long: `Train XGBoost (hist, 100 rounds, depth 6, 1 thread) on a synthetic regression table
(1,000,000 × 20 by default) twice in one run: through the ml engine, reading the table as
Parquet from an envelope encrypted with a fresh key and decrypted into a memfd, and in
Debian's python3-xgboost from the same values in plaintext (a script embedded in
ppml-bench). Prints both training times and their ratio (target ≤ 1.10), and the
end-to-end ratio including decryption and reading. Needs /usr/bin/python3.`,
		Example: `  ppml bench ml
  ppml bench ml --rows 100000 --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Rows < 10 || cfg.Cols < 1 || cfg.Rounds < 1 || cfg.MaxDepth < 1 {
				return command.Usagef("--rows must be at least 10 and --cols, --rounds, --depth at least 1")
			}
			res, err := mlbench.Run(context.Background(), cfg)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return command.WriteJSON(w, res)
			}
			fmt.Fprintf(w, "XGBoost %s, hist, %d rounds, depth %d, 1 thread, %d × %d synthetic regression table\n",
				res.XGBoostVersion, res.Rounds, res.MaxDepth, res.Rows, res.Cols)
			fmt.Fprintf(w, "  ppml engine (encrypted Parquet, %d bytes): decrypt %.2f s, job %.2f s, of which training %.2f s (%.2f CPU s)\n",
				res.EncryptedBytes, res.DecryptSeconds, res.EngineSeconds, res.EngineTrainSeconds, res.EngineTrainCPUSeconds)
			fmt.Fprintf(w, "  python3-xgboost (plaintext):              training %.2f s (%.2f CPU s)\n", res.PythonTrainSeconds, res.PythonTrainCPUSeconds)
			fmt.Fprintf(w, "  ratio engine/python training: %.3f (CPU %.3f); end to end incl. decrypt and read: %.3f\n", res.Ratio, res.CPURatio, res.EndToEndRatio)
			return nil
		},
	}
	c.Flags().IntVar(&cfg.Rows, "rows", 1_000_000, "rows of the synthetic table")
	c.Flags().IntVar(&cfg.Cols, "cols", 20, "feature columns")
	c.Flags().IntVar(&cfg.Rounds, "rounds", 100, "boosting rounds")
	c.Flags().IntVar(&cfg.MaxDepth, "depth", 6, "max_depth")
	command.Positive(c, "rows", "cols", "rounds", "depth")
	c.Flags().StringVar(&cfg.Script, "script", "", "Python training script to run instead of the embedded one (same arguments and output)")
	c.Flags().StringVar(&cfg.TempDir, "tmp", "", "directory for the encrypted input and Python's plaintext copy (default: $TMPDIR)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
