// Package serve measures the serve engine on this machine (`ppml bench serve`): a 100-tree,
// depth-6 XGBoost model served by engine/serve with an attested TLS certificate (simulated
// TEE), driven by a Go load generator over keep-alive HTTPS (KServe v2 REST) and gRPC at 1
// and 64 concurrent clients, and through the Cluster Serving queue on a real redis-server
// with encrypted records. In the same run it measures the baselines the figures are read
// against: the model's in-process predict throughput (the ceiling), KServe REST over plain
// HTTP on the same handler, and the queue with plaintext records.
package serve

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/verifier"
	serveengine "github.com/ppml/ppml/engine/serve"
	"github.com/ppml/ppml/engine/serve/servespec"
	"github.com/ppml/ppml/internal/usage"
	"github.com/ppml/ppml/ml/synth"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/clusterserving/queue"
	"github.com/ppml/ppml/serve/kserve"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/record"
	"github.com/ppml/ppml/serve/tensor"
)

// Options of a run.
type Options struct {
	Duration    time.Duration // per measurement (default 5s)
	Warmup      time.Duration // before each, not counted (default 500ms)
	Concurrency []int         // client counts (default 1 and 64)
	Records     int           // queue records per queue measurement (default 20000)
	Trees       int           // default 100
	Depth       int           // default 6
	Features    int           // default 16
	// PacedRate is the open-loop load's total request rate (default 5000/s; < 0: no paced
	// load), sent by PacedClients clients (default 64), each at fixed times.
	PacedRate    float64
	PacedClients int
	// MaxBatch is the served model's dynamic batch size (default: the serve engine's
	// default); MaxDelay its batching delay (default none).
	MaxBatch int
	MaxDelay time.Duration
	// CPUProfile, when set, is the prefix of CPU profiles (pprof) of each measured load's
	// measured interval: PREFIX-<protocol>-<clients>c.pprof and PREFIX-<protocol>-paced.pprof.
	CPUProfile string
	// Progress, if set, is told what is being measured.
	Progress func(step string)
}

// profile is the CPU profile file of a load (clients 0: the paced load), or "" for none.
func (o *Options) profile(protocol string, clients int) string {
	if o.CPUProfile == "" {
		return ""
	}
	if clients == 0 {
		return o.CPUProfile + "-" + protocol + "-paced.pprof"
	}
	return fmt.Sprintf("%s-%s-%dc.pprof", o.CPUProfile, protocol, clients)
}

// Load is one load-generator measurement.
type Load struct {
	Protocol    string  `json:"protocol"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	PerSecond   float64 `json:"requests_per_second"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	// VsCeiling is PerSecond over the in-process predict throughput.
	VsCeiling float64 `json:"vs_in_process"`
	// CPUPerRequestUs is the process's CPU time (user and system, all threads) during the
	// measured interval over the requests answered in it, in microseconds: server and load
	// generator together (they share the process), and less disturbed by other work on the
	// machine than wall-clock rates.
	CPUPerRequestUs float64 `json:"cpu_us_per_request"`
	FirstError      string  `json:"first_error,omitempty"`
}

// Paced is one open-loop measurement: Clients clients together send TargetRate requests/s,
// each client on a fixed schedule (every Clients/TargetRate seconds, the clients' phases
// spread evenly). A request's latency runs from its scheduled send time, so a request that
// could not be sent on time — its client still waited for the previous answer — counts its
// wait too (coordinated omission is not hidden).
type Paced struct {
	Protocol   string  `json:"protocol"`
	Clients    int     `json:"clients"`
	TargetRate float64 `json:"target_requests_per_second"`
	// Achieved is the requests answered over the time from the first scheduled send to the
	// last answer: below TargetRate when the server fell behind.
	Achieved float64 `json:"achieved_requests_per_second"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// SendLagP99ms is the 99th percentile of how late requests left the client (its previous
	// request still running, or the load generator itself descheduled on a busy machine).
	SendLagP99ms float64 `json:"send_lag_p99_ms"`
	// CPUPerRequestUs: as in Load.
	CPUPerRequestUs float64 `json:"cpu_us_per_request"`
	// TargetMet: achieved at least 99% of the rate, no errors, p99 under P99Target.
	TargetMet  bool    `json:"target_met"`
	P99Target  float64 `json:"p99_target_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// Queue is one queue measurement.
type Queue struct {
	Records   int     `json:"records"`
	Encrypted bool    `json:"encrypted"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"records_per_second"`
	NaN       int     `json:"nan_results"`
}

// Result of a run.
type Result struct {
	Model       string `json:"model"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	Attestation string `json:"attestation"`
	// LoadAverage is the machine's 1-minute load average at the start and at the end of the
	// run: figures taken on a busy machine are lower bounds.
	LoadAverage [2]float64 `json:"load_average"`
	// InProcess is the model's own predict throughput, one row per call, GOMAXPROCS callers.
	InProcess float64 `json:"in_process_predictions_per_second"`
	// InProcessLibXGBoost is the same with the model on libxgboost's C API (a DMatrix per
	// call): what the server predicted with before the Go evaluator.
	InProcessLibXGBoost float64 `json:"in_process_libxgboost_predictions_per_second"`
	MaxBatch            int     `json:"max_batch"`
	MaxDelayMs          float64 `json:"max_delay_ms"`
	Loads               []Load  `json:"loads"`
	// Paced are the open-loop loads at the target rate (KServe REST and gRPC).
	Paced []Paced `json:"paced,omitempty"`
	// Predictor is what computes the model's predictions in the server ("go": the Go
	// evaluator, bit-identical to libxgboost; or libxgboost and why).
	Predictor string `json:"predictor"`
	// PlainREST is KServe REST at the highest concurrency over plain HTTP (no TLS) on the
	// same handler and registry; TLSOverPlain the ratio of the HTTPS figure to it.
	PlainREST    *Load   `json:"plain_http_rest,omitempty"`
	TLSOverPlain float64 `json:"https_over_plain_http,omitempty"`
	Queue        []Queue `json:"queue,omitempty"`
	// EncryptedOverPlain is encrypted-record queue throughput over plaintext-record.
	EncryptedOverPlain float64 `json:"queue_encrypted_over_plaintext,omitempty"`
	QueueSkipped       string  `json:"queue_skipped,omitempty"`
}

// Run sets everything up in a temporary directory, measures, and tears it down.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 500 * time.Millisecond
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 64}
	}
	if o.Records <= 0 {
		o.Records = 20000
	}
	if o.Trees <= 0 {
		o.Trees = 100
	}
	if o.Depth <= 0 {
		o.Depth = 6
	}
	if o.Features <= 0 {
		o.Features = 16
	}
	if o.PacedRate == 0 {
		o.PacedRate = 5000
	}
	if o.PacedClients <= 0 {
		o.PacedClients = 64
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = servespec.DefaultMaxBatch
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	tmp, err := os.MkdirTemp("", "ppml-bench-serve-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	progress(fmt.Sprintf("training a %d-tree depth-%d XGBoost model", o.Trees, o.Depth))
	modelJSON, rows, err := trainModel(o.Trees, o.Depth, o.Features)
	if err != nil {
		return nil, err
	}
	// A small stand-in executable keeps the simulator from hashing this whole binary.
	exe := filepath.Join(tmp, "runtime")
	if err := os.WriteFile(exe, []byte("serve benchmark runtime"), 0o644); err != nil {
		return nil, err
	}
	att := &sim.Attester{Dir: filepath.Join(tmp, "sim"), Executable: exe}
	if _, err := att.Evidence(ctx, [64]byte{}); err != nil {
		return nil, err
	}
	simPub, err := sim.LoadPublicKey(filepath.Join(att.Dir, sim.PlatformPubKeyFile))
	if err != nil {
		return nil, err
	}
	var recordKey [32]byte
	rand.Read(recordKey[:])

	var rdb *Redis
	res := &Result{Model: fmt.Sprintf("xgboost regression, %d trees of depth %d, %d features", o.Trees, o.Depth, o.Features),
		LoadAverage: [2]float64{usage.LoadAverage()},
		GOMAXPROCS:  runtime.GOMAXPROCS(0), Attestation: "simulated TEE (evidence in the certificate, verified by the client)"}
	if _, err := exec.LookPath("redis-server"); err != nil {
		res.QueueSkipped = "redis-server is not installed"
	} else if rdb, err = StartRedis(tmp); err != nil {
		res.QueueSkipped = err.Error()
	} else {
		defer rdb.Stop()
	}

	params := &servespec.Params{
		Models: []servespec.Model{{Name: "xgb", Version: "1", Input: "model", MaxBatch: o.MaxBatch, MaxDelay: o.MaxDelay}},
		HTTP:   "127.0.0.1:0", GRPC: "127.0.0.1:0", Hosts: []string{"127.0.0.1"}, Validity: time.Hour, PredictModel: "xgb",
		Limits: servespec.Limits{MaxRequestBytes: servespec.DefaultMaxRequestBytes, RequestTimeout: servespec.DefaultRequestTimeout,
			ReadHeaderTimeout: servespec.DefaultHeaderTimeout, ReadTimeout: servespec.DefaultReadTimeout, WriteTimeout: servespec.DefaultWriteTimeout,
			IdleTimeout: servespec.DefaultIdleTimeout, MaxConnections: servespec.DefaultMaxConnections},
	}
	if rdb != nil {
		params.Queue = &servespec.Queue{Redis: rdb.Addr(), Stream: "bench_encrypted", Model: "xgb", RecordKeys: []string{"record_key"},
			ClaimIdle: 30 * time.Second, MaxDeliveries: 3}
	}
	inputs := map[string][]byte{"model": modelJSON, "record_key": recordKey[:]}
	digest := [32]byte{1}
	srv, err := serveengine.Start(ctx, serveengine.Config{Params: params, JobDigest: digest[:], Attester: att,
		Threads: runtime.GOMAXPROCS(0), Input: func(name string) ([]byte, error) { return bytes.Clone(inputs[name]), nil }})
	if err != nil {
		return nil, err
	}
	defer srv.Stop(context.Background())

	// The ceiling: the model itself, one row per call.
	progress("in-process predict")
	entry, err := srv.Registry.Get("xgb", "")
	if err != nil {
		return nil, err
	}
	one := func(i int) []tensor.Tensor {
		r := rows[(i%(len(rows)/o.Features))*o.Features:][:o.Features]
		return []tensor.Tensor{{Name: "input", DataType: tensor.FP32, Shape: []int64{1, int64(o.Features)}, F32: r}}
	}
	inproc := measure(ctx, runtime.GOMAXPROCS(0), o.Warmup, o.Duration, o.profile("inprocess", runtime.GOMAXPROCS(0)), func(ctx context.Context, i int) error {
		_, err := entry.Model.Predict(ctx, one(i))
		return err
	})
	res.InProcess = inproc.PerSecond
	if p, ok := entry.Model.(interface{ Predictor() string }); ok {
		res.Predictor = p.Predictor()
	}
	progress("in-process predict on libxgboost (baseline)")
	lib, err := tabular.Load(modelJSON, tabular.Options{Name: "xgb", Version: "lib", Threads: runtime.GOMAXPROCS(0), LibXGBoost: true})
	if err != nil {
		return nil, err
	}
	res.InProcessLibXGBoost = measure(ctx, runtime.GOMAXPROCS(0), o.Warmup, o.Duration, "", func(ctx context.Context, i int) error {
		_, err := lib.Predict(ctx, one(i))
		return err
	}).PerSecond
	lib.Close()
	res.MaxBatch, res.MaxDelayMs = o.MaxBatch, ms(o.MaxDelay)

	// Clients check the certificate's evidence once per connection, as real clients do.
	expect := attestedtls.Expect{AllowInsecure: true}
	tlsConf := attestedtls.ClientConfig(verifier.New(verifier.Config{SimKeys: []ed25519.PublicKey{simPub}}), expect.Accept, nil)
	maxC := 0
	for _, c := range o.Concurrency {
		maxC = max(maxC, c)
	}
	if o.PacedRate > 0 {
		maxC = max(maxC, o.PacedClients)
	}
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf.Clone(), MaxIdleConnsPerHost: maxC, MaxConnsPerHost: maxC}}
	restURL := "https://" + srv.Net.HTTPAddr() + "/v2/models/xgb/infer"
	gconn, err := grpc.NewClient(srv.Net.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsConf.Clone())))
	if err != nil {
		return nil, err
	}
	defer gconn.Close()
	gc := inferencepb.NewGRPCInferenceServiceClient(gconn)
	bodies := restBodies(rows, o.Features)
	// One request of each protocol, the same under closed-loop and paced load.
	restInfer := func(ctx context.Context, i int) error {
		return postInfer(ctx, httpClient, restURL, bodies[i%len(bodies)])
	}
	grpcInfer := func(ctx context.Context, i int) error {
		r := rows[(i%(len(rows)/o.Features))*o.Features:][:o.Features]
		_, err := gc.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "xgb",
			Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, int64(o.Features)},
				Contents: &inferencepb.InferTensorContents{Fp32Contents: r}}}})
		return err
	}

	for _, c := range o.Concurrency {
		progress(fmt.Sprintf("KServe REST over HTTPS, %d clients", c))
		l := measure(ctx, c, o.Warmup, o.Duration, o.profile("kserve_rest_https", c), restInfer)
		l.Protocol = "kserve_rest_https"
		res.Loads = append(res.Loads, l)
		progress(fmt.Sprintf("KServe gRPC over TLS, %d clients", c))
		l = measure(ctx, c, o.Warmup, o.Duration, o.profile("kserve_grpc_tls", c), grpcInfer)
		l.Protocol = "kserve_grpc_tls"
		res.Loads = append(res.Loads, l)
	}

	if o.PacedRate > 0 {
		progress(fmt.Sprintf("KServe REST over HTTPS, %d clients paced at %.0f requests/s", o.PacedClients, o.PacedRate))
		p := paced(ctx, o.PacedClients, o.PacedRate, o.Warmup, o.Duration, o.profile("kserve_rest_https", 0), restInfer)
		p.Protocol = "kserve_rest_https"
		res.Paced = append(res.Paced, p)
		progress(fmt.Sprintf("KServe gRPC over TLS, %d clients paced at %.0f requests/s", o.PacedClients, o.PacedRate))
		p = paced(ctx, o.PacedClients, o.PacedRate, o.Warmup, o.Duration, o.profile("kserve_grpc_tls", 0), grpcInfer)
		p.Protocol = "kserve_grpc_tls"
		res.Paced = append(res.Paced, p)
	}

	// Plaintext baseline: the same KServe handler and registry over plain HTTP.
	progress(fmt.Sprintf("KServe REST over plain HTTP (baseline), %d clients", maxC))
	plain := httptest.NewServer((&kserve.Server{Registry: srv.Registry, Name: "ppml", Version: "bench"}).Handler())
	plainClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxC, MaxConnsPerHost: maxC}}
	pl := measure(ctx, maxC, o.Warmup, o.Duration, o.profile("kserve_rest_plain_http", maxC), func(ctx context.Context, i int) error {
		return postInfer(ctx, plainClient, plain.URL+"/v2/models/xgb/infer", bodies[i%len(bodies)])
	})
	plain.Close()
	pl.Protocol = "kserve_rest_plain_http"
	res.PlainREST = &pl
	for i := range res.Loads {
		if res.InProcess > 0 {
			res.Loads[i].VsCeiling = res.Loads[i].PerSecond / res.InProcess
		}
		if res.Loads[i].Protocol == "kserve_rest_https" && res.Loads[i].Concurrency == maxC && pl.PerSecond > 0 {
			res.TLSOverPlain = res.Loads[i].PerSecond / pl.PerSecond
		}
	}
	if res.InProcess > 0 {
		res.PlainREST.VsCeiling = pl.PerSecond / res.InProcess
	}

	if rdb != nil {
		key, _ := record.NewKey(recordKey[:])
		progress(fmt.Sprintf("Cluster Serving queue, %d encrypted records", o.Records))
		enc, err := queueRun(ctx, rdb.Addr(), "bench_encrypted", key, rows, o.Features, o.Records)
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		res.Queue = append(res.Queue, *enc)
		// The plaintext baseline needs a job that allows plaintext records.
		pp := *params
		pp.HTTP, pp.GRPC = "127.0.0.1:0", ""
		pp.Queue = &servespec.Queue{Redis: rdb.Addr(), Stream: "bench_plain", Model: "xgb", AllowPlaintext: true, ClaimIdle: 30 * time.Second, MaxDeliveries: 3}
		psrv, err := serveengine.Start(ctx, serveengine.Config{Params: &pp, JobDigest: digest[:], Attester: att,
			Threads: runtime.GOMAXPROCS(0), Input: func(name string) ([]byte, error) { return bytes.Clone(inputs[name]), nil }})
		if err != nil {
			return nil, err
		}
		srv.Stop(context.Background()) // one worker at a time
		progress(fmt.Sprintf("Cluster Serving queue, %d plaintext records (baseline)", o.Records))
		pq, err := queueRun(ctx, rdb.Addr(), "bench_plain", nil, rows, o.Features, o.Records)
		psrv.Stop(context.Background())
		if err != nil {
			return nil, fmt.Errorf("queue (plaintext): %w", err)
		}
		res.Queue = append(res.Queue, *pq)
		if pq.PerSecond > 0 {
			res.EncryptedOverPlain = enc.PerSecond / pq.PerSecond
		}
	}
	res.LoadAverage[1] = usage.LoadAverage()
	return res, nil
}

// measure runs f from c goroutines for warmup (not counted) and then d, and summarises
// throughput and latency.
func measure(ctx context.Context, c int, warmup, d time.Duration, profile string, f func(ctx context.Context, i int) error) Load {
	var counting atomic.Bool
	var stop atomic.Bool
	lat := make([][]time.Duration, c)
	errs := make([]int, c)
	var first atomic.Value
	var wg sync.WaitGroup
	var seq atomic.Int64
	for g := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				i := int(seq.Add(1))
				t0 := time.Now()
				err := f(ctx, i)
				el := time.Since(t0)
				if !counting.Load() {
					continue
				}
				if err != nil {
					errs[g]++
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[g] = append(lat[g], el)
			}
		}()
	}
	time.Sleep(warmup)
	w := startWindow(profile)
	counting.Store(true)
	start := time.Now()
	time.Sleep(d)
	stop.Store(true)
	elapsed := time.Since(start)
	cpu := w.stop()
	wg.Wait()
	var all []time.Duration
	n := 0
	for g := range c {
		all = append(all, lat[g]...)
		n += errs[g]
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	l := Load{Concurrency: c, Requests: len(all), Errors: n, PerSecond: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		l.CPUPerRequestUs = float64(cpu.Microseconds()) / float64(len(all))
		l.P50ms = ms(all[len(all)/2])
		l.P99ms = ms(all[min(len(all)-1, len(all)*99/100)])
	}
	if v, ok := first.Load().(string); ok {
		l.FirstError = v
	}
	return l
}

// P99Target is the latency target at 64 clients, in milliseconds.
const P99Target = 10

// paced runs an open-loop load: c clients, together rate requests/s, each sending on its own
// fixed schedule for warmup (not counted) and then d. Latency is measured from each request's
// scheduled time. A client whose request outlasts its interval sends the next one as soon as
// it can, late; requests still unsent a second after the end are not sent and count as errors.
func paced(ctx context.Context, c int, rate float64, warmup, d time.Duration, profile string, f func(ctx context.Context, i int) error) Paced {
	interval := time.Duration(float64(c) / rate * float64(time.Second))
	start := time.Now().Add(10 * time.Millisecond)
	count := start.Add(warmup)
	end := count.Add(d)
	giveUp := end.Add(time.Second)
	lat := make([][]time.Duration, c)
	lag := make([][]time.Duration, c)
	errs := make([]int, c)
	last := make([]time.Time, c)
	var first atomic.Value
	var wg sync.WaitGroup
	var seq atomic.Int64
	for g := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := start.Add(interval * time.Duration(g) / time.Duration(c)); at.Before(end) && ctx.Err() == nil; at = at.Add(interval) {
				counted := !at.Before(count)
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				} else if time.Now().After(giveUp) {
					if counted {
						errs[g]++
						first.CompareAndSwap(nil, "not sent: the server fell more than a second behind")
					}
					continue
				}
				sent := time.Now()
				err := f(ctx, int(seq.Add(1)))
				done := time.Now()
				if !counted {
					continue
				}
				last[g] = done
				if err != nil {
					errs[g]++
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[g] = append(lat[g], done.Sub(at))
				lag[g] = append(lag[g], sent.Sub(at))
			}
		}()
	}
	time.Sleep(time.Until(count))
	w := startWindow(profile)
	time.Sleep(time.Until(end))
	cpu := w.stop()
	wg.Wait()
	var all, lags []time.Duration
	n := 0
	finish := end
	for g := range c {
		all = append(all, lat[g]...)
		lags = append(lags, lag[g]...)
		n += errs[g]
		if last[g].After(finish) {
			finish = last[g]
		}
	}
	slices.Sort(all)
	slices.Sort(lags)
	p := Paced{Clients: c, TargetRate: rate, Requests: len(all), Errors: n, P99Target: P99Target,
		Achieved: float64(len(all)) / finish.Sub(count).Seconds()}
	if len(all) > 0 {
		p.P50ms = ms(all[len(all)/2])
		p.P99ms = ms(all[min(len(all)-1, len(all)*99/100)])
		p.MaxMs = ms(all[len(all)-1])
		p.SendLagP99ms = ms(lags[min(len(lags)-1, len(lags)*99/100)])
		p.CPUPerRequestUs = float64(cpu.Microseconds()) / float64(len(all))
	}
	if v, ok := first.Load().(string); ok {
		p.FirstError = v
	}
	p.TargetMet = p.Errors == 0 && p.Achieved >= 0.99*rate && p.P99ms < P99Target
	return p
}

// window is a measured interval: the process's CPU time over it and, when asked, its CPU
// profile.
type window struct {
	cpu0        time.Duration
	stopProfile func()
}

func startWindow(profile string) *window {
	w := &window{stopProfile: func() {}}
	if profile != "" {
		// A profile that cannot be written loses the profile, not the measurement.
		if stop, err := usage.StartCPUProfile(profile); err == nil {
			w.stopProfile = stop
		} else {
			fmt.Fprintf(os.Stderr, "bench serve: %v\n", err)
		}
	}
	w.cpu0 = usage.CPUTime()
	return w
}

// stop ends the window and returns the CPU time spent in it.
func (w *window) stop() time.Duration {
	cpu := usage.CPUTime() - w.cpu0
	w.stopProfile()
	return cpu
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func restBodies(rows []float32, features int) [][]byte {
	var out [][]byte
	for i := 0; i < 256 && (i+1)*features <= len(rows); i++ {
		b, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "FP32",
			"shape": []int{1, features}, "data": rows[i*features : (i+1)*features]}}})
		out = append(out, b)
	}
	return out
}

func postInfer(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// queueRun pushes n records (sealed under key, or plaintext when key is nil) in pipelined
// batches, as many clients would, and waits until the consumer group answered every one.
func queueRun(ctx context.Context, addr, stream string, key *record.Key, rows []float32, features, n int) (*Queue, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	// Prepare the records first: the clients' encoding is not the server's work.
	type rec struct{ uri, data string }
	recs := make([]rec, n)
	for i := range recs {
		r := rows[(i%(len(rows)/features))*features:][:features]
		arrowRec, err := clusterserving.EncodeNdarray("input", r, []int32{int32(features)})
		if err != nil {
			return nil, err
		}
		uri := "r" + strconv.Itoa(i)
		if key != nil {
			if arrowRec, err = record.Seal(key, record.Request, stream, uri, arrowRec); err != nil {
				return nil, err
			}
		}
		recs[i] = rec{uri, base64.StdEncoding.EncodeToString(arrowRec)}
	}
	start := time.Now()
	for i := 0; i < n; i += 500 {
		p := c.Pipeline()
		for _, r := range recs[i:min(n, i+500)] {
			p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"uri", r.uri, "data", r.data}})
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		done, err := answered(ctx, c, stream, n)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the queue did not answer every record within 10 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	el := time.Since(start)
	q := &Queue{Records: n, Encrypted: key != nil, Seconds: el.Seconds(), PerSecond: float64(n) / el.Seconds()}
	// Every record has its answer: count the NaNs (there should be none) on a sample.
	p := c.Pipeline()
	var gets []*redis.StringCmd
	for i := 0; i < n; i += max(1, n/200) {
		gets = append(gets, p.HGet(ctx, queue.ResultKey(stream, recs[i].uri), "value"))
	}
	p.Exec(ctx)
	for _, g := range gets {
		if v, err := g.Result(); err != nil || v == queue.NaN {
			q.NaN++
		}
	}
	return q, nil
}

// answered reports whether the consumer group has read every entry and acknowledged it.
func answered(ctx context.Context, c *redis.Client, stream string, n int) (bool, error) {
	groups, err := c.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return false, nil
		}
		return false, err
	}
	for _, g := range groups {
		if g.Name == queue.Group {
			return g.EntriesRead >= int64(n) && g.Lag == 0 && g.Pending == 0, nil
		}
	}
	return false, nil
}

func trainModel(trees, depth, features int) ([]byte, []float32, error) {
	rows := 5000
	x, y := synth.Regression(rows, features, 7)
	d, err := xgboost.NewDMatrix(x, rows, features, 1)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		return nil, nil, err
	}
	names := make([]string, features)
	for i := range names {
		names[i] = "f" + strconv.Itoa(i)
	}
	if err := d.SetFeatureNames(names); err != nil {
		return nil, nil, err
	}
	b, err := xgboost.Train(d, xgboost.Config{Rounds: trees, NThread: runtime.GOMAXPROCS(0), Params: []xgboost.Param{
		{Name: "objective", Value: "reg:squarederror"}, {Name: "max_depth", Value: strconv.Itoa(depth)}, {Name: "seed", Value: "1"}}})
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	m, err := b.SaveJSON()
	return m, x, err
}

// Redis is a redis-server the benchmark started (no persistence: the queue's own cost is
// measured, not the disk's).
type Redis struct {
	port int
	cmd  *exec.Cmd
}

// StartRedis starts redis-server on a free loopback port with its files in dir.
func StartRedis(dir string) (*Redis, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &Redis{port: port}
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--logfile", filepath.Join(dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return r, nil
		}
		if i > 100 {
			r.Stop()
			return nil, errors.New("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Stop ends the server.
func (r *Redis) Stop() {
	r.cmd.Process.Signal(os.Interrupt)
	r.cmd.Wait()
}
