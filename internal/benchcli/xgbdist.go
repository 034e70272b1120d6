package benchcli

import (
	"fmt"

	"github.com/spf13/cobra"

	xgbdistbench "github.com/ppml/ppml/bench/xgbdist"
	"github.com/ppml/ppml/internal/command"
)

func newBenchXGBDistCmd() *cobra.Command {
	var cfg xgbdistbench.Config
	var asJSON bool
	c := &cobra.Command{
		Use:   "xgboost-dist",
		Short: "Distributed XGBoost: 2 workers over attested mTLS tunnels vs plain TCP vs 1 worker",
		Long: `Train XGBoost (hist, 1 thread per worker) on a synthetic regression table in one run: on one
worker; on two workers joined by XGBoost's rabit collective over plain TCP; and on two workers
whose every byte of collective traffic runs through mutually attested TLS 1.3 tunnels, with
certificates issued by a key service started on 127.0.0.1 to a simulated TEE. Prints the
times, the tunnels' overhead ratio against plain TCP (target ≤ 1.10) and whether every run
built the same model. Needs /usr/bin/python3 with python3-xgboost (the tracker).`,
		Example: `  ppml bench xgboost-dist
  ppml bench xgboost-dist --rows 50000 --rounds 20 --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Rows < 100 || cfg.Cols < 1 || cfg.Rounds < 1 || cfg.MaxDepth < 1 || cfg.Repeat < 1 {
				return command.Usagef("--rows must be at least 100 and --cols, --rounds, --depth, --repeat at least 1")
			}
			res, err := xgbdistbench.Run(cmd.Context(), cfg)
			if err != nil {
				return fmt.Errorf("bench xgboost-dist: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return command.WriteJSON(w, res)
			}
			fmt.Fprintf(w, "XGBoost %s, hist, %d rounds, depth %d, %d × %d regression table, 1 thread per worker, %s\n",
				res.XGBoostVersion, res.Rounds, res.MaxDepth, res.Rows, res.Cols, res.Platform)
			fmt.Fprintf(w, "  1 worker:                        %.2f s\n", res.SingleSeconds)
			fmt.Fprintf(w, "  2 workers, plain TCP:            %.2f s\n", res.PlainSeconds)
			fmt.Fprintf(w, "  2 workers, attested TLS tunnels: %.2f s\n", res.TunnelSeconds)
			fmt.Fprintf(w, "  tunnel overhead ratio: %.3f (target ≤ 1.10); same model on every worker and run: %v; equals the 1-worker model: %v\n",
				res.Ratio, res.SameModel, res.EqualsSingle)
			return nil
		},
	}
	c.Flags().IntVar(&cfg.Rows, "rows", 200_000, "rows of the synthetic table")
	c.Flags().IntVar(&cfg.Cols, "cols", 20, "feature columns")
	c.Flags().IntVar(&cfg.Rounds, "rounds", 50, "boosting rounds")
	c.Flags().IntVar(&cfg.MaxDepth, "depth", 6, "max_depth")
	c.Flags().IntVar(&cfg.Repeat, "repeat", 2, "runs of each distributed variant, alternating (the fastest is kept)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
