package runcli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
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
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/launcher"
)

func newRunCmd() *cobra.Command {
	var (
		k        command.KMSFlags
		manifest string
		tee      string
		keyFiles []string
		grace    time.Duration
		wf       workerFlags
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
program (SIGTERM, then SIGKILL after --grace) and exit 128+signal with no output; a
long-running job (serve, stream on a log) drains instead, writes its outputs and exits 0.

--tee auto finds Gramine or configfs-tsm and never picks the simulated TEE; --tee sim
is the simulated TEE (insecure, for development: the key service must allow it).
--json prints the outcome as a JSON object after the program's own output: name,
digest, outputs, exit_code, and on failure error (and denials when keys were refused).

A job that trains on several workers (ml, workers: N; docs/cluster.md) runs as N
ppml-run processes, one per TEE, each given the same manifest, its index
(--worker-index) and every worker's tunnel address (--peers, in index order). The
workers obtain certificates from the key service and accept only workers of the same
job; worker 0 writes the outputs. In a pod these come from the environment
(PPML_WORKER_INDEX, PPML_PEERS, PPML_WORKER_LISTEN, PPML_RABIT_TRACKER).`,
		Example: `  ppml run --manifest job.yaml --server https://kms:8443 --token $RUNNER_TOKEN --tee auto
  PPML_SIM_DIR=/tmp/sim ppml run --manifest job.yaml --tee sim
  ppml run --manifest examples/python-hello/job.yaml --key owner.key
  ppml run --manifest train.yaml --server https://kms:8443 --tee auto --worker-index 1 --peers xgb-0.xgb:7070,xgb-1.xgb:7070 --listen :7070`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return command.Usagef("the manifest is given with --manifest: ppml run --manifest %s", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manifest == "" {
				return command.Usagef("--manifest FILE is required")
			}
			// Signals first: a stop that comes while the job is set up is
			// not lost (see catchStopSignals).
			ctx, cancel := context.WithCancelCause(cmd.Context())
			defer cancel(nil)
			sigs := earlyStop // caught since Main started (see catchStopSignals)
			if sigs == nil {
				sigs = make(chan os.Signal, 1)
				signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
			}
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
			endWatch := sync.OnceFunc(func() { close(stopped); <-watched }) // then got is settled
			defer endWatch()
			if err := checkTEE(tee); err != nil {
				return err
			}
			worker, err := wf.worker()
			if err != nil {
				return err
			}
			// The manifest is read and checked once, before TEE detection and
			// attestation; the same bytes are attested and run.
			m, err := launcher.Load(manifest)
			if err != nil {
				return command.JobError(manifest, err)
			}
			keys, err := keySource(cmd, &k, tee, keyFiles, "ppml run")
			if err != nil {
				return err
			}
			// Engines that attest something of their own (the serve engine's TLS key) use
			// the release's attester; with local keys, the one --tee names explicitly.
			var att attest.Attester
			if _, kms := keys.(*launcher.KMSKeys); !kms && tee != "auto" {
				if att, _, err = runAttester(tee); err != nil {
					return err
				}
			}
			stderr := cmd.ErrOrStderr()
			res, err := launcher.Run(ctx, launcher.Config{Manifest: m, Keys: keys,
				Stdout: cmd.OutOrStdout(), Stderr: stderr, Log: stderr, Grace: grace, Attester: att, Worker: worker})
			endWatch()
			tokenBytes := 0
			if kk, ok := keys.(*launcher.KMSKeys); ok && kk.Token != "" {
				// The token itself is a bearer credential of the attested
				// job: it stays inside the TEE, only its size is shown.
				tokenBytes = len(kk.Token)
				fmt.Fprintf(stderr, "ppml run: the key service returned a signed attestation token (%s, %d bytes, not shown)\n", tokenAlg(kk.Token), tokenBytes)
			}
			return runOutcome(cmd, k.JSON, res, err, got, tokenBytes)
		},
	}
	k.Add(cmd)
	f := cmd.Flags()
	f.StringVar(&manifest, "manifest", "", "job manifest (YAML)")
	f.StringVar(&tee, "tee", "auto", "evidence backend: auto, sim (insecure), gramine or tsm")
	f.StringArrayVar(&keyFiles, "key", nil, "local key file for local: keys (repeatable; development only)")
	f.DurationVar(&grace, "grace", launcher.DefaultGrace, "time a stopped job gets to end (a program between SIGTERM and SIGKILL)")
	wf.add(cmd)
	return cmd
}

// workerFlags place a run in a distributed job. They come from the
// orchestrator and are not part of the job's identity (launcher.Worker).
type workerFlags struct {
	index                  string
	peers, listen, tracker string
	joinTimeout            time.Duration
}

func (w *workerFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&w.index, "worker-index", "", "this worker's index in a job with several workers, from 0 (env PPML_WORKER_INDEX)")
	f.StringVar(&w.peers, "peers", "", "every worker's tunnel address HOST:PORT, comma-separated in index order (env PPML_PEERS)")
	f.StringVar(&w.listen, "listen", "", "where this worker's tunnel server listens (env PPML_WORKER_LISTEN; default: its address in --peers)")
	f.StringVar(&w.tracker, "tracker", "", "worker 0: loopback HOST:PORT of an XGBoost tracker already running beside it (env PPML_RABIT_TRACKER; default: start one)")
	f.DurationVar(&w.joinTimeout, "join-timeout", 0, "how long the workers wait for each other to join (default 2m)")
}

// worker is the run's place from the flags and the environment; nil when
// neither names an index or peers.
func (w *workerFlags) worker() (*launcher.Worker, error) {
	index := command.EnvOr(w.index, "PPML_WORKER_INDEX")
	peers := command.EnvOr(w.peers, "PPML_PEERS")
	listen := command.EnvOr(w.listen, "PPML_WORKER_LISTEN")
	tracker := command.EnvOr(w.tracker, "PPML_RABIT_TRACKER")
	if index == "" && peers == "" {
		if listen != "" || tracker != "" || w.joinTimeout != 0 {
			return nil, command.Usagef("--listen, --tracker and --join-timeout are for a worker of a job with several workers: give --worker-index and --peers")
		}
		return nil, nil
	}
	if index == "" || peers == "" {
		return nil, command.Usagef("a worker of a job with several workers needs both --worker-index and --peers")
	}
	i, err := strconv.Atoi(index)
	if err != nil || i < 0 {
		return nil, command.Usagef("--worker-index %q: want a worker index 0, 1, ...", index)
	}
	if w.joinTimeout < 0 {
		return nil, command.Usagef("--join-timeout %s: must be positive", w.joinTimeout)
	}
	var addrs []string
	for _, p := range strings.Split(peers, ",") {
		p = strings.TrimSpace(p)
		if _, _, err := net.SplitHostPort(p); err != nil || p == "" {
			return nil, command.Usagef("--peers: %q is not HOST:PORT", p)
		}
		addrs = append(addrs, p)
	}
	if i >= len(addrs) {
		return nil, command.Usagef("--worker-index %d: --peers lists %d worker(s), indexes 0 to %d", i, len(addrs), len(addrs)-1)
	}
	return &launcher.Worker{Index: i, Peers: addrs, Listen: listen, Tracker: tracker, JoinTimeout: w.joinTimeout}, nil
}

func checkTEE(tee string) error {
	switch tee {
	case "auto", "sim", "gramine", "tsm":
		return nil
	}
	return command.Usagef("--tee %q: want auto, sim, gramine or tsm", tee)
}

// keySource is where a run's keys come from: the key service after
// attestation when a server is given, else local key files only.
func keySource(cmd *cobra.Command, k *command.KMSFlags, tee string, keyFiles []string, prefix string) (launcher.KeySource, error) {
	stderr := cmd.ErrOrStderr()
	local, err := launcher.NewLocalKeys(keyFiles...)
	if err != nil {
		return nil, err
	}
	server := command.EnvOr(k.Server, "PPML_SERVER")
	if server == "" {
		fmt.Fprintf(stderr, "%s: WARNING: no key service: local key files, no attestation and no policy (development only)\n", prefix)
		return local, nil
	}
	c, err := k.Client(true)
	if err != nil {
		return nil, err
	}
	att, why, err := runAttester(tee)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: evidence from %s (%s)\n", prefix, att.Name(), why)
	if att.Name() == "sim" {
		fmt.Fprintf(stderr, "%s: WARNING: simulated TEE - insecure, for development only\n", prefix)
	}
	return &launcher.KMSKeys{Client: c, Server: server, Attester: att, Local: local}, nil
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

// tokenAlg reads the algorithm from a compact JWS header, for the message.
func tokenAlg(tok string) string {
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	var v struct {
		Alg string `json:"alg"`
	}
	if err != nil || json.Unmarshal(b, &v) != nil || v.Alg == "" {
		return "JWS"
	}
	return v.Alg
}

// runOutcome maps the launcher's result to output and the exit status: the
// program's own status when it failed, 128+signal when stopped.
func runOutcome(cmd *cobra.Command, asJSON bool, res *launcher.Result, err error, sig os.Signal, tokenBytes int) error {
	code := command.ExitOK
	var ee *exeng.ExitError
	var de *launcher.DeniedError
	switch {
	case err == nil:
	case errors.Is(err, exeng.ErrStopped):
		code = 128 + int(syscall.SIGTERM)
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "ppml run: %s: no output written\n", command.TermSafe(err.Error(), "\n\t"))
	case errors.As(err, &ee):
		code = ee.Code
		fmt.Fprintf(cmd.ErrOrStderr(), "ppml run: %s: no output written\n", command.TermSafe(ee.Error(), "\n\t"))
	case sig != nil:
		// Interrupted before the program started (e.g. during the release).
		fmt.Fprintf(cmd.ErrOrStderr(), "ppml run: stopped by %s: %s\n", sig, command.TermSafe(err.Error(), "\n\t"))
		code = 128 + int(sig.(syscall.Signal))
	case !asJSON:
		return err
	default:
		// As without --json (command.ExitCode), and the object below too.
		code = command.ExitFailure
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", cmd.Root().Name(), command.TermSafe(err.Error(), "\n\t"))
	}
	if asJSON {
		out := map[string]any{"exit_code": code}
		if res != nil {
			out["name"], out["digest"], out["outputs"] = res.Name, res.Digest, res.Outputs
		}
		if err != nil {
			out["error"] = err.Error()
		}
		if errors.As(err, &de) {
			out["denials"] = de.Denials
		}
		if tokenBytes > 0 {
			out["attestation_token_bytes"] = tokenBytes
		}
		if werr := command.WriteJSON(cmd.OutOrStdout(), out); werr != nil {
			return werr
		}
	}
	if code != command.ExitOK {
		return &command.SilentExit{Code: code}
	}
	return nil
}
