package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/job"
)

func init() { register(newJobCmd) }

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Check job manifests and compute the job identity that key policies pin",
		Long: `A job manifest (docs/jobs.md) names the engine, the encrypted inputs, the outputs and
the keys they are encrypted under, the engine's parameters and the resources. Its
digest is the job identity: data owners list it in a key policy's job_digests.`,
		Example: `  ppml job validate --manifest job.yaml
  ppml job digest --manifest job.yaml`,
	}
	cmd.AddCommand(newJobValidateCmd(), newJobDigestCmd())
	return cmd
}

func newJobValidateCmd() *cobra.Command {
	var manifest string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate --manifest job.yaml",
		Short: "Check a job manifest and that its inputs exist; exit 1 naming every problem",
		Example: `  ppml job validate --manifest job.yaml
  ppml job validate --manifest examples/python-hello/job.yaml --json   # before its README's steps: exit 1, naming the missing input`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := job.Load(manifest, specs.All)
			if err == nil {
				err = m.CheckFiles()
			}
			if err != nil {
				var je *job.Error
				if asJSON && errors.As(err, &je) {
					if werr := writeJSON(cmd.OutOrStdout(), map[string]any{"valid": false, "manifest": manifest, "problems": je.Problems}); werr != nil {
						return werr
					}
					return &silentExit{Code: ExitFailure}
				}
				return jobError(manifest, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"valid": true, "manifest": manifest, "name": m.Name, "engine": m.Engine, "digest": m.DigestString()})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: valid %s job %q, digest %s\n", manifest, m.Engine, m.Name, m.DigestString())
			return err
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "job manifest (YAML)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("manifest")
	return cmd
}

func newJobDigestCmd() *cobra.Command {
	var manifest string
	var asJSON, canonical bool
	cmd := &cobra.Command{
		Use:   "digest --manifest job.yaml",
		Short: "Print the job identity (sha256:<hex>) to pin in a key policy",
		Long: `Prints the SHA-256 of the manifest's canonical form (docs/jobs.md, "Canonical form").
Formatting, comments, key order and the host paths of inputs and outputs do not
change it; any change to what runs or to the keys does. The inputs need not exist.`,
		Example: `  ppml job digest --manifest job.yaml
  ppml job digest --manifest job.yaml --json
  ppml job digest --manifest job.yaml --canonical | sha256sum`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && canonical {
				return usageErrorf("--json and --canonical exclude each other")
			}
			m, err := job.Load(manifest, specs.All)
			if err != nil {
				return jobError(manifest, err)
			}
			out := cmd.OutOrStdout()
			switch {
			case canonical:
				_, err = out.Write(m.Canonical())
			case asJSON:
				err = writeJSON(out, map[string]any{"manifest": manifest, "name": m.Name, "engine": m.Engine, "digest": m.DigestString(), "canonical": m.CanonicalValue()})
			default:
				_, err = fmt.Fprintln(out, m.DigestString())
			}
			return err
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "job manifest (YAML)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print name, engine, digest and canonical form as JSON")
	cmd.Flags().BoolVar(&canonical, "canonical", false, "print the canonical form (the bytes that are hashed) instead")
	_ = cmd.MarkFlagRequired("manifest")
	return cmd
}
