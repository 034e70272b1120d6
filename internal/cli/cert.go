package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/policy"
)

func init() { register(newCertCmd) }

// newCertCmd is the workload certificate group (docs/guide/cluster.md):
// the deployment CA owners pin, certificate policies, issued certificates.
func newCertCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cert",
		Short: "Attested workload certificates: the deployment CA, certificate policies, issued certificates",
		Example: `  ppml cert ca -o deployment-ca.pem
  ppml cert policy set alice/xgb-train cert-policy.yaml
  ppml cert list --policy alice/xgb-train`,
	}
	c.AddCommand(newCertCACmd(), newCertCRLCmd(), newCertPolicyCmd(), newCertListCmd())
	return c
}

func newCertCACmd() *cobra.Command {
	var kf kmsFlags
	var out string
	var force bool
	c := &cobra.Command{
		Use:   "ca [-o FILE]",
		Short: "Fetch the deployment CA certificate (PEM) that signs workload certificates, to pin it",
		Long: `Print (or write to FILE) the key service's deployment CA certificate and its SHA-256
fingerprint. Compare the fingerprint with the ca_create entry of the audit log, then give the
file to peers and clients as the only CA they trust for ppml workers. No token is needed.`,
		Example: "  ppml cert ca --server https://kms:8443 -o deployment-ca.pem",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(false)
			if err != nil {
				return err
			}
			ca, err := c.CA(cmd.Context())
			if err != nil {
				return err
			}
			p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
			fp := fmt.Sprintf("sha256:%x", sha256.Sum256(ca.Raw))
			info := map[string]any{"subject": ca.Subject.CommonName, "sha256": fp, "not_after": ca.NotAfter.UTC()}
			if out == "" {
				if kf.JSON {
					info["pem"] = string(p)
					return writeJSON(cmd.OutOrStdout(), info)
				}
				_, err := cmd.OutOrStdout().Write(p)
				fmt.Fprintf(cmd.ErrOrStderr(), "deployment CA %q, certificate %s\n", ca.Subject.CommonName, fp)
				return err
			}
			if err := atomicfile.WriteFile(out, p, atomicfile.Options{Perm: 0o644, Overwrite: force}); err != nil {
				return fmt.Errorf("deployment CA: %w", err)
			}
			info["file"] = out
			return printResult(cmd, kf.JSON, info, fmt.Sprintf("deployment CA %q (certificate %s) written to %s", ca.Subject.CommonName, fp, out))
		},
	}
	kf.Add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "write the PEM certificate to FILE")
	c.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return c
}

func newCertCRLCmd() *cobra.Command {
	var kf kmsFlags
	var out, caFile string
	var force bool
	c := &cobra.Command{
		Use:     "crl --deployment-ca FILE [-o FILE]",
		Short:   "Fetch the deployment CA's revocation list, verify it against the pinned CA and list what it revokes",
		Example: "  ppml cert crl --server https://kms:8443 --deployment-ca deployment-ca.pem -o ppml.crl",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caFile == "" {
				return usageErrorf("give the pinned deployment CA with --deployment-ca FILE (from ppml cert ca)")
			}
			b, err := os.ReadFile(caFile)
			if err != nil {
				return err
			}
			ca, err := parseCAPEMFile(caFile, b)
			if err != nil {
				return err
			}
			c, err := kf.Client(false)
			if err != nil {
				return err
			}
			l, err := c.CRL(cmd.Context(), ca)
			if err != nil {
				return err
			}
			if out != "" {
				if err := atomicfile.WriteFile(out, l.List.Raw, atomicfile.Options{Perm: 0o644, Overwrite: force}); err != nil {
					return fmt.Errorf("revocation list: %w", err)
				}
			}
			type rev struct {
				Serial  string    `json:"serial"`
				Revoked time.Time `json:"revoked"`
				Reason  int       `json:"reason"`
			}
			res := struct {
				ThisUpdate time.Time `json:"this_update"`
				NextUpdate time.Time `json:"next_update"`
				Revoked    []rev     `json:"revoked"`
			}{l.List.ThisUpdate.UTC(), l.List.NextUpdate.UTC(), []rev{}}
			var sb strings.Builder
			fmt.Fprintf(&sb, "revocation list of %q, valid until %s, %d revoked", ca.Subject.CommonName, l.List.NextUpdate.UTC().Format(time.RFC3339), len(l.List.RevokedCertificateEntries))
			for _, e := range l.List.RevokedCertificateEntries {
				r := rev{fmt.Sprintf("%x", e.SerialNumber), e.RevocationTime.UTC(), e.ReasonCode}
				res.Revoked = append(res.Revoked, r)
				fmt.Fprintf(&sb, "\n  %s revoked %s", r.Serial, r.Revoked.Format(time.RFC3339))
			}
			return printResult(cmd, kf.JSON, res, sb.String())
		},
	}
	kf.Add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "also write the DER list to FILE")
	c.Flags().BoolVar(&force, "force", false, "replace an existing file")
	c.Flags().StringVar(&caFile, "deployment-ca", "", "the pinned deployment CA certificate (PEM, from ppml cert ca)")
	return c
}

func newCertPolicyCmd() *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Set, read, list and delete certificate policies (owner)",
		Example: "  ppml cert policy set alice/xgb-train cert-policy.yaml"}
	var kfs, kfg, kfl, kfd kmsFlags
	set := &cobra.Command{
		Use:     "set TENANT/NAME FILE",
		Short:   "Create or replace a certificate policy from a YAML or JSON file ('-': stdin); a change revokes certificates of earlier versions",
		Example: "  ppml cert policy set alice/xgb-train cert-policy.yaml\n  ppml cert policy set alice/xgb-train - < cert-policy.json",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc []byte
			var err error
			if args[1] == "-" {
				doc, err = readAllLimited(cmd.InOrStdin())
			} else {
				doc, err = os.ReadFile(args[1])
			}
			if err != nil {
				return err
			}
			// Check locally first: the error then names the file.
			if _, err := policy.ParseCert(doc); err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			c, err := kfs.Client(true)
			if err != nil {
				return err
			}
			p, err := c.SetCertPolicy(cmd.Context(), args[0], doc)
			if err != nil {
				return err
			}
			return printResult(cmd, kfs.JSON, p, fmt.Sprintf("certificate policy %s version %d set; %d certificates of earlier versions revoked", p.Name, p.Version, p.Revoked))
		},
	}
	kfs.Add(set)
	get := &cobra.Command{
		Use: "get TENANT/NAME", Short: "Print a certificate policy (YAML; --json for JSON)", Example: "  ppml cert policy get alice/xgb-train", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kfg.Client(true)
			if err != nil {
				return err
			}
			p, err := c.GetCertPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			text := fmt.Sprintf("# certificate policy %s version %d, updated %s", p.Name, p.Version, p.Updated.UTC().Format(time.RFC3339))
			if cp, err := policy.ParseCert(p.Policy); err == nil {
				if y, err := cp.YAML(); err == nil {
					text += "\n" + strings.TrimRight(string(y), "\n")
				}
			}
			return printResult(cmd, kfg.JSON, p, text)
		},
	}
	kfg.Add(get)
	list := &cobra.Command{
		Use: "list", Short: "List your certificate policies (every tenant's for an admin)", Example: "  ppml cert policy list", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kfl.Client(true)
			if err != nil {
				return err
			}
			ps, err := c.ListCertPolicies(cmd.Context())
			if err != nil {
				return err
			}
			var sb strings.Builder
			for _, p := range ps {
				fmt.Fprintf(&sb, "%s version %d, updated %s\n", p.Name, p.Version, p.Updated.UTC().Format(time.RFC3339))
			}
			return printResult(cmd, kfl.JSON, ps, strings.TrimRight(sb.String(), "\n"))
		},
	}
	kfl.Add(list)
	del := &cobra.Command{
		Use: "delete TENANT/NAME", Short: "Delete a certificate policy: nothing more is issued under it and its certificates are revoked",
		Example: "  ppml cert policy delete alice/xgb-train", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kfd.Client(true)
			if err != nil {
				return err
			}
			p, err := c.DeleteCertPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printResult(cmd, kfd.JSON, p, fmt.Sprintf("certificate policy %s deleted; %d certificates revoked", p.Name, p.Revoked))
		},
	}
	kfd.Add(del)
	c.AddCommand(set, get, list, del)
	return c
}

func newCertListCmd() *cobra.Command {
	var kf kmsFlags
	var pol string
	c := &cobra.Command{
		Use: "list [--policy TENANT/NAME]", Short: "List the certificates issued under your certificate policies",
		Example: "  ppml cert list --policy alice/xgb-train --json", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			cs, err := c.ListCerts(cmd.Context(), pol)
			if err != nil {
				return err
			}
			var sb strings.Builder
			for _, x := range cs {
				state := "valid until " + x.NotAfter.UTC().Format(time.RFC3339)
				if x.Revoked != nil {
					state = "REVOKED " + x.Revoked.UTC().Format(time.RFC3339)
				}
				sim := ""
				if x.Insecure {
					sim = " (simulated TEE)"
				}
				fmt.Fprintf(&sb, "%s %s v%d role %s job sha256:%x %s%s, %s\n", x.Serial, x.Policy, x.PolicyVersion, x.Role, []byte(x.Job), x.Platform, sim, state)
			}
			return printResult(cmd, kf.JSON, cs, strings.TrimRight(sb.String(), "\n"))
		},
	}
	kf.Add(c)
	c.Flags().StringVar(&pol, "policy", "", "only certificates of this certificate policy")
	return c
}

// parseCAPEMFile reads a pinned deployment CA, naming the file in errors.
func parseCAPEMFile(name string, b []byte) (*x509.Certificate, error) {
	ca, err := client.ParseCAPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ca, nil
}
