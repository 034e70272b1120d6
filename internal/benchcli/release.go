package benchcli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/attest/dcap"
	releasebench "github.com/ppml/ppml/bench/release"
	"github.com/ppml/ppml/internal/command"
)

func newBenchReleaseCmd() *cobra.Command {
	var o releasebench.Options
	var asJSON bool
	var quote, collateral, at string
	c := &cobra.Command{
		Use:   "release",
		Short: "Key releases per second and latency (simulated TEE, real HTTPS server on 127.0.0.1)",
		Long: `Start a key service in a temporary directory and run the whole release protocol (challenge,
simulated evidence, verification, policy, audit append, HPKE) from parallel runners. Prints
releases per second and p50/p99 latency. Target: 1,000 releases/s on 2 cores.`,
		Example: `  ppml bench release
  ppml bench release --duration 10s --concurrency 32 --json
  ppml bench release --sgx-quote q.bin --collateral bundle.json --at 2025-07-19T10:01:17Z`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if quote != "" {
				if collateral == "" || at == "" {
					return command.Usagef("--sgx-quote needs --collateral and --at")
				}
				q, err := os.ReadFile(quote)
				if err != nil {
					return err
				}
				col, err := dcap.LoadBundle(collateral)
				if err != nil {
					return fmt.Errorf("--collateral: %w", err)
				}
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return command.Usagef("--at %q: give an RFC 3339 time such as 2026-01-31T12:00:00Z", at)
				}
				o.SGX = &releasebench.SGXInput{Quote: q, Collateral: dcap.StaticSource(col), At: t}
			}
			r, err := releasebench.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench release: %w", err)
			}
			if r.Errors > 0 && r.Releases == 0 {
				return fmt.Errorf("bench release: every release failed: %s", r.FirstError)
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%.0f per second (%d in %.1fs, %d runners, %s), p50 %.2f ms, p99 %.2f ms, %d errors\n",
				r.PerSecond, r.Releases, r.Seconds, r.Concurrency, r.Platform, r.P50ms, r.P99ms, r.Errors)
			return err
		},
	}
	c.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "measured time")
	c.Flags().IntVar(&o.Concurrency, "concurrency", 32, "parallel runners (releases share commits, so more runners raise throughput)")
	command.Positive(c, "duration", "concurrency")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.Flags().StringVar(&quote, "sgx-quote", "", "send this real SGX quote instead of simulated evidence (verified, then denied at report_data)")
	c.Flags().StringVar(&collateral, "collateral", "", "Intel collateral bundle for --sgx-quote")
	c.Flags().StringVar(&at, "at", "", "verification time for --sgx-quote (RFC 3339, inside the collateral's validity)")
	return c
}
