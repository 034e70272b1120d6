package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/ccel"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/detect"
	"github.com/ppml/ppml/attest/evidencefile"
	"github.com/ppml/ppml/attest/gramine"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/attest/snp/kds"
	"github.com/ppml/ppml/attest/tsm"
	"github.com/ppml/ppml/attest/verifier"
)

func init() { register(newAttestCmd) }

func newAttestCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "attest",
		Short: "Produce, inspect and verify TEE evidence (SGX, TDX, SEV-SNP, simulated)",
		Example: `  ppml attest evidence --report-data 00ff --tee auto -o evidence.json
  ppml attest verify --evidence report.bin --vcek vcek.der --json
  ppml attest inspect quote.bin`,
	}
	c.AddCommand(newAttestVerifyCmd(), newAttestEvidenceCmd(), newAttestInspectCmd())
	return c
}

// verifyResult is what `attest verify --json` prints.
type verifyResult struct {
	Valid      bool            `json:"valid"`
	Platform   attest.Platform `json:"platform"`
	Insecure   bool            `json:"insecure"`
	TCBStatus  string          `json:"tcb_status"`
	Advisories []string        `json:"advisories"`
	// Measurement fields (empty when invalid: unverified values are not shown).
	Measurement attest.Hex `json:"measurement,omitempty"`
	MREnclave   attest.Hex `json:"mrenclave,omitempty"`
	MRSigner    attest.Hex `json:"mrsigner,omitempty"`
	MRTD        attest.Hex `json:"mrtd,omitempty"`
	Signer      attest.Hex `json:"signer,omitempty"`
	ReportData  attest.Hex `json:"report_data,omitempty"`
	// Claims is the full normalized result when valid.
	Claims *attest.Claims `json:"claims,omitempty"`
	Check  string         `json:"check,omitempty"`
	Error  string         `json:"error,omitempty"`
}

func newAttestVerifyCmd() *cobra.Command {
	var (
		evidencePath, platform, collateral, pccs, pccsCache, vcek, chain, at, eventLog string
		amdKDS, amdKDSCache                                                            string
		simKeys                                                                        []string
		asJSON                                                                         bool
	)
	c := &cobra.Command{
		Use:   "verify --evidence FILE",
		Short: "Verify evidence against pinned vendor roots; exit 0 valid, 1 invalid, 2 usage",
		Long: `Verify a DCAP quote (SGX, TDX), an SEV-SNP attestation report or simulated evidence,
given raw or as the JSON container 'ppml attest evidence' writes. The platform is recognised
from the content where it is unambiguous; otherwise pass --platform.

SGX and TDX need Intel collateral (--collateral bundle or --pccs URL). SEV-SNP needs the
VCEK: --vcek, the container's certificate table, or --amd-kds (AMD's Key Distribution
Service or a mirror, cached, or an offline bundle of certificates) for reports that come
without one; --chain may supply the ASK, but the AMD root (ARK) is always the pinned one.
Simulated evidence is refused unless its platform key is given with --sim-key.

A TDX event log (the CCEL table's log, in the container or with --event-log) is replayed
against the quoted RTMRs; the claims list the events of every RTMR it accounts for.

Exit status: 0 valid, 1 invalid (the failing check is named), 2 usage error.`,
		Example: `  ppml attest verify --evidence quote.bin --collateral bundle.json --at 2025-07-19T10:01:17Z
  ppml attest verify --evidence report.bin --vcek vcek.der --chain ask_ark_milan.pem --json
  ppml attest verify --evidence report.bin --amd-kds https://kdsintf.amd.com
  ppml attest verify --evidence evidence.json --sim-key ~/.config/ppml/sim/platform.pub
  ppml attest verify --evidence td-quote.bin --collateral bundle.json --event-log CCEL --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if evidencePath == "" {
				return usageErrorf("--evidence is required")
			}
			if collateral != "" && pccs != "" {
				return usageErrorf("--collateral and --pccs are exclusive")
			}
			if chain != "" && vcek == "" {
				return usageErrorf("--chain needs --vcek")
			}
			p := attest.Platform(platform)
			switch p {
			case "", attest.PlatformSGX, attest.PlatformTDX, attest.PlatformSNP, attest.PlatformSim:
			default:
				return usageErrorf("--platform %q: want sgx, tdx, snp or sim", platform)
			}
			opts := attest.VerifyOptions{}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageErrorf("--at %q: give an RFC 3339 time such as 2026-01-31T12:00:00Z", at)
				}
				opts.Time = t
			}
			cfg := verifier.Config{}
			for _, k := range simKeys {
				pub, err := sim.LoadPublicKey(k)
				if err != nil {
					return fmt.Errorf("--sim-key: %w", err)
				}
				cfg.SimKeys = append(cfg.SimKeys, pub)
			}
			switch {
			case collateral != "":
				col, err := dcap.LoadBundle(collateral)
				if err != nil {
					return fmt.Errorf("--collateral: %w", err)
				}
				cfg.Collateral = dcap.StaticSource(col)
			case pccs != "":
				cfg.Collateral = &dcap.PCCS{BaseURL: strings.TrimRight(pccs, "/"), CacheDir: pccsCacheDir(pccsCache)}
			}
			certs, err := amdCertSource(amdKDS, amdKDSCache)
			if err != nil {
				return err
			}
			cfg.SNPCerts = certs
			raw, err := os.ReadFile(evidencePath)
			if err != nil {
				return err
			}
			var logBytes []byte
			if eventLog != "" {
				if logBytes, err = os.ReadFile(eventLog); err != nil {
					return fmt.Errorf("--event-log: %w", err)
				}
			}
			res := runVerify(cmd.Context(), raw, p, vcek, chain, logBytes, cfg, opts)
			return printVerify(cmd.OutOrStdout(), res, asJSON)
		},
	}
	f := c.Flags()
	f.StringVar(&evidencePath, "evidence", "", "evidence file: raw quote/report or JSON container")
	f.StringVar(&platform, "platform", "", "sgx, tdx, snp or sim, when the content is ambiguous")
	f.StringVar(&collateral, "collateral", "", "offline Intel collateral bundle (JSON) for SGX/TDX")
	f.StringVar(&pccs, "pccs", "", "PCCS or Intel PCS base URL for SGX/TDX collateral (e.g. https://api.trustedservices.intel.com)")
	f.StringVar(&pccsCache, "pccs-cache", "", "collateral cache directory (default: user cache dir/ppml/pccs)")
	f.StringVar(&vcek, "vcek", "", "SEV-SNP VCEK or VLEK certificate (DER or PEM)")
	f.StringVar(&chain, "chain", "", "SEV-SNP ASK/ASVK (+ARK, ignored) chain, PEM")
	addAMDKDSFlags(c, &amdKDS, &amdKDSCache)
	f.StringArrayVar(&simKeys, "sim-key", nil, "trust this simulation platform public key (PEM); repeatable")
	f.StringVar(&at, "at", "", "verification time, RFC 3339 (default now)")
	f.StringVar(&eventLog, "event-log", "", "TDX event log (the CCEL table's log area, e.g. a copy of "+ccel.SystemPath+"), for a quote given without one")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// addAMDKDSFlags adds --amd-kds and --amd-kds-cache.
func addAMDKDSFlags(c *cobra.Command, src, cache *string) {
	f := c.Flags()
	f.StringVar(src, "amd-kds", "", "where SEV-SNP VCEKs come from when evidence carries none: AMD KDS or a mirror (https://kdsintf.amd.com), or an offline bundle (certificate file or directory)")
	f.StringVar(cache, "amd-kds-cache", "", "with an --amd-kds URL: certificate cache directory (default: user cache dir/ppml/amd-kds)")
}

// amdCertSource is the --amd-kds source: a KDS URL (with a disk cache) or
// an offline bundle; nil when the flag is empty.
func amdCertSource(src, cache string) (snp.CertSource, error) {
	switch {
	case src == "":
		if cache != "" {
			return nil, usageErrorf("--amd-kds-cache needs an --amd-kds URL")
		}
		return nil, nil
	case strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://"):
		if cache == "" {
			if d, err := os.UserCacheDir(); err == nil {
				cache = filepath.Join(d, "ppml", "amd-kds")
			}
		}
		return &kds.Client{BaseURL: strings.TrimRight(src, "/"), CacheDir: cache}, nil
	default:
		if cache != "" {
			return nil, usageErrorf("--amd-kds-cache is for an --amd-kds URL, not the offline bundle %s", src)
		}
		b, err := kds.LoadBundle(src)
		if err != nil {
			return nil, fmt.Errorf("--amd-kds: %w", err)
		}
		return b, nil
	}
}

func pccsCacheDir(flag string) string {
	if flag != "" {
		return flag
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ppml", "pccs")
	}
	return ""
}

// runVerify decodes and verifies evidence; every failure becomes an invalid
// result naming its check.
func runVerify(ctx context.Context, raw []byte, p attest.Platform, vcekPath, chainPath string, eventLog []byte, cfg verifier.Config, opts attest.VerifyOptions) *verifyResult {
	fail := func(err error) *verifyResult {
		r := &verifyResult{Platform: p, Advisories: []string{}, Error: err.Error(), Check: "evidence_format"}
		var ce *attest.CheckError
		if errors.As(err, &ce) {
			r.Check = ce.Check
		}
		return r
	}
	f, err := evidencefile.Decode(raw, p)
	if err != nil {
		return fail(err)
	}
	p = f.Platform
	ev := f.Evidence()
	if eventLog != nil {
		if len(ev.EventLog) > 0 {
			return fail(attest.Fail("event_log", "--event-log given but the evidence container carries an event log already"))
		}
		ev.EventLog = eventLog
	}
	if vcekPath != "" {
		if p != attest.PlatformSNP {
			return fail(attest.Fail("platform", "--vcek given but the evidence is %s, not snp", p))
		}
		leaf, err := os.ReadFile(vcekPath)
		if err != nil {
			return fail(attest.Fail("vcek_parse", "%w", err))
		}
		var ch []byte
		if chainPath != "" {
			if ch, err = os.ReadFile(chainPath); err != nil {
				return fail(attest.Fail("ask_chain", "%w", err))
			}
		}
		aux, err := snp.TableFromCerts(leaf, ch)
		if err != nil {
			return fail(attest.Fail("vcek_parse", "%w", err))
		}
		ev.Aux = aux
	}
	cl, err := verifier.New(cfg).Verify(ctx, ev, opts)
	if err != nil {
		return fail(err)
	}
	if f.ReportData != nil && !bytes.Equal(f.ReportData, cl.ReportData) {
		return fail(attest.Fail("report_data", "the evidence binds report data %x…, the container says %x…", cl.ReportData[:8], f.ReportData[:8]))
	}
	adv := cl.Advisories
	if adv == nil {
		adv = []string{}
	}
	return &verifyResult{Valid: true, Platform: cl.Platform, Insecure: cl.Insecure, TCBStatus: cl.TCBStatus, Advisories: adv,
		Measurement: cl.Measurement, MREnclave: cl.MREnclave, MRSigner: cl.MRSigner, MRTD: cl.MRTD, Signer: cl.Signer,
		ReportData: cl.ReportData, Claims: cl}
}

func printVerify(w io.Writer, r *verifyResult, asJSON bool) error {
	if asJSON {
		if err := writeJSON(w, r); err != nil {
			return err
		}
	} else if r.Valid {
		fmt.Fprintf(w, "valid: %s evidence verified\n", r.Platform)
		if r.Insecure {
			fmt.Fprintln(w, "WARNING: simulated TEE - insecure, for development only")
		}
		if err := printFields(w, r.Claims); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "invalid: check %s failed: %s\n", r.Check, r.Error)
	}
	if !r.Valid {
		return &silentExit{Code: ExitFailure}
	}
	return nil
}

// printFields prints v's JSON form as "path: value" lines, in field order.
func printFields(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var walk func(prefix string) error
	walk = func(prefix string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' {
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					key := k.(string)
					if prefix != "" {
						key = prefix + "." + key
					}
					if err := walk(key); err != nil {
						return err
					}
				}
			} else {
				for i := 0; dec.More(); i++ {
					if err := walk(fmt.Sprintf("%s[%d]", prefix, i)); err != nil {
						return err
					}
				}
			}
			_, err = dec.Token() // closing delimiter
			return err
		case nil:
			return nil
		default:
			_, err := fmt.Fprintf(w, "%s: %v\n", prefix, t)
			return err
		}
	}
	return walk("")
}

func newAttestEvidenceCmd() *cobra.Command {
	var (
		reportData, tee, out, simDir, simSigner, gramineRoot, tsmRoot string
		asJSON, force                                                 bool
	)
	c := &cobra.Command{
		Use:   "evidence --report-data HEX -o FILE",
		Short: "Produce evidence from this TEE that binds 64 bytes of report data",
		Long: `Ask the TEE for evidence binding --report-data (hex, at most 64 bytes, zero-padded on the
right) and write it atomically as a JSON evidence container (docs/formats/evidence.md).

--tee auto finds Gramine's /dev/attestation or Linux configfs-tsm and says which; it never
picks the simulated TEE. --tee sim signs with this machine's simulation platform key
($PPML_SIM_DIR or $XDG_CONFIG_HOME/ppml/sim): insecure, for development and CI only.`,
		Example: `  ppml attest evidence --report-data $(sha512sum nonce | cut -c1-128) -o evidence.json
  PPML_SIM_DIR=/tmp/sim ppml attest evidence --tee sim --report-data 01 -o ev.json --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("-o FILE is required (- for standard output)")
			}
			if out == "-" && asJSON {
				return usageErrorf("--json prints to standard output, which -o - takes; give -o FILE")
			}
			if err := checkOutput(out, force); err != nil {
				return err
			}
			rdBytes, err := hex.DecodeString(reportData)
			if err != nil || len(rdBytes) == 0 || len(rdBytes) > attest.ReportDataSize {
				return usageErrorf("--report-data: want 1 to 64 bytes of hex")
			}
			var rd [attest.ReportDataSize]byte
			copy(rd[:], rdBytes)
			var a attest.Attester
			reason := "chosen with --tee"
			switch tee {
			case "auto":
				r, err := detect.Detect(detect.Options{GramineRoot: gramineRoot, TSMRoot: tsmRoot})
				if err != nil {
					return err
				}
				a, reason = r.Attester, r.Reason
			case "sim":
				a = &sim.Attester{Dir: simDir, SignerKey: simSigner}
			case "gramine":
				a = &gramine.Attester{Root: gramineRoot}
			case "tsm":
				a = ccel.WithEventLog(&tsm.Attester{Root: tsmRoot})
			default:
				return usageErrorf("--tee %q: want auto, sim, gramine or tsm", tee)
			}
			ev, err := a.Evidence(cmd.Context(), rd)
			if err != nil {
				return err
			}
			f := evidencefile.New(ev, a.Name(), rd[:], time.Now())
			if out == "-" {
				b, err := f.Marshal()
				if err != nil {
					return err
				}
				if _, err := cmd.OutOrStdout().Write(b); err != nil {
					return fmt.Errorf("write evidence: %w", err)
				}
				if ev.Platform == attest.PlatformSim {
					fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: simulated TEE - insecure, for development only")
				}
				return nil
			}
			if err := f.Write(out); err != nil {
				return fmt.Errorf("write evidence: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"output": out, "platform": ev.Platform, "backend": a.Name(), "reason": reason, "insecure": ev.Platform == attest.PlatformSim})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s evidence from %s (%s) to %s\n", ev.Platform, a.Name(), reason, out)
			if ev.Platform == attest.PlatformSim {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: simulated TEE - insecure, for development only")
				d := simDir
				if d == "" {
					d, _ = sim.DefaultDir()
				}
				fmt.Fprintf(cmd.OutOrStdout(), "verifiers must be given %s (--sim-key) to accept it\n", filepath.Join(d, sim.PlatformPubKeyFile))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&reportData, "report-data", "", "report data to bind, hex (required)")
	f.StringVar(&tee, "tee", "auto", "auto, sim, gramine or tsm")
	f.StringVarP(&out, "output", "o", "", "output file, or - for standard output (required)")
	f.BoolVar(&force, "force", false, "replace an existing output file")
	f.StringVar(&simDir, "sim-dir", "", "simulation key directory (default $PPML_SIM_DIR or $XDG_CONFIG_HOME/ppml/sim)")
	f.StringVar(&simSigner, "sim-signer", "", "simulated code-signing key, PEM (default: sim-dir/signer.key)")
	f.StringVar(&gramineRoot, "gramine-root", "", "Gramine attestation directory (default /dev/attestation)")
	f.StringVar(&tsmRoot, "tsm-root", "", "configfs-tsm report directory (default /sys/kernel/config/tsm/report)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

func newAttestInspectCmd() *cobra.Command {
	var (
		platform, eventLog string
		asJSON             bool
	)
	c := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Parse evidence and print every field (verifies nothing)",
		Example: `  ppml attest inspect report.bin
  ppml attest inspect --json evidence.json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := attest.Platform(platform)
			switch p {
			case "", attest.PlatformSGX, attest.PlatformTDX, attest.PlatformSNP, attest.PlatformSim:
			default:
				return usageErrorf("--platform %q: want sgx, tdx, snp or sim", platform)
			}
			f, err := evidencefile.Load(args[0], p)
			if err != nil {
				return err
			}
			if eventLog != "" {
				if f.Platform != attest.PlatformTDX || len(f.EventLog) > 0 {
					return usageErrorf("--event-log applies to a TDX quote given without one")
				}
				if f.EventLog, err = os.ReadFile(eventLog); err != nil {
					return fmt.Errorf("--event-log: %w", err)
				}
			}
			in, err := evidencefile.Inspect(f)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), in)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "NOT VERIFIED: fields as parsed")
			return printFields(cmd.OutOrStdout(), in)
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "sgx, tdx, snp or sim, when the content is ambiguous")
	c.Flags().StringVar(&eventLog, "event-log", "", "TDX event log to parse and replay with a raw quote")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}
