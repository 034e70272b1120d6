package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/gramine"
	"github.com/ppml/ppml/job"
)

func init() { register(newGramineCmd) }

func newGramineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gramine",
		Short: "Package a job for Intel SGX with Gramine",
		Example: `  ppml gramine manifest --job job.yaml -o ppml.manifest.template
  gramine-manifest ppml.manifest.template ppml.manifest
  gramine-sgx-sign --manifest ppml.manifest --output ppml.manifest.sgx`,
	}
	cmd.AddCommand(newGramineManifestCmd())
	return cmd
}

func newGramineManifestCmd() *cobra.Command {
	var (
		jobPath, out, ppmlPath, server string
		trusted                        []string
		isvProdID, isvSVN              uint16
		asJSON                         bool
	)
	cmd := &cobra.Command{
		Use:   "manifest --job job.yaml -o ppml.manifest.template",
		Short: "Write a Gramine manifest template that runs `ppml run` on the job in an SGX enclave",
		Long: `Writes a Gramine manifest template (TOML) whose entrypoint is this ppml binary running
"ppml run --manifest JOB --tee gramine" with a fixed command line. Trusted files: the ppml
binary, its dynamic loader and shared libraries, the job manifest, the job's program and
its libraries (and a Python interpreter's library directories), files the job pins by
hash. Allowed files: the encrypted inputs and the output directories. /tmp is in memory;
DCAP attestation; no debug. See docs/sgx.md for signing and pinning MRENCLAVE.`,
		Example: `  ppml gramine manifest --job job.yaml -o ppml.manifest.template
  ppml gramine manifest --job job.yaml -o ppml.manifest.template --ppml /opt/ppml/bin/ppml \
      --server https://kms.example.org:8443 --isvprodid 1 --isvsvn 3
  ppml gramine manifest --job job.yaml -o - --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("-o is required (use - for standard output)")
			}
			if out == "-" && asJSON {
				return usageErrorf("--json prints a summary; it needs -o FILE for the template")
			}
			absJob, err := filepath.Abs(jobPath)
			if err != nil {
				return err
			}
			m, err := job.Load(absJob)
			if err != nil {
				return jobError(jobPath, err)
			}
			if ppmlPath == "" {
				if ppmlPath, err = os.Executable(); err != nil {
					return fmt.Errorf("find the ppml binary (pass --ppml): %w", err)
				}
			}
			if ppmlPath, err = filepath.Abs(ppmlPath); err != nil {
				return err
			}
			g, err := gramine.New(m, gramine.Options{
				PPML: ppmlPath, JobPath: absJob, Server: server, Trusted: trusted,
				ISVProdID: isvProdID, ISVSVN: isvSVN,
			})
			if err != nil {
				return err
			}
			tmpl, err := g.Template()
			if err != nil {
				return err
			}
			for _, s := range g.Skipped {
				fmt.Fprintln(cmd.ErrOrStderr(), "ppml: warning: not trusting libraries of", s)
			}
			if out == "-" {
				_, err = cmd.OutOrStdout().Write(tmpl)
				return err
			}
			if err := gramine.WriteFile(out, tmpl, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{
					"template": out, "job": m.Name, "job_digest": m.DigestString(),
					"entrypoint": g.Entrypoint, "argv": g.Argv,
					"enclave_size": gramine.FormatGramineSize(g.EnclaveSize), "max_threads": g.MaxThreads,
					"trusted_files": len(g.TrustedFiles), "allowed_files": g.AllowedFiles,
				})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: job %s (%s), %d trusted files, enclave %s, %d threads\n",
				out, m.Name, m.DigestString(), len(g.TrustedFiles), gramine.FormatGramineSize(g.EnclaveSize), g.MaxThreads)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&jobPath, "job", "", "job manifest (YAML)")
	f.StringVarP(&out, "output", "o", "", "template to write (atomically), or - for standard output")
	f.StringVar(&ppmlPath, "ppml", "", "ppml binary to run in the enclave (default: this binary)")
	f.StringVar(&server, "server", "", "key service URL fixed in the enclave's command line (default: PPML_SERVER from the host)")
	f.StringArrayVar(&trusted, "trusted", nil, "extra trusted file or directory (repeatable)")
	f.Uint16Var(&isvProdID, "isvprodid", 0, "ISV product id in the enclave signature")
	f.Uint16Var(&isvSVN, "isvsvn", 0, "ISV security version in the enclave signature")
	f.BoolVar(&asJSON, "json", false, "print a summary as JSON")
	_ = cmd.MarkFlagRequired("job")
	return cmd
}
