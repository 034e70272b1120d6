// Package xgbdistbench measures distributed XGBoost training over attested
// tunnels (ppml bench xgboost-dist): the same training on one worker, on
// two workers over plain TCP, and on two workers over mutually attested
// TLS tunnels with certificates from a key service on loopback, in one
// run, with the tunnels' overhead as a ratio against plain TCP and a check
// that every run built the same model.
package xgbdistbench

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/local"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/ml/xgboost/rabit"
	"github.com/ppml/ppml/workload"
	"github.com/ppml/ppml/workload/mtls"
	"github.com/ppml/ppml/workload/tunnel"
)

// Config is the training measured.
type Config struct {
	Rows, Cols, Rounds, MaxDepth int
	// Repeat runs each distributed variant this many times, alternating,
	// and keeps the fastest (the machine is shared).
	Repeat int
}

// Result is what ppml bench xgboost-dist prints.
type Result struct {
	XGBoostVersion string  `json:"xgboost_version"`
	Rows           int     `json:"rows"`
	Cols           int     `json:"cols"`
	Rounds         int     `json:"rounds"`
	MaxDepth       int     `json:"max_depth"`
	Workers        int     `json:"workers"`
	SingleSeconds  float64 `json:"single_worker_seconds"`
	PlainSeconds   float64 `json:"plain_tcp_seconds"`
	TunnelSeconds  float64 `json:"attested_tunnel_seconds"`
	// Ratio is TunnelSeconds / PlainSeconds (target ≤ 1.10).
	Ratio float64 `json:"tunnel_overhead_ratio"`
	// SameModel: every worker of every distributed run built the same
	// model; EqualsSingle: and it equals the single worker's.
	SameModel    bool `json:"same_model"`
	EqualsSingle bool `json:"equals_single_worker_model"`
	// Platform of the workers' TEE: simulated here.
	Platform string `json:"platform"`
}

const workers = 2

var manifest = []byte("version: 1\nname: xgboost-dist-bench\nengine: exec\nparameters:\n  command: [true]\n")

// Run measures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Repeat < 1 {
		cfg.Repeat = 1
	}
	maj, min, pat := xgboost.Version()
	res := &Result{XGBoostVersion: fmt.Sprintf("%d.%d.%d", maj, min, pat), Rows: cfg.Rows, Cols: cfg.Cols, Rounds: cfg.Rounds, MaxDepth: cfg.MaxDepth, Workers: workers, Platform: "sim (simulated TEE)"}
	x, y := data(cfg.Rows, cfg.Cols)
	params := []xgboost.Param{{Name: "objective", Value: "reg:squarederror"}, {Name: "max_depth", Value: fmt.Sprint(cfg.MaxDepth)}}

	start := time.Now()
	single, err := train(x, y, cfg, params, nil)
	if err != nil {
		return nil, fmt.Errorf("single worker: %w", err)
	}
	res.SingleSeconds = time.Since(start).Seconds()

	certs, trust, cleanup, err := identities(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	var models [][]byte
	res.PlainSeconds, res.TunnelSeconds = -1, -1
	for range cfg.Repeat {
		s, m, err := plain(ctx, x, y, cfg, params)
		if err != nil {
			return nil, fmt.Errorf("plain TCP: %w", err)
		}
		models = append(models, m...)
		if res.PlainSeconds < 0 || s < res.PlainSeconds {
			res.PlainSeconds = s
		}
		s, m, err = tunneled(ctx, x, y, cfg, params, certs, trust)
		if err != nil {
			return nil, fmt.Errorf("attested tunnels: %w", err)
		}
		models = append(models, m...)
		if res.TunnelSeconds < 0 || s < res.TunnelSeconds {
			res.TunnelSeconds = s
		}
	}
	res.Ratio = res.TunnelSeconds / res.PlainSeconds
	res.SameModel = true
	for _, m := range models[1:] {
		res.SameModel = res.SameModel && bytes.Equal(m, models[0])
	}
	res.EqualsSingle = res.SameModel && bytes.Equal(models[0], single)
	return res, nil
}

// data is a regression table with few distinct values per feature (exact
// quantile cuts, so distributed and single training can agree).
func data(rows, cols int) (x, y []float32) {
	r := rand.New(rand.NewPCG(1, 2))
	x = make([]float32, rows*cols)
	y = make([]float32, rows)
	for i := range rows {
		s := 0.0
		for j := range cols {
			v := float32(r.IntN(64))
			x[i*cols+j] = v
			s += float64(v) * float64(j%5-2)
		}
		y[i] = float32(s + r.NormFloat64()*4)
	}
	return x, y
}

func train(x, y []float32, cfg Config, params []xgboost.Param, coll *xgboost.Collective) ([]byte, error) {
	d, err := xgboost.NewDMatrix(x, len(y), cfg.Cols, 1)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		return nil, err
	}
	b, err := xgboost.Train(d, xgboost.Config{Params: params, Rounds: cfg.Rounds, NThread: 1, Collective: coll})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.SaveJSON()
}

// distributed trains the workers concurrently, each on its block of rows.
func distributed(x, y []float32, cfg Config, params []xgboost.Param, coll func(i int) *xgboost.Collective) (float64, [][]byte, error) {
	models := make([][]byte, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, hi := len(y)*i/workers, len(y)*(i+1)/workers
			models[i], errs[i] = train(x[lo*cfg.Cols:hi*cfg.Cols], y[lo:hi], cfg, params, coll(i))
		}()
	}
	wg.Wait()
	return time.Since(start).Seconds(), models, errors.Join(errs...)
}

func plain(ctx context.Context, x, y []float32, cfg Config, params []xgboost.Param) (float64, [][]byte, error) {
	t, err := rabit.StartTracker(ctx, workers)
	if err != nil {
		return 0, nil, err
	}
	defer t.Stop()
	return distributed(x, y, cfg, params, func(i int) *xgboost.Collective {
		return &xgboost.Collective{TrackerHost: "127.0.0.1", TrackerPort: t.Port, TaskID: rabit.TaskID(i), WorldSize: workers, Rank: i}
	})
}

func tunneled(ctx context.Context, x, y []float32, cfg Config, params []xgboost.Param, certs []*client.Cert, trust *workload.Trust) (float64, [][]byte, error) {
	lns := make([]net.Listener, workers)
	peers := make([]string, workers)
	for i := range workers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, nil, err
		}
		lns[i], peers[i] = ln, ln.Addr().String()
	}
	ws := make([]*rabit.Worker, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		peer := &mtls.Peer{Trust: trust, Expect: workload.Expect{JobDigest: certs[i].Identity.JobDigest, Policy: certs[i].Identity.Policy,
			Roles: []string{"xgboost-worker"}, AllowInsecure: certs[i].Identity.Insecure}}
		src := mtls.Static{Cert: &certs[i].TLS}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws[i], errs[i] = rabit.Join(ctx, rabit.Options{Index: i, Peers: peers, Listener: lns[i],
				ServerTLS: mtls.ServerConfig(src, peer, tunnel.ALPN), ClientTLS: mtls.ClientConfig(src, peer, tunnel.ALPN)})
		}()
	}
	wg.Wait()
	defer func() {
		for i := workers - 1; i >= 0; i-- {
			if ws[i] != nil {
				ws[i].Stop()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	return distributed(x, y, cfg, params, func(i int) *xgboost.Collective {
		return &xgboost.Collective{TrackerHost: ws[i].TrackerHost, TrackerPort: ws[i].TrackerPort, TaskID: rabit.TaskID(i), WorldSize: workers, Rank: i}
	})
}

// identities starts a key service on loopback with a simulated TEE, sets a
// certificate policy for the benchmark's job and obtains each worker's
// certificate through the certificate protocol.
func identities(ctx context.Context) ([]*client.Cert, *workload.Trust, func(), error) {
	dir, err := os.MkdirTemp("", "ppml-bench-xgbdist-")
	if err != nil {
		return nil, nil, nil, err
	}
	var srv *local.Server
	var crl *client.CRLWatcher
	cleanup := func() {
		if crl != nil {
			crl.Close()
		}
		if srv != nil {
			srv.Stop()
		}
		os.RemoveAll(dir)
	}
	fail := func(err error) ([]*client.Cert, *workload.Trust, func(), error) {
		cleanup()
		return nil, nil, nil, fmt.Errorf("bench xgboost-dist: workload certificates: %w", err)
	}
	exe := filepath.Join(dir, "ppml-run")
	if err := os.WriteFile(exe, []byte("the measured runtime of the benchmark"), 0o755); err != nil {
		return fail(err)
	}
	sim, err := local.NewSim(filepath.Join(dir, "sim"), exe)
	if err != nil {
		return fail(err)
	}
	if srv, err = local.Start(local.Options{Sim: sim}); err != nil {
		return fail(err)
	}
	owner, _, err := srv.Party(ctx, "owner", api.RoleOwner)
	if err != nil {
		return fail(err)
	}
	runner, _, err := srv.Party(ctx, "runner", api.RoleRunner)
	if err != nil {
		return fail(err)
	}
	m, err := job.Parse(manifest, "/", specs.All)
	if err != nil {
		return fail(err)
	}
	jd := m.Digest()
	if _, err := owner.SetCertPolicy(ctx, "owner/xgb", sim.Policy("jobs: [sha256:"+hex.EncodeToString(jd[:])+"]\ncertificate:\n  roles: [xgboost-worker]\n")); err != nil {
		return fail(err)
	}
	var certs []*client.Cert
	for range workers {
		c, err := runner.IssueCert(ctx, sim.Attester(), manifest, jd[:], client.CertOptions{Policy: "owner/xgb", Role: "xgboost-worker"})
		if err != nil {
			return fail(err)
		}
		certs = append(certs, c)
	}
	if crl, err = runner.WatchCRL(ctx, certs[0].CA); err != nil {
		return fail(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(certs[0].CA)
	return certs, &workload.Trust{Roots: roots, Revocations: crl}, cleanup, nil
}
