package benchcli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	servebench "github.com/ppml/ppml/bench/serve"
	"github.com/ppml/ppml/internal/command"
)

func newBenchServeCmd() *cobra.Command {
	var o servebench.Options
	var asJSON bool
	var conc string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Model serving: requests/s and latency over attested HTTPS and gRPC, queue records/s",
		Long: `Serve a 100-tree, depth-6 XGBoost model with the serve engine (attested TLS certificate
from a simulated TEE, checked by the clients) and drive it from a Go load generator on this
machine: KServe v2 REST over keep-alive HTTPS and KServe v2 gRPC at 1 and 64 concurrent
clients (requests/s, p50 and p99 latency), and the Cluster Serving queue on a real
redis-server with encrypted records (records/s). In the same run: the model's in-process
predict throughput (the ceiling every figure is divided by), KServe REST over plain HTTP
on the same handler, and the queue with plaintext records.

Targets on 2 cores: 5,000 requests/s with p99 under 10 ms at 64 clients; 5,000 queue
records/s. Closed-loop clients at saturation wait, on average, clients ÷ throughput (64
clients at 5,000/s: 12.8 ms) whatever the server does, so the latency target is checked
with an open-loop load: 64 clients together sending --rate requests/s on a fixed schedule,
latency measured from each request's scheduled time (REST and gRPC; "target met" when the
rate is achieved without errors and p99 is under 10 ms). The load generator shares the
machine's cores with the server.`,
		Example: `  ppml bench serve
  ppml bench serve --duration 3s --concurrency 1,16,64 --records 10000 --json
  ppml bench serve --rate 8000 --paced-clients 64`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range strings.Split(conc, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 || n > 4096 {
					return command.Usagef("--concurrency %q: want client counts from 1 to 4096, comma-separated", conc)
				}
				o.Concurrency = append(o.Concurrency, n)
			}
			if o.PacedRate < 0 || o.PacedRate > 1e6 {
				return command.Usagef("--rate %v: want requests per second from 0 (no paced load) to 1000000", o.PacedRate)
			}
			if o.PacedRate == 0 {
				o.PacedRate = -1 // Options: < 0 is none, 0 the default
			}
			if o.MaxBatch < 0 || o.MaxBatch > 1<<16 {
				return command.Usagef("--max-batch %d: want 1 to 65536 (0: the engine's default)", o.MaxBatch)
			}
			if o.MaxDelay < 0 || o.MaxDelay > time.Second {
				return command.Usagef("--max-delay %v: want 0 to 1s", o.MaxDelay)
			}
			if o.PacedClients < 1 || o.PacedClients > 4096 {
				return command.Usagef("--paced-clients %d: want 1 to 4096", o.PacedClients)
			}
			if !asJSON && command.IsTerminal(os.Stderr) {
				o.Progress = func(step string) { fmt.Fprintf(os.Stderr, "bench serve: %s...\n", step) }
			}
			r, err := servebench.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench serve: %w", err)
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), r)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "model: %s; GOMAXPROCS %d; %s; load average %.2f at the start, %.2f at the end\n",
				r.Model, r.GOMAXPROCS, r.Attestation, r.LoadAverage[0], r.LoadAverage[1])
			fmt.Fprintf(w, "in-process predict (ceiling): %.0f predictions/s (predictor: %s); on libxgboost: %.0f predictions/s\n",
				r.InProcess, r.Predictor, r.InProcessLibXGBoost)
			fmt.Fprintf(w, "max_batch %d, max_delay %gms\n", r.MaxBatch, r.MaxDelayMs)
			for _, l := range append(r.Loads, *r.PlainREST) {
				fmt.Fprintf(w, "%-24s %3d clients: %7.0f req/s (%.2f of in-process), p50 %.2f ms, p99 %.2f ms, %.0f µs CPU/request, %d errors\n",
					l.Protocol, l.Concurrency, l.PerSecond, l.VsCeiling, l.P50ms, l.P99ms, l.CPUPerRequestUs, l.Errors)
				if l.FirstError != "" {
					fmt.Fprintf(w, "  first error: %s\n", l.FirstError)
				}
			}
			for _, p := range r.Paced {
				met := "target met"
				if !p.TargetMet {
					met = "target NOT met"
				}
				fmt.Fprintf(w, "%-24s %3d clients paced at %.0f/s: achieved %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, send lag p99 %.2f ms, %.0f µs CPU/request, %d errors: %s\n",
					p.Protocol, p.Clients, p.TargetRate, p.Achieved, p.P50ms, p.P99ms, p.MaxMs, p.SendLagP99ms, p.CPUPerRequestUs, p.Errors, met)
				if p.FirstError != "" {
					fmt.Fprintf(w, "  first error: %s\n", p.FirstError)
				}
			}
			fmt.Fprintf(w, "HTTPS over plain HTTP (REST, %d clients): %.2f\n", r.PlainREST.Concurrency, r.TLSOverPlain)
			for _, q := range r.Queue {
				kind := "plaintext"
				if q.Encrypted {
					kind = "encrypted"
				}
				fmt.Fprintf(w, "queue, %s records: %.0f records/s (%d in %.2fs, %d NaN in a sample)\n", kind, q.PerSecond, q.Records, q.Seconds, q.NaN)
			}
			if r.QueueSkipped != "" {
				fmt.Fprintf(w, "queue not measured: %s\n", r.QueueSkipped)
			} else {
				fmt.Fprintf(w, "queue encrypted over plaintext: %.2f\n", r.EncryptedOverPlain)
			}
			return nil
		},
	}
	f := c.Flags()
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "measured time of each load")
	f.DurationVar(&o.Warmup, "warmup", 500*time.Millisecond, "unmeasured time before each load")
	f.StringVar(&conc, "concurrency", "1,64", "concurrent clients, comma-separated")
	f.Float64Var(&o.PacedRate, "rate", 5000, "total requests/s of the open-loop load (0: none)")
	f.IntVar(&o.PacedClients, "paced-clients", 64, "clients of the open-loop load")
	f.IntVar(&o.MaxBatch, "max-batch", 0, "the served model's max_batch (0: the serve engine's default)")
	f.DurationVar(&o.MaxDelay, "max-delay", 0, "the served model's max_delay")
	f.IntVar(&o.Records, "records", 20000, "records through the queue in each queue measurement")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of each load's measured interval to PREFIX-<protocol>-<clients>c.pprof")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
