package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/attest/verifier"
)

func init() { registerBench(newBenchAttestCmd) }

// benchVector is the part of vectors.json the benchmark needs.
type benchVector struct {
	ID         string  `json:"id"`
	Platform   string  `json:"platform"`
	Evidence   string  `json:"evidence"`
	Collateral string  `json:"collateral"`
	VCEK       string  `json:"vcek"`
	Chain      string  `json:"chain"`
	At         *string `json:"at"`
	Valid      bool    `json:"valid"`
}

type benchAttestResult struct {
	Platform attest.Platform  `json:"platform"`
	Vectors  []string         `json:"vectors"`
	Latency  verifier.Latency `json:"latency"`
}

func newBenchAttestCmd() *cobra.Command {
	var (
		dir    string
		n      int
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "attest",
		Short: "Verification latency per quote/report (p50, p99) for SGX, TDX, SEV-SNP and the simulator",
		Long: `Verify every valid case of a set of attestation vectors --n times each, with collateral
parsed once and the verifier's caches warm (as in a long-running key service), and print
p50 and p99 per platform. --vectors is a directory holding vectors.json and the files it
names (the layout of the shared test data, ../shared/testdata/attestation beside a checkout).
The simulator is measured with a throw-away platform key.`,
		Example: `  ppml bench attest --vectors ../shared/testdata/attestation
  ppml bench attest --vectors ../shared/testdata/attestation --n 1000 --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return usageErrorf("--n must be at least 1")
			}
			if dir == "" {
				return usageErrorf("give the attestation vectors with --vectors DIR (for example ../shared/testdata/attestation from the repository root)")
			}
			res, err := benchAttest(cmd.Context(), dir, n)
			if err != nil {
				return fmt.Errorf("bench attest: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "attestation verification, %d runs per case, collateral parsed and cached\n", n)
			for _, r := range res {
				fmt.Fprintf(w, "  %-4s %2d case(s)  p50 %8s  p99 %8s  max %8s\n", r.Platform, len(r.Vectors),
					r.Latency.P50.Round(time.Microsecond), r.Latency.P99.Round(time.Microsecond), r.Latency.Max.Round(time.Microsecond))
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "vectors", "", "directory with vectors.json and the evidence and collateral it names (required)")
	c.Flags().IntVar(&n, "n", 200, "verifications per case")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func benchAttest(ctx context.Context, dir string, n int) ([]benchAttestResult, error) {
	b, err := os.ReadFile(filepath.Join(dir, "vectors.json"))
	if err != nil {
		return nil, fmt.Errorf("--vectors: %w", err)
	}
	var vs []benchVector
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

	var out []benchAttestResult
	for _, p := range []attest.Platform{attest.PlatformSGX, attest.PlatformTDX, attest.PlatformSNP, attest.PlatformSim} {
		if len(samples[p]) == 0 {
			continue
		}
		out = append(out, benchAttestResult{Platform: p, Vectors: ids[p], Latency: verifier.Summarise(samples[p])})
	}
	return out, nil
}
