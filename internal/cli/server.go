package cli

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

func init() {
	register(newServerCmd)
	register(newTenantCmd)
	register(newTokenCmd)
	register(newPolicyCmd)
	register(newAuditCmd)
	keySubcommands = append(keySubcommands, newKMSKeyCreateCmd, newKMSKeyListCmd, newKMSKeyRotateCmd)
}

func newServerCmd() *cobra.Command {
	var cfg kms.Config
	var listen, tlsCert, tlsKey, collateral, pccs, pccsCache, amdKDS, amdKDSCache string
	var hosts, simKeys, shareRecipients []string
	var adminRecipient string
	c := &cobra.Command{
		Use:   "server --data-dir DIR --listen ADDR",
		Short: "Run the key service (attestation-gated key release, audit log)",
		Long: `Run the key service over HTTPS (TLS 1.3 only). At the first start in an empty --data-dir
it creates the root key (sealed as --seal says), a self-signed TLS certificate (unless
--tls-cert/--tls-key) and prints, once, the admin bootstrap token and for --seal shamir the
unseal shares (with --init-share-recipient / --init-admin-recipient: each
encrypted to its holder's public key, for output that ends up in logs). It prints the certificate's SHA-256 fingerprint for clients to pin
(--server-fingerprint). Simulated TEE evidence is refused unless --sim-key names a trusted
simulation platform key (and the key's policy lists platform sim).`,
		Example: `  ppml server --data-dir /var/lib/ppml --listen 127.0.0.1:8443
  ppml server --data-dir kms --listen :8443 --seal shamir --shares 5 --threshold 3
  ppml server --data-dir kms --listen :8443 --seal shamir --shares 2 --threshold 2 \
      --init-share-recipient alice.pub --init-share-recipient bob.pub --init-admin-recipient admin.pub
  ppml server --data-dir kms --listen 127.0.0.1:8443 --sim-key ~/.config/ppml/sim/platform.pub
  ppml server --data-dir kms --listen :8443 --pccs https://api.trustedservices.intel.com --amd-kds https://kdsintf.amd.com`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" || listen == "" {
				return usageErrorf("give --data-dir DIR and --listen ADDR")
			}
			for _, p := range simKeys {
				k, err := sim.LoadPublicKey(p)
				if err != nil {
					return fmt.Errorf("--sim-key: %w", err)
				}
				cfg.SimKeys = append(cfg.SimKeys, ed25519.PublicKey(k))
			}
			switch {
			case collateral != "" && pccs != "":
				return usageErrorf("--collateral and --pccs are exclusive")
			case collateral != "":
				col, err := dcap.LoadBundle(collateral)
				if err != nil {
					return fmt.Errorf("--collateral: %w", err)
				}
				cfg.Collateral = dcap.StaticSource(col)
			case pccs != "":
				cfg.Collateral = &dcap.PCCS{BaseURL: strings.TrimRight(pccs, "/"), CacheDir: pccsCacheDir(pccsCache)}
			}
			for i, spec := range shareRecipients {
				r, err := initRecipient(spec)
				if err != nil {
					return usageErrorf("--init-share-recipient %d: %v", i+1, err)
				}
				cfg.ShareRecipients = append(cfg.ShareRecipients, r)
			}
			if adminRecipient != "" {
				r, err := initRecipient(adminRecipient)
				if err != nil {
					return usageErrorf("--init-admin-recipient: %v", err)
				}
				cfg.AdminRecipient = r
			}
			certs, err := amdCertSource(amdKDS, amdKDSCache)
			if err != nil {
				return err
			}
			cfg.SNPCerts = certs
			cfg.Out = cmd.OutOrStdout()
			srv, err := kms.New(cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			cert, fp, err := kms.LoadOrCreateCert(cfg.DataDir, tlsCert, tlsKey, hosts)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			st := "unsealed"
			if srv.Sealed() {
				st = "SEALED: run `ppml server unseal` with the shares"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ppml key service listening on https://%s (%s)\nTLS certificate SHA-256 fingerprint: %s\n", ln.Addr(), st, fp)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srv.Serve(ctx, ln, cert)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory (database, seal state, TLS certificate)")
	f.StringVar(&listen, "listen", "", "address to listen on, e.g. 127.0.0.1:8443")
	f.StringVar(&cfg.Seal, "seal", "file", "root key protection: file, shamir or tee")
	f.StringVar(&cfg.SealKeyFile, "seal-key-file", "", "file seal: root key file (default DATA_DIR/root.key)")
	f.IntVar(&cfg.Shares, "shares", 5, "shamir seal: number of shares N at initialisation")
	f.IntVar(&cfg.Threshold, "threshold", 3, "shamir seal: shares K needed to unseal")
	f.StringVar(&cfg.TEEKeyName, "seal-tee-key", "", "tee seal: sealing key name (_sgx_mrenclave or _sgx_mrsigner)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate PEM (default: self-signed in the data directory)")
	f.StringVar(&tlsKey, "tls-key", "", "TLS private key PEM")
	f.StringSliceVar(&hosts, "tls-host", nil, "extra host names or IPs for the self-signed certificate")
	f.StringSliceVar(&simKeys, "sim-key", nil, "trust this simulation platform public key (platform.pub); repeatable")
	f.StringVar(&collateral, "collateral", "", "offline Intel collateral bundle (JSON) for SGX/TDX evidence")
	f.StringVar(&pccs, "pccs", "", "PCCS or Intel PCS base URL for SGX/TDX collateral")
	f.StringVar(&pccsCache, "pccs-cache", "", "collateral cache directory (default: user cache dir/ppml/pccs)")
	addAMDKDSFlags(c, &amdKDS, &amdKDSCache)
	f.StringArrayVar(&shareRecipients, "init-share-recipient", nil, "shamir seal: at initialisation, encrypt share N to the Nth of these public keys (ppml1…, ppmlpq1… or a .pub file); repeat once per share")
	f.StringVar(&adminRecipient, "init-admin-recipient", "", "encrypt the admin token shown at initialisation (or by --new-admin-token) to this public key or .pub file")
	f.BoolVar(&cfg.NewAdminToken, "new-admin-token", false, "issue and print a new admin token at start (recovery when the bootstrap token is lost)")
	f.Float64Var(&cfg.RateLimit, "rate-limit", 1000, "requests per second per API token (negative: unlimited)")
	f.DurationVar(&cfg.APITokenTTL, "token-ttl", 720*time.Hour, "lifetime of API tokens issued without --ttl")
	f.DurationVar(&cfg.APITokenMaxTTL, "token-max-ttl", 8760*time.Hour, "longest lifetime an API token may be given or renewed to")
	f.Float64Var(&cfg.AddrRateLimit, "addr-rate-limit", 100, "requests per second per source address without an accepted API token (negative: unlimited)")
	positive(c, "shares", "threshold", "token-ttl", "token-max-ttl")
	allowNegative(c, "rate-limit", "addr-rate-limit")
	c.AddCommand(newServerUnsealCmd(), newServerBackupCmd(), newServerStatusCmd(), newServerRestoreCmd())
	return c
}

// initRecipient reads a public key given as text or as a public key file.
func initRecipient(spec string) (*envelope.Recipient, error) {
	if envelope.LooksLikeRecipient(spec) {
		return envelope.ParseRecipient(spec)
	}
	return keyfile.LoadRecipient(spec)
}

// kmsRecipientKey is the encrypt --recipient kms://… hook: it fetches the
// public half of the key (any API token in PPML_TOKEN), so the data
// provider needs no owner token and cannot decrypt what it writes.
func kmsRecipientKey(cmd *cobra.Command, spec string, k *kmsFlags) (envelope.KeyWrapper, error) {
	ref, err := envelope.ParseKeyRef(spec)
	if err != nil {
		return nil, usageErrorf("--recipient: %v", err)
	}
	// Any role's token will do: only the public key is read.
	key, err := command.KMSKey(cmd, ref, k, "--recipient "+spec)
	if err != nil {
		return nil, err
	}
	return client.NewRecipientKey(cmd.Context(), key.Client, ref)
}

func printResult(cmd *cobra.Command, asJSON bool, v any, text string) error {
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	fmt.Fprintln(cmd.OutOrStdout(), text)
	return nil
}

func newServerUnsealCmd() *cobra.Command {
	var kf kmsFlags
	var shares []string
	c := &cobra.Command{
		Use:   "unseal",
		Short: "Give a Shamir unseal share to a sealed key service",
		Long: `Give an unseal share to a sealed key service. On a terminal it asks for the share and
does not echo it; otherwise it reads shares one per line from standard input. --share exists
for scripts but puts the share in the process list and shell history: avoid it.`,
		Example: `  ppml server unseal --server https://kms:8443 --server-fingerprint 3fa4…
  ppml server unseal --server https://kms:8443 < my-share.txt`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(false)
			if err != nil {
				return err
			}
			if len(shares) == 0 {
				if shares, err = readShares(cmd, 0); err != nil {
					return err
				}
			}
			if len(shares) == 0 {
				return usageErrorf("give at least one share (--share or standard input)")
			}
			var st *api.Status
			for _, sh := range shares {
				if st, err = c.Unseal(cmd.Context(), sh); err != nil {
					return err
				}
			}
			msg := "unsealed"
			if st.Sealed {
				msg = fmt.Sprintf("still sealed: %d of %d shares given; %d more needed", st.Shares, st.Threshold, st.Threshold-st.Shares)
			}
			return printResult(cmd, kf.JSON, st, msg)
		},
	}
	kf.Add(c)
	c.Flags().StringArrayVar(&shares, "share", nil, "an unseal share (visible in ps: prefer the prompt or standard input); repeatable")
	return c
}

func newTenantCmd() *cobra.Command {
	c := &cobra.Command{Use: "tenant", Short: "Manage key service tenants (admin)", Example: "  ppml tenant create alice --role owner"}
	var kf kmsFlags
	var role string
	create := &cobra.Command{
		Use: "create NAME --role owner|runner|admin", Short: "Create a tenant (a party)",
		Example: "  ppml tenant create alice --role owner\n  ppml tenant create hospital-runner --role runner --json",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			t, err := c.CreateTenant(cmd.Context(), args[0], role)
			if err != nil {
				return err
			}
			return printResult(cmd, kf.JSON, t, fmt.Sprintf("created tenant %s (%s)", t.Name, t.Role))
		},
	}
	kf.Add(create)
	create.Flags().StringVar(&role, "role", "owner", "owner, runner or admin")
	var kf2 kmsFlags
	list := &cobra.Command{
		Use: "list", Short: "List tenants (admin)", Example: "  ppml tenant list --json", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf2.Client(true)
			if err != nil {
				return err
			}
			ts, err := c.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, t := range ts {
				fmt.Fprintf(&b, "%-24s %-6s %s\n", t.Name, t.Role, t.Created.Format(time.RFC3339))
			}
			return printResult(cmd, kf2.JSON, ts, strings.TrimRight(b.String(), "\n"))
		},
	}
	kf2.Add(list)
	c.AddCommand(create, list)
	return c
}

func newTokenCmd() *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Issue, renew and revoke key service API tokens", Example: "  ppml token create --tenant alice"}
	var kf, kf2, kf3 kmsFlags
	var tenant, desc, ttl string
	create := &cobra.Command{
		Use: "create --tenant NAME", Short: "Issue an API token (shown once); it expires after --ttl unless renewed",
		Example: "  ppml token create --tenant alice --description laptop\n  ppml token create --tenant hospital-tee --ttl 24h",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			t, err := c.IssueToken(cmd.Context(), api.CreateTokenRequest{Tenant: tenant, Description: desc, TTL: ttl})
			if err != nil {
				return err
			}
			return printResult(cmd, kf.JSON, t, fmt.Sprintf("token %s for %s (%s), expires %s (renew with ppml token renew), shown once:\n%s", t.ID, t.Tenant, t.Role, tokenExpiry(t), t.Token))
		},
	}
	kf.Add(create)
	create.Flags().StringVar(&tenant, "tenant", "", "tenant the token acts for")
	create.Flags().StringVar(&desc, "description", "", "what the token is for")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 24h or 2160h (default: the server's, 720h unless set)")
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an API token by id", Example: "  ppml token revoke 0123456789abcdef", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kf2.Client(true)
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printResult(cmd, kf2.JSON, t, "revoked token "+t.ID)
		},
	}
	kf2.Add(revoke)
	list := &cobra.Command{
		Use: "list", Short: "List API tokens (never their secrets)", Example: "  ppml token list --json", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf3.Client(true)
			if err != nil {
				return err
			}
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, t := range ts {
				fmt.Fprintf(&b, "%s  %-16s %-6s revoked=%v expires=%s  %s\n", t.ID, t.Tenant, t.Role, t.Revoked, tokenExpiry(&t), command.TermSafe(t.Description, ""))
			}
			return printResult(cmd, kf3.JSON, ts, strings.TrimRight(b.String(), "\n"))
		},
	}
	kf3.Add(list)
	c.AddCommand(create, revoke, list, newTokenRenewCmd())
	return c
}

func keyText(k *api.Key) string {
	var states []string
	for _, v := range k.Versions {
		if v.State != "" && v.State != api.KeyEnabled {
			states = append(states, fmt.Sprintf("v%d %s", v.Version, v.State))
		}
	}
	kind := ""
	if k.Recipient != "" {
		kind = " recipient=" + k.Recipient
	}
	s := fmt.Sprintf("%s  tenant=%s%s version=%d versions=%d policy=%v", k.Name, k.Tenant, kind, k.Version, len(k.Versions), k.Policy)
	if len(states) > 0 {
		s += " (" + strings.Join(states, ", ") + ")"
	}
	return s
}

func newKMSKeyCreateCmd() *cobra.Command {
	var kf kmsFlags
	var recipient bool
	var kem string
	c := &cobra.Command{
		Use: "create NAME [--recipient [--kem KEM]]", Short: "Create a primary key at the key service (owner)",
		Long: `Create a key at the key service, owned by your tenant. Its material never leaves the service:
files encrypted under it (--key kms://…) get their data keys from the service, and are
decrypted by you or released to attested jobs as its policy allows.

With --recipient the key is a public/private key pair (--kem mlkem768x25519, the default, or
x25519), as from ppml key generate --recipient, but the service keeps the private half. Anyone
with an API token of the service (a data provider's, of any role) can fetch the public half and
encrypt files to the key (ppml encrypt --recipient kms://…) without being able to decrypt them;
you decrypt them, and jobs get them released, exactly as for any other key-service key.`,
		Example: "  ppml key create alice/sales --server https://kms:8443\n  ppml encrypt --key kms://kms:8443/alice/sales sales.csv\n" +
			"  ppml key create alice/intake --recipient --server https://kms:8443\n  PPML_TOKEN=$PROVIDER_TOKEN ppml encrypt --recipient kms://kms:8443/alice/intake claims.csv",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !recipient && cmd.Flags().Changed("kem") {
				return usageErrorf("--kem goes with --recipient")
			}
			if recipient && kem != envelope.KEMMLKEM768X25519 && kem != envelope.KEMX25519 {
				return usageErrorf("--kem %q: want mlkem768x25519 or x25519", kem)
			}
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			var k *api.Key
			if recipient {
				k, err = c.CreateRecipientKey(cmd.Context(), args[0], kem)
			} else {
				k, err = c.CreateKey(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			return printResult(cmd, kf.JSON, k, "created "+keyText(k))
		},
	}
	kf.Add(c)
	c.Flags().BoolVar(&recipient, "recipient", false, "make a public/private key pair whose public half anyone with a token can encrypt to")
	c.Flags().StringVar(&kem, "kem", envelope.KEMMLKEM768X25519, "with --recipient: key type, mlkem768x25519 or x25519")
	return c
}

func newKMSKeyRotateCmd() *cobra.Command {
	var kf kmsFlags
	c := &cobra.Command{
		Use: "rotate NAME", Short: "Add a new version to a key-service key; old versions still unwrap (owner)",
		Example: "  ppml key rotate alice/sales", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			k, err := c.RotateKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printResult(cmd, kf.JSON, k, "rotated "+keyText(k))
		},
	}
	kf.Add(c)
	return c
}

func newKMSKeyListCmd() *cobra.Command {
	var kf kmsFlags
	c := &cobra.Command{
		Use: "list", Short: "List your key-service keys (all keys for an admin)", Example: "  ppml key list --json", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			ks, err := c.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			var b strings.Builder
			for i := range ks {
				b.WriteString(keyText(&ks[i]) + "\n")
			}
			return printResult(cmd, kf.JSON, ks, strings.TrimRight(b.String(), "\n"))
		},
	}
	kf.Add(c)
	return c
}

func newPolicyCmd() *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Set and read key release policies (owner)", Example: "  ppml policy set alice/sales policy.yaml"}
	var kf, kf2 kmsFlags
	set := &cobra.Command{
		Use: "set KEY FILE", Short: "Set a key's release policy from a YAML or JSON file ('-': stdin); see docs/policy.md",
		Example: "  ppml policy set alice/sales policy.yaml\n  ppml policy set alice/sales - < policy.json", Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			var doc []byte
			if args[1] == "-" {
				doc, err = readAllLimited(cmd.InOrStdin())
			} else {
				doc, err = os.ReadFile(args[1])
			}
			if err != nil {
				return err
			}
			p, err := c.SetPolicy(cmd.Context(), args[0], doc)
			if err != nil {
				return err
			}
			y, _ := p.YAML()
			return printResult(cmd, kf.JSON, p, "policy of "+args[0]+" set:\n"+strings.TrimRight(string(y), "\n"))
		},
	}
	kf.Add(set)
	get := &cobra.Command{
		Use: "get KEY", Short: "Print a key's release policy (YAML; --json for JSON)", Example: "  ppml policy get alice/sales", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kf2.Client(true)
			if err != nil {
				return err
			}
			p, err := c.GetPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			y, _ := p.YAML()
			return printResult(cmd, kf2.JSON, p, strings.TrimRight(string(y), "\n"))
		},
	}
	kf2.Add(get)
	c.AddCommand(set, get)
	return c
}

func newServerBackupCmd() *cobra.Command {
	var kf kmsFlags
	var out string
	var force bool
	c := &cobra.Command{
		Use:   "backup -o FILE",
		Short: "Take an online backup of the key service database (admin)",
		Long: `Stream a consistent copy of the running server's database to FILE (written to a temporary
file and renamed when complete). The copy is as encrypted as the database: restoring it needs
seal.json and the root key's protection (shares, key file or the same enclave).`,
		Example: "  ppml server backup --server https://kms:8443 -o /backup/ppml-$(date +%F).db",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the backup file with -o FILE")
			}
			if out == "-" {
				return usageErrorf("a backup is written to a file: give -o FILE")
			}
			if err := checkOutput(out, force); err != nil {
				return err
			}
			c, err := kf.Client(true)
			if err != nil {
				return err
			}
			f, err := atomicfile.Create(out, atomicfile.Options{Perm: 0o600, Overwrite: true})
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			defer f.Abort()
			n, err := c.Backup(cmd.Context(), f)
			if err == nil {
				err = f.Commit()
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			return printResult(cmd, kf.JSON, map[string]any{"file": out, "bytes": n}, fmt.Sprintf("backed up %d bytes to %s", n, out))
		},
	}
	kf.Add(c)
	c.Flags().StringVarP(&out, "output", "o", "", "backup file to write")
	c.Flags().BoolVar(&force, "force", false, "replace an existing backup file")
	return c
}
