package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/verifier"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/workload"
)

func init() { register(newServeCmd) }

func newServeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "serve",
		Short: "Check a model server running in a TEE before sending it anything",
		Long: `A serve job (engine: serve, docs/serve.md) answers KServe v2 REST and gRPC, Cluster
Serving's HTTP frontend and its Redis queue from inside a TEE. Its TLS key is made in the
TEE and its certificate either carries the TEE's evidence binding that key and the job
digest, or was issued by the key service's deployment CA after attestation; 'ppml serve
verify' checks either.`,
		Example: `  ppml serve verify https://127.0.0.1:8443 --sim-key ~/.config/ppml/sim/platform.pub`,
	}
	c.AddCommand(newServeVerifyCmd())
	return c
}

type serveVerifyResult struct {
	leaf        *x509.Certificate
	Valid       bool           `json:"valid"`
	Error       string         `json:"error,omitempty"`
	Address     string         `json:"address"`
	Platform    string         `json:"platform,omitempty"`
	Insecure    bool           `json:"insecure,omitempty"`
	Measurement attest.Hex     `json:"measurement,omitempty"`
	JobDigest   string         `json:"job_digest,omitempty"`
	TCBStatus   string         `json:"tcb_status,omitempty"`
	KeySHA256   attest.Hex     `json:"key_sha256,omitempty"`
	NotAfter    time.Time      `json:"not_after,omitzero"`
	Claims      *attest.Claims `json:"claims,omitempty"`
	// Issuer is "evidence" (attested TLS) or "deployment-ca"; Policy, Role and Serial
	// are the deployment CA's certificate's.
	Issuer string `json:"issuer,omitempty"`
	Policy string `json:"policy,omitempty"`
	Role   string `json:"role,omitempty"`
	Serial string `json:"serial,omitempty"`
}

func newServeVerifyCmd() *cobra.Command {
	var (
		collateral, pccs, pccsCache, amdKDS, amdKDSCache, writeCert, deploymentCA string
		simKeys, measurements, jobDigests                                         []string
		allowDebug, allowInsecure, asJSON                                         bool
		timeout                                                                   time.Duration
	)
	c := &cobra.Command{
		Use:   "verify URL|HOST:PORT",
		Short: "Verify a serving endpoint's attested TLS certificate; exit 0 valid, 1 not, 2 usage",
		Long: `Connect to a serving endpoint (HTTPS or gRPC port) with TLS 1.3, and check that the key
it proved it holds is bound, by attestation evidence verified against the vendors' pinned
roots, to the job digest its certificate names. Prints the platform, the measurement, the
job digest and the SHA-256 of the TLS key.

--measurement and --job-digest (repeatable) say what to accept; without them anything
that verifies is printed and accepted. A simulated TEE is accepted only when its platform
key is given with --sim-key. --write-cert saves the verified certificate (PEM) for clients
that pin it: curl --cacert, Python requests' verify=, grpcurl -cacert. It is valid until
the job renews its key (at two thirds of the certificate's lifetime): verify again then.

SGX and TDX evidence needs Intel collateral (--collateral or --pccs), SEV-SNP evidence
needs the VCEK (--amd-kds) as for 'ppml attest verify'.

A job whose certificate the key service's deployment CA issues (certificate.issuer
deployment-ca) is checked with --deployment-ca FILE (the CA 'ppml cert ca' wrote) instead:
the certificate must chain to that CA and name the host dialled, as for any TLS client;
then the attested identity the CA wrote into it (platform, measurement, job digest,
certificate policy, role) is printed and judged by --measurement, --job-digest,
--allow-debug and --allow-insecure (a simulated TEE). Revocation is not checked here
('ppml cert crl' lists revoked certificates; they live one policy lifetime at most).`,
		Example: `  ppml serve verify https://127.0.0.1:8443 --sim-key ~/.config/ppml/sim/platform.pub
  ppml serve verify 10.0.0.7:8444 --pccs https://api.trustedservices.intel.com --measurement 9a3c... --job-digest sha256:4f1e... --write-cert server.pem
  ppml serve verify https://127.0.0.1:8443 --deployment-ca deployment-ca.pem --allow-insecure`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := serveAddress(args[0])
			if err != nil {
				return err
			}
			if collateral != "" && pccs != "" {
				return usageErrorf("--collateral and --pccs are exclusive")
			}
			var expect attestedtls.Expect
			for _, m := range measurements {
				b, err := hex.DecodeString(m)
				if err != nil || len(b) == 0 {
					return usageErrorf("--measurement %q: want hex digits", m)
				}
				expect.Measurements = append(expect.Measurements, b)
			}
			for _, d := range jobDigests {
				b, err := hex.DecodeString(strings.TrimPrefix(d, "sha256:"))
				if err != nil || len(b) != 32 {
					return usageErrorf("--job-digest %q: want sha256:<64 hex digits>", d)
				}
				expect.JobDigests = append(expect.JobDigests, b)
			}
			expect.AllowDebug = allowDebug
			if deploymentCA != "" {
				if collateral != "" || pccs != "" || len(simKeys) > 0 {
					return usageErrorf("--deployment-ca checks the CA's certificate, not evidence: --collateral, --pccs and --sim-key do not apply")
				}
				expect.AllowInsecure = allowInsecure
				res, err := verifyDeploymentCA(cmd.Context(), addr, deploymentCA, expect, timeout)
				if err != nil {
					return err
				}
				return printServeVerify(cmd, res, asJSON, writeCert)
			}
			if allowInsecure {
				return usageErrorf("--allow-insecure is for --deployment-ca; with attested TLS, --sim-key accepts a simulated TEE")
			}
			cfg := verifier.Config{}
			var simPubs []ed25519.PublicKey
			for _, k := range simKeys {
				pub, err := sim.LoadPublicKey(k)
				if err != nil {
					return fmt.Errorf("--sim-key: %w", err)
				}
				simPubs = append(simPubs, pub)
			}
			cfg.SimKeys = simPubs
			// Trusting a simulation key is the explicit choice to accept a simulated TEE.
			expect.AllowInsecure = len(simPubs) > 0
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
			if cfg.SNPCerts, err = amdCertSource(amdKDS, amdKDSCache); err != nil {
				return err
			}
			var peer atomic.Pointer[attestedtls.Peer]
			tc := attestedtls.ClientConfig(verifier.New(cfg), expect.Accept, &peer)
			tc.NextProtos = []string{"h2", "http/1.1"}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res := &serveVerifyResult{Address: addr}
			conn, err := (&tls.Dialer{Config: tc}).DialContext(ctx, "tcp", addr)
			if err != nil {
				res.Error = err.Error()
			} else {
				conn.Close()
				p := peer.Load()
				res.Valid, res.Platform, res.Insecure = true, string(p.Claims.Platform), p.Claims.Insecure
				res.Measurement, res.TCBStatus, res.Claims = p.Claims.Measurement, p.Claims.TCBStatus, p.Claims
				res.JobDigest = "sha256:" + hex.EncodeToString(p.JobDigest)
				res.KeySHA256, res.NotAfter = p.SPKISHA256, p.Leaf.NotAfter.UTC()
				res.Issuer, res.leaf = "evidence", p.Leaf
			}
			return printServeVerify(cmd, res, asJSON, writeCert)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&measurements, "measurement", nil, "accept this measurement (hex: MRENCLAVE, MRTD, SNP MEASUREMENT, simulated SHA-384); repeatable")
	f.StringArrayVar(&jobDigests, "job-digest", nil, "accept this job (sha256:<hex>, as 'ppml job digest' prints it); repeatable")
	f.BoolVar(&allowDebug, "allow-debug", false, "accept a TEE in debug mode (its memory is readable)")
	f.StringArrayVar(&simKeys, "sim-key", nil, "trust this simulation platform public key (PEM) and accept a simulated TEE; repeatable")
	f.StringVar(&collateral, "collateral", "", "offline Intel collateral bundle (JSON) for SGX/TDX")
	f.StringVar(&pccs, "pccs", "", "PCCS or Intel PCS base URL for SGX/TDX collateral")
	f.StringVar(&pccsCache, "pccs-cache", "", "collateral cache directory (default: user cache dir/ppml/pccs)")
	addAMDKDSFlags(c, &amdKDS, &amdKDSCache)
	f.StringVar(&deploymentCA, "deployment-ca", "", "the server's certificate is the key service's: verify it with this CA (PEM, from 'ppml cert ca') instead of evidence")
	f.BoolVar(&allowInsecure, "allow-insecure", false, "with --deployment-ca: accept a certificate naming a simulated TEE")
	f.StringVar(&writeCert, "write-cert", "", "write the verified certificate (PEM) to this file, for clients that pin it")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "connection and handshake timeout")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// printServeVerify writes the verified certificate (--write-cert) and the outcome; an
// endpoint that does not verify exits 1.
func printServeVerify(cmd *cobra.Command, res *serveVerifyResult, asJSON bool, writeCert string) error {
	if res.Valid && writeCert != "" {
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res.leaf.Raw})
		if err := atomicfile.WriteFile(writeCert, pemBytes, atomicfile.Options{Perm: 0o644, Overwrite: true}); err != nil {
			return fmt.Errorf("--write-cert: %w", err)
		}
	}
	w := cmd.OutOrStdout()
	if asJSON {
		if err := writeJSON(w, res); err != nil {
			return err
		}
	} else if res.Valid {
		if res.Issuer == "deployment-ca" {
			fmt.Fprintf(w, "valid: %s presents a certificate of the deployment CA issued to an attested ppml job\n", res.Address)
		} else {
			fmt.Fprintf(w, "valid: %s is an attested ppml serving endpoint\n", res.Address)
		}
		if res.Insecure {
			fmt.Fprintln(w, "WARNING: simulated TEE - insecure, for development only")
		}
		fmt.Fprintf(w, "platform: %s\nmeasurement: %s\njob digest: %s\n", res.Platform, res.Measurement, res.JobDigest)
		if res.TCBStatus != "" {
			fmt.Fprintf(w, "tcb status: %s\n", res.TCBStatus)
		}
		if res.Policy != "" {
			fmt.Fprintf(w, "certificate policy: %s\nrole: %s\nserial: %s\n", res.Policy, res.Role, res.Serial)
		}
		fmt.Fprintf(w, "tls key sha256: %s\ncertificate valid until: %s\n", res.KeySHA256, res.NotAfter.Format(time.RFC3339))
		if writeCert != "" {
			fmt.Fprintf(w, "certificate written to %s\n", writeCert)
		}
	} else {
		fmt.Fprintf(w, "invalid: %s\n", res.Error)
	}
	if !res.Valid {
		return &silentExit{Code: ExitFailure}
	}
	return nil
}

// verifyDeploymentCA dials addr trusting only the deployment CA in caFile, as any TLS
// client would (chain, validity, host name), then judges the attested identity the CA
// wrote into the certificate.
func verifyDeploymentCA(ctx context.Context, addr, caFile string, expect attestedtls.Expect, timeout time.Duration) (*serveVerifyResult, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--deployment-ca: %w", err)
	}
	ca, err := client.ParseCAPEM(b)
	if err != nil {
		return nil, fmt.Errorf("--deployment-ca %s: %w", caFile, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	host, _, _ := net.SplitHostPort(addr)
	tc := &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := &serveVerifyResult{Address: addr, Issuer: "deployment-ca"}
	conn, err := (&tls.Dialer{Config: tc}).DialContext(ctx, "tcp", addr)
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	conn.Close()
	id, err := workload.FromCertificate(leaf)
	if err != nil {
		res.Error = fmt.Sprintf("the certificate chains to the deployment CA but names no attested workload: %v", err)
		return res, nil
	}
	cl := &attest.Claims{Platform: id.Platform, Insecure: id.Insecure, Debug: id.Debug, Measurement: id.Measurement, Signer: id.Signer, TCBStatus: id.TCBStatus}
	pin := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	if err := expect.Accept(&attestedtls.Peer{Claims: cl, JobDigest: id.JobDigest, SPKISHA256: pin[:], Leaf: leaf}); err != nil {
		res.Error = err.Error()
		return res, nil
	}
	res.Valid, res.Platform, res.Insecure, res.Measurement, res.TCBStatus = true, string(id.Platform), id.Insecure, id.Measurement, id.TCBStatus
	res.JobDigest = "sha256:" + hex.EncodeToString(id.JobDigest)
	res.Policy, res.Role, res.Serial = id.Policy, id.Role, hex.EncodeToString(leaf.SerialNumber.Bytes())
	res.KeySHA256, res.NotAfter, res.leaf = pin[:], leaf.NotAfter.UTC(), leaf
	return res, nil
}

// serveAddress turns https://host:port/..., grpcs://host:port or host:port into host:port.
func serveAddress(s string) (string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", usageErrorf("%q: want https://HOST:PORT or HOST:PORT", s)
		}
		if u.Scheme == "http" {
			return "", usageErrorf("%q: serving endpoints speak TLS only (https://)", s)
		}
		s = u.Host
		if u.Port() == "" {
			s = net.JoinHostPort(u.Hostname(), "443")
		}
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", usageErrorf("%q: want https://HOST:PORT or HOST:PORT", s)
	}
	return s, nil
}
