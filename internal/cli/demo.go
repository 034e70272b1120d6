package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/demo"
)

func init() { register(newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var asJSON bool
	var keep string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the end-to-end demo: key service, policy, encrypted data, simulated TEE, audit, SQL, training, refusal",
		Long: `Show the whole chain on this machine in under a minute, with the real components: a key
service on 127.0.0.1 (TLS, temporary directory) that trusts a temporary simulated-TEE key; an
owner, a key and a policy pinning this binary and the demo jobs; the bundled synthetic
patients.csv encrypted under it; the demo job run by the real launcher in the simulated TEE;
the audit log verified offline with an inclusion proof; the result decrypted by the owner; a
SQL job (GROUP BY with a minimum group size) over the same encrypted data, checked against the
plaintext; an XGBoost model trained on the bundled public breast cancer data, encrypted, whose
decrypted model names the approved job and its test metrics; a job changed by one byte refused on rule job_digest; and a final scan that nothing readable
was left behind. Each step prints one sentence and ✓ or ✗; the exit status is 1 if any
step fails. The simulated TEE protects nothing: this shows the protocol, not security.
docs/guide/demo.md explains each step and how to do it by hand.`,
		Example: `  ppml demo
  ppml demo --json
  ppml demo --keep /tmp/ppml-demo   # keep the working directory for inspection`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg := demo.Config{KeepDir: keep}
			if !asJSON {
				cfg.Out = cmd.OutOrStdout()
			}
			sum, err := demo.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), sum); err != nil {
					return err
				}
			}
			if !sum.OK {
				return &silentExit{Code: ExitFailure}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable summary of the steps instead of the walk-through")
	c.Flags().StringVar(&keep, "keep", "", "use DIR (new or empty) as the working directory and keep it")
	c.AddCommand(&cobra.Command{
		Use:                "aggregate [--min-group=N]",
		Short:              "The demo job's program (runs inside ppml run): visits per diagnosis",
		Example:            "  (run by the demo job's manifest, not by hand)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return demo.AggregateCommand(args, cmd.OutOrStdout())
		},
	})
	return c
}
