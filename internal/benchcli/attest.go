package benchcli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	attestbench "github.com/ppml/ppml/bench/attest"
	"github.com/ppml/ppml/internal/command"
)

func newBenchAttestCmd() *cobra.Command {
	var (
		dir    string
		n      int
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "attest",
		Short: "Verification latency per quote/report (p50, p99) for SGX, TDX, SEV-SNP and the simulator",
		Long: `Verify every valid case of a set of attestation vectors --n times each, with collateral
parsed once and the verifier's caches warm (as in a long-running key service), and print
p50 and p99 per platform. --vectors is a directory holding vectors.json and the files it
names (the layout of the shared test data, ../shared/testdata/attestation beside a checkout).
The simulator is measured with a throw-away platform key.`,
		Example: `  ppml bench attest --vectors ../shared/testdata/attestation
  ppml bench attest --vectors ../shared/testdata/attestation --n 1000 --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return command.Usagef("--n must be at least 1")
			}
			if dir == "" {
				return command.Usagef("give the attestation vectors with --vectors DIR (for example ../shared/testdata/attestation from the repository root)")
			}
			res, err := attestbench.Run(cmd.Context(), dir, n)
			if err != nil {
				return fmt.Errorf("bench attest: %w", err)
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "attestation verification, %d runs per case, collateral parsed and cached\n", n)
			for _, r := range res {
				fmt.Fprintf(w, "  %-4s %2d case(s)  p50 %8s  p99 %8s  max %8s\n", r.Platform, len(r.Vectors),
					r.Latency.P50.Round(time.Microsecond), r.Latency.P99.Round(time.Microsecond), r.Latency.Max.Round(time.Microsecond))
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "vectors", "", "directory with vectors.json and the evidence and collateral it names (required)")
	c.Flags().IntVar(&n, "n", 200, "verifications per case")
	command.Positive(c, "n")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
