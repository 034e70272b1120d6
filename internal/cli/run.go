package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/ccel"
	"github.com/ppml/ppml/attest/detect"
	"github.com/ppml/ppml/attest/gramine"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/tsm"
	exeng "github.com/ppml/ppml/engine/exec"
	"github.com/ppml/ppml/launcher"
)

func init() { register(newRunCmd) }

func newRunCmd() *cobra.Command {
	var (
		k        kmsFlags
		manifest string
		tee      string
		keyFiles []string
		grace    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run --manifest job.yaml",
		Short: "Run a job on encrypted inputs: get keys, decrypt in memory, run, encrypt outputs",
		Long: `Run a job (docs/jobs.md, docs/guide/run.md). The manifest and its files are checked
first; then every input key, and a fresh data key for each output under a kms:// key,
is obtained in one release — from the key service after attestation (--server, or
PPML_SERVER), or from local key files (--key, development only) — and if any key,
input or output, is denied nothing runs. Inputs are decrypted into memory only;
the program's outputs are encrypted and written atomically when it exits 0, and
discarded otherwise. ppml exits with the program's status; SIGINT or SIGTERM stop the
program (SIGTERM, then SIGKILL after --grace) and exit 128+signal with no output.

--tee auto finds Gramine or configfs-tsm and never picks the simulated TEE; --tee sim
is the simulated TEE (insecure, for development: the key service must allow it).`,
		Example: `  ppml run --manifest job.yaml --server https://kms:8443 --token $RUNNER_TOKEN --tee auto
  PPML_SIM_DIR=/tmp/sim ppml run --manifest job.yaml --tee sim
  ppml run --manifest examples/python-hello/job.yaml --key owner.key`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manifest == "" {
				return usageErrorf("--manifest FILE is required")
			}
			switch tee {
			case "auto", "sim", "gramine", "tsm":
			default:
				return usageErrorf("--tee %q: want auto, sim, gramine or tsm", tee)
			}
			stderr := cmd.ErrOrStderr()
			// Manifest errors come before TEE detection and attestation.
			if err := launcher.Check(manifest); err != nil {
				return jobError(manifest, err)
			}
			local, err := launcher.NewLocalKeys(keyFiles...)
			if err != nil {
				return err
			}
			var keys launcher.KeySource = local
			server := envOr(k.server, "PPML_SERVER")
			if server != "" {
				c, err := k.client(true)
				if err != nil {
					return err
				}
				att, why, err := runAttester(tee)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "ppml run: evidence from %s (%s)\n", att.Name(), why)
				if att.Name() == "sim" {
					fmt.Fprintln(stderr, "ppml run: WARNING: simulated TEE - insecure, for development only")
				}
				keys = &launcher.KMSKeys{Client: c, Server: server, Attester: att, Local: local}
			} else {
				fmt.Fprintln(stderr, "ppml run: WARNING: no key service: local key files, no attestation and no policy (development only)")
			}

			ctx, cancel := context.WithCancelCause(cmd.Context())
			defer cancel(nil)
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sigs)
			var got os.Signal
			stopped, watched := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(watched)
				select {
				case s := <-sigs:
					got = s
					cancel(fmt.Errorf("received %s", s))
				case <-stopped:
				}
			}()
			res, err := launcher.Run(ctx, launcher.Config{Manifest: manifest, Keys: keys,
				Stdout: cmd.OutOrStdout(), Stderr: stderr, Log: stderr, Grace: grace})
			close(stopped)
			<-watched // got is settled
			return runOutcome(cmd, k.json, res, err, got)
		},
	}
	k.add(cmd)
	f := cmd.Flags()
	f.StringVar(&manifest, "manifest", "", "job manifest (YAML)")
	f.StringVar(&tee, "tee", "auto", "evidence backend: auto, sim (insecure), gramine or tsm")
	f.StringArrayVar(&keyFiles, "key", nil, "local key file for local: keys (repeatable; development only)")
	f.DurationVar(&grace, "grace", exeng.DefaultGrace, "time a stopped program gets between SIGTERM and SIGKILL")
	return cmd
}

func runAttester(tee string) (attest.Attester, string, error) {
	switch tee {
	case "sim":
		return &sim.Attester{}, "chosen with --tee sim", nil
	case "gramine":
		return &gramine.Attester{}, "chosen with --tee gramine", nil
	case "tsm":
		return ccel.WithEventLog(&tsm.Attester{}), "chosen with --tee tsm", nil
	}
	r, err := detect.Detect(detect.Options{})
	if err != nil {
		return nil, "", err
	}
	return r.Attester, r.Reason, nil
}

// runOutcome maps the launcher's result to output and the exit status: the
// program's own status when it failed, 128+signal when stopped.
func runOutcome(cmd *cobra.Command, asJSON bool, res *launcher.Result, err error, sig os.Signal) error {
	code := ExitOK
	var ee *exeng.ExitError
	var me *launcher.ManifestError
	switch {
	case err == nil:
	case errors.As(err, &me):
		return jobError(manifestArg(cmd), me.Err)
	case errors.Is(err, exeng.ErrStopped):
		code = 128 + int(syscall.SIGTERM)
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "ppml run: %v: no output written\n", err)
	case errors.As(err, &ee):
		code = ee.Code
		fmt.Fprintf(cmd.ErrOrStderr(), "ppml run: %v: no output written\n", ee)
	case sig != nil:
		// Interrupted before the program started (e.g. during the release).
		fmt.Fprintf(cmd.ErrOrStderr(), "ppml run: stopped by %s: %v\n", sig, err)
		code = 128 + int(sig.(syscall.Signal))
	default:
		return err
	}
	if asJSON {
		out := map[string]any{"exit_code": code}
		if res != nil {
			out["name"], out["digest"], out["outputs"] = res.Name, res.Digest, res.Outputs
		}
		if werr := writeJSON(cmd.OutOrStdout(), out); werr != nil {
			return werr
		}
	}
	if code != ExitOK {
		return &silentExit{code: code}
	}
	return nil
}

func manifestArg(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("manifest"); f != nil {
		return f.Value.String()
	}
	return "job manifest"
}
