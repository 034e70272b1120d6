package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/gramine"
	"github.com/ppml/ppml/internal/handover"
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
		jobPath, out, runtimePath, server string
		trusted                           []string
		isvProdID, isvSVN                 uint16
		asJSON, allowKeyFiles, force      bool
	)
	cmd := &cobra.Command{
		Use:   "manifest --job job.yaml -o ppml.manifest.template",
		Short: "Write a Gramine manifest template that runs the job in ppml-run in an SGX enclave",
		Long: `Writes a Gramine manifest template (TOML) whose entrypoint is the runtime, ppml-run,
running "ppml-run run --manifest JOB --tee gramine" with a fixed command line. The
runtime is the one 'ppml run' would use ($PPML_RUN, beside this ppml, or on PATH) unless
--ppml-run names another. Trusted files: ppml-run, its dynamic loader and shared libraries,
the job manifest, the job's program and its libraries (for Python: the modules the
interpreter loads at start-up and those the job's code imports, followed transitively —
standard library module by module, installed packages whole — but not imports with
computed names, which need --trusted), files the job pins by hash. Allowed files:
the encrypted inputs and the output directories. /tmp is in memory; DCAP attestation; no
debug. sgx.enclave_size and sgx.max_threads are computed (Go's reservations, the binaries,
resources.memory, engine pools), each figure explained in the template. A file: key is
refused unless --allow-key-files. See docs/sgx.md for signing and pinning MRENCLAVE.`,
		Example: `  ppml gramine manifest --job job.yaml -o ppml.manifest.template
  ppml gramine manifest --job job.yaml -o ppml.manifest.template --ppml-run /opt/ppml/bin/ppml-run \
      --server https://kms.example.org:8443 --isvprodid 1 --isvsvn 3
  ppml gramine manifest --job job.yaml -o - > ppml.manifest.template`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("-o is required (use - for standard output)")
			}
			if out == "-" && asJSON {
				return usageErrorf("--json prints a summary; it needs -o FILE for the template")
			}
			if err := checkOutput(out, force); err != nil {
				return err
			}
			absJob, err := filepath.Abs(jobPath)
			if err != nil {
				return err
			}
			m, err := job.Load(absJob, specs.All)
			if err != nil {
				return jobError(jobPath, err)
			}
			if runtimePath == "" {
				if runtimePath, err = handover.Find(handover.RuntimeFor(m)); err != nil {
					return fmt.Errorf("the enclave runs the runtime (or pass --ppml-run): %w", err)
				}
			}
			if runtimePath, err = filepath.Abs(runtimePath); err != nil {
				return err
			}
			g, err := gramine.New(m, gramine.Options{
				Runtime: runtimePath, JobPath: absJob, Server: server, Trusted: trusted,
				ISVProdID: isvProdID, ISVSVN: isvSVN, AllowKeyFiles: allowKeyFiles,
			})
			if err != nil {
				return err
			}
			tmpl, err := g.Template()
			if err != nil {
				return err
			}
			if allowKeyFiles {
				fmt.Fprintln(cmd.ErrOrStderr(), "ppml: warning: --allow-key-files: file: keys are host files the host can read and replace; development only, never for real data")
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
	f.StringVar(&runtimePath, "ppml-run", "", "ppml-run binary to run in the enclave (default: the one ppml run uses)")
	// --ppml named the single ppml binary before the runtime had a binary
	// of its own; it is kept, hidden, as another name for --ppml-run.
	f.StringVar(&runtimePath, "ppml", "", "ppml-run binary (old name of --ppml-run)")
	_ = f.MarkHidden("ppml")
	f.StringVar(&server, "server", "", "key service URL fixed in the enclave's command line (default: PPML_SERVER from the host)")
	f.StringArrayVar(&trusted, "trusted", nil, "extra trusted file or directory (repeatable)")
	f.Uint16Var(&isvProdID, "isvprodid", 0, "ISV product id in the enclave signature")
	f.Uint16Var(&isvSVN, "isvsvn", 0, "ISV security version in the enclave signature")
	f.BoolVar(&asJSON, "json", false, "print a summary as JSON")
	f.BoolVar(&allowKeyFiles, "allow-key-files", false, "let file: keys through as host files (development only; the host can read and replace them)")
	f.BoolVar(&force, "force", false, "replace an existing template")
	_ = cmd.MarkFlagRequired("job")
	return cmd
}
