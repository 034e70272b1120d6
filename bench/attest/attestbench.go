// Package attestbench measures evidence verification latency (p50, p99)
// for SGX, TDX, SEV-SNP and the simulated TEE on a set of attestation
// vectors (the layout of the shared test data). It is what ppml bench attest runs.
package attestbench

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/attest/verifier"
)

// vector is the part of vectors.json the benchmark needs.
type vector struct {
	ID         string  `json:"id"`
	Platform   string  `json:"platform"`
	Evidence   string  `json:"evidence"`
	Collateral string  `json:"collateral"`
	VCEK       string  `json:"vcek"`
	Chain      string  `json:"chain"`
	At         *string `json:"at"`
	Valid      bool    `json:"valid"`
}

// Result is the latency of one platform's verifications.
type Result struct {
	Platform attest.Platform  `json:"platform"`
	Vectors  []string         `json:"vectors"`
	Latency  verifier.Latency `json:"latency"`
}

// Run verifies every valid case of the attestation vectors in dir (its
// vectors.json) n times each, with collateral parsed once and the
// verifiers' caches warm, as in a long-running key service, and the
// simulator with a throw-away platform key. It returns the latency per
// platform.
func Run(ctx context.Context, dir string, n int) ([]Result, error) {
	b, err := os.ReadFile(filepath.Join(dir, "vectors.json"))
	if err != nil {
		return nil, fmt.Errorf("--vectors: %w", err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		return nil, fmt.Errorf("vectors.json: %w", err)
	}
	samples := map[attest.Platform][]time.Duration{}
	ids := map[attest.Platform][]string{}
	snpV := &snp.Verifier{}
	for _, v := range vs {
		if !v.Valid {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, v.Evidence))
		if err != nil {
			return nil, err
		}
		ev := &attest.Evidence{Platform: attest.Platform(v.Platform), Data: data}
		var ver attest.Verifier
		var opts attest.VerifyOptions
		switch ev.Platform {
		case attest.PlatformSGX, attest.PlatformTDX:
			// Time the quote itself: the verifier refuses non-zero bytes a
			// publisher appended after it (one vector carries a test marker).
			if q, err := dcap.ParseQuote(data); err == nil {
				ev.Data = data[:q.Length]
			}
			col, err := dcap.LoadBundle(filepath.Join(dir, v.Collateral))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.ID, err)
			}
			ver = &dcap.Verifier{Source: dcap.StaticSource(col)}
			if v.At == nil {
				return nil, fmt.Errorf("%s: no verification time", v.ID)
			}
			if opts.Time, err = time.Parse(time.RFC3339, *v.At); err != nil {
				return nil, fmt.Errorf("%s: %w", v.ID, err)
			}
		case attest.PlatformSNP:
			leaf, err := os.ReadFile(filepath.Join(dir, v.VCEK))
			if err != nil {
				return nil, err
			}
			if ev.Aux, err = snp.TableFromCerts(leaf, nil); err != nil {
				return nil, fmt.Errorf("%s: %w", v.ID, err)
			}
			ver = snpV
			// The vectors carry no time for SNP: use the middle of the
			// VCEK's validity.
			certs, err := snp.ParsePEMCerts(leaf)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.ID, err)
			}
			opts.Time = certs[0].NotBefore.Add(certs[0].NotAfter.Sub(certs[0].NotBefore) / 2)
		default:
			continue
		}
		s, err := verifier.Samples(ctx, ver, ev, opts, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.ID, err)
		}
		samples[ev.Platform] = append(samples[ev.Platform], s...)
		ids[ev.Platform] = append(ids[ev.Platform], v.ID)
	}
	// The simulator, with a throw-away key.
	simDir, err := os.MkdirTemp("", "ppml-bench-sim")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(simDir)
	simEv, err := (&sim.Attester{Dir: simDir}).Evidence(ctx, [attest.ReportDataSize]byte{})
	if err != nil {
		return nil, err
	}
	pub, err := sim.LoadPublicKey(filepath.Join(simDir, sim.PlatformPubKeyFile))
	if err != nil {
		return nil, err
	}
	s, err := verifier.Samples(ctx, verifier.New(verifier.Config{SimKeys: []ed25519.PublicKey{pub}}), simEv, attest.VerifyOptions{}, n)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	samples[attest.PlatformSim], ids[attest.PlatformSim] = s, []string{"local"}

	var out []Result
	for _, p := range []attest.Platform{attest.PlatformSGX, attest.PlatformTDX, attest.PlatformSNP, attest.PlatformSim} {
		if len(samples[p]) == 0 {
			continue
		}
		out = append(out, Result{Platform: p, Vectors: ids[p], Latency: verifier.Summarise(samples[p])})
	}
	return out, nil
}
