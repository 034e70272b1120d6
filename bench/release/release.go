// Package release measures the key service's release path end to end on
// this machine: a real server over HTTPS on 127.0.0.1 (package
// kms/local), runners doing the whole protocol (challenge, simulated
// evidence, release, HPKE open) in parallel. It backs `ppml bench release`.
package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/core"
	"github.com/ppml/ppml/kms/local"
)

// Options of a run.
type Options struct {
	Duration    time.Duration // default 5 s
	Concurrency int           // parallel runners, default 32
	Warmup      time.Duration // default 1 s, not counted
	// SGX, when set, sends this real SGX quote instead of simulated
	// evidence. Without SGX hardware no quote can bind the benchmark's
	// nonce, so every attempt is fully verified (DCAP, collateral in
	// memory) and then denied at report_data: the result measures
	// verification and the audited decision, not a completed release.
	SGX *SGXInput
}

// SGXInput is a real quote and the collateral to verify it at time At.
type SGXInput struct {
	Quote      []byte
	Collateral dcap.Source
	At         time.Time
}

// Result of a run.
type Result struct {
	Platform    string  `json:"platform"`
	Concurrency int     `json:"concurrency"`
	Releases    int     `json:"releases"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"releases_per_second"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	FirstError  string  `json:"first_error,omitempty"`
}

// Manifest is the job manifest the benchmark releases for.
var Manifest = []byte("version: 1\nname: release-bench\nengine: exec\ninputs:\n  data: {path: data.ppml}\nparameters:\n  command: [cat]\n")

// Run sets up a fresh server in a temporary directory and measures releases
// with simulated evidence.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	tmp, err := os.MkdirTemp("", "ppml-bench-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// A small stand-in executable keeps the simulator from hashing this
	// whole binary for every piece of evidence (a real TEE measures once).
	exe := filepath.Join(tmp, "job-binary")
	if err := os.WriteFile(exe, []byte("release benchmark job binary"), 0o644); err != nil {
		return nil, err
	}
	simTEE, err := local.NewSim(filepath.Join(tmp, "sim"), exe)
	if err != nil {
		return nil, err
	}
	cfg := kms.Config{DataDir: filepath.Join(tmp, "kms"), RateLimit: -1}
	if o.SGX != nil {
		cfg.Collateral = o.SGX.Collateral
		at := o.SGX.At
		cfg.Now = func() time.Time { return at }
	}
	srv, err := local.Start(local.Options{Config: cfg, Sim: simTEE})
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	token := func(name, role string) (*client.Client, error) {
		c, _, err := srv.Party(ctx, name, role)
		return c, err
	}
	owner, err := token("owner", api.RoleOwner)
	if err != nil {
		return nil, err
	}
	runner, err := token("runner", api.RoleRunner)
	if err != nil {
		return nil, err
	}
	if _, err := owner.CreateKey(ctx, "owner/bench-key"); err != nil {
		return nil, err
	}
	if _, err := owner.SetPolicy(ctx, "owner/bench-key", simTEE.Policy("")); err != nil {
		return nil, err
	}
	dk, err := owner.GenerateDataKey(ctx, "owner/bench-key", []byte("bench aad"))
	if err != nil {
		return nil, err
	}
	items := []api.ReleaseKeyItem{{Ref: "owner/bench-key", Wrapped: dk.Wrapped, AAD: []byte("bench aad")}}
	att := simTEE.Attester()

	digest, err := core.JobDigest(Manifest)
	if err != nil {
		return nil, err
	}
	res := &Result{Platform: "sim", Concurrency: o.Concurrency}
	attempt := func() error {
		r, err := runner.Release(ctx, att, Manifest, [32]byte(digest), items, 0)
		if err == nil {
			r.Zero()
		}
		return err
	}
	if o.SGX != nil {
		res.Platform = "sgx (real quote, verified, denied at report_data)"
		attempt = func() error {
			ch, err := runner.Challenge(ctx)
			if err != nil {
				return err
			}
			req := &api.ReleaseRequest{Nonce: ch.Nonce, Evidence: attest.Evidence{Platform: attest.PlatformSGX, Data: o.SGX.Quote},
				PublicKey: make([]byte, 32), Manifest: Manifest, Keys: items}
			_, err = runner.ReleaseRaw(ctx, req)
			var se *client.StatusError
			if errors.As(err, &se) && len(se.Err.Denials) > 0 && se.Err.Denials[0].Rule == api.RuleReportData {
				return nil
			}
			if err == nil {
				return errors.New("a stale quote was released to")
			}
			return err
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var errs int
			var first string
			for {
				t0 := time.Now()
				if t0.After(end) || ctx.Err() != nil {
					break
				}
				err := attempt()
				d := time.Since(t0)
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				if t0.After(measureFrom) {
					mine = append(mine, d)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.Errors += errs
			if res.FirstError == "" {
				res.FirstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Releases = len(lat)
	res.Seconds = o.Duration.Seconds()
	res.PerSecond = float64(res.Releases) / res.Seconds
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		res.P50ms = float64(lat[len(lat)/2].Microseconds()) / 1000
		res.P99ms = float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	return res, ctx.Err()
}
