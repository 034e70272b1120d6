// Package kms is the key service behind `ppml server`: it boots the service
// (unseals the root key, opens the encrypted store, opens the core) and
// serves it over HTTPS, TLS 1.3 only.
//
// The service is split as MarbleRun's coordinator is: package kms/core holds
// every operation (tenants, tokens, keys, policies, challenge, release, data
// keys, audit) and knows no HTTP; package store (with store/boltstore) keeps
// the state and encrypts it under the root key; package seal protects the
// root key; this package is the thin HTTP layer that decodes a request,
// authenticates its token, calls the core and encodes the result or the
// core's error. kms/auditlog stores the audit log, kms/api holds the wire
// types, kms/client is the Go client (linking none of the server), and
// kms/local starts a real service on loopback (ppml demo, ppml bench
// release) and kms/kmstest wraps it for tests.
//
// The protocol is in docs/api/release-protocol.md and the routes in
// docs/api/openapi.yaml.
package kms

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/snp"
	"github.com/ppml/ppml/attest/verifier"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/core"
	"github.com/ppml/ppml/seal"
	"github.com/ppml/ppml/seal/shamir"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// DBFile is the database's name in the data directory.
const DBFile = "ppml.db"

// Config configures a Server.
type Config struct {
	DataDir string
	// Seal is "file" (default), "shamir" or "tee".
	Seal string
	// SealKeyFile is the file seal's key file (default DataDir/root.key).
	SealKeyFile string
	// Shares and Threshold split a new Shamir root (default 5 and 3).
	Shares, Threshold int
	// TEEKeyDir and TEEKeyName select the TEE sealing key (defaults in package seal).
	TEEKeyDir, TEEKeyName string

	// Verifier verifies evidence; nil builds the dispatcher of
	// attest/verifier from SimKeys, Collateral and SNPCerts.
	Verifier attest.Verifier
	// SimKeys are the simulation platform keys to trust. Without one,
	// simulated evidence is refused whatever a policy says.
	SimKeys []ed25519.PublicKey
	// Collateral for SGX and TDX evidence (nil refuses them).
	Collateral dcap.Source
	// SNPCerts supplies the VCEK for SEV-SNP evidence that carries none
	// (AMD KDS or an offline bundle); nil refuses such evidence.
	SNPCerts snp.CertSource

	// Out receives what is shown once at first start: the admin bootstrap
	// token and Shamir shares. Default os.Stdout.
	Out io.Writer
	// BootstrapToken, when set, is called with the admin token issued at
	// first start (or by NewAdminToken) before it is printed to Out, so
	// that a program embedding the server need not parse Out. It runs at
	// most once per start, synchronously, before New or Unseal returns.
	BootstrapToken func(token string)
	// ShareRecipients, when set, are public keys the unseal shares of a
	// new Shamir seal are encrypted to before they are shown, one per
	// share in order; AdminRecipient the one the admin token is encrypted
	// to. Out then carries only ciphertext (initout.go), for servers whose
	// output is collected in logs.
	ShareRecipients []*envelope.Recipient
	AdminRecipient  *envelope.Recipient
	// Logger for structured logs (default: JSON to stderr). It never sees secrets.
	Logger *slog.Logger
	// Now is the clock for verification, policies, nonces, tokens and audit
	// entries (default time.Now); rate limiting always uses the wall clock.
	Now func() time.Time

	// NonceTTL is the challenge lifetime (default 60 s).
	NonceTTL time.Duration
	// TokenTTL is the attestation token lifetime (default 10 min).
	TokenTTL time.Duration
	// APITokenTTL is the lifetime of API tokens issued without one
	// (default core.DefaultAPITokenTTL, 720h); APITokenMaxTTL the longest
	// a token may be given (default core.DefaultAPITokenMax, 8760h).
	APITokenTTL, APITokenMaxTTL time.Duration
	// RateLimit is requests per second per API token (default 1000; negative: none).
	RateLimit float64
	// RateBurst is the bucket size (default 2*RateLimit).
	RateBurst int
	// AddrRateLimit is requests per second per source address on the
	// routes that need no token, and for requests whose token is refused
	// (default 100; negative: none). AddrRateBurst is its bucket (default
	// 2*AddrRateLimit).
	AddrRateLimit float64
	AddrRateBurst int
	// RefusalInterval sums the requests of one token refused before any key
	// was looked at into one audit entry per interval (default 1 min).
	RefusalInterval time.Duration
	// Issuer is the attestation token issuer (default "ppml-kms").
	Issuer string
	// NewAdminToken issues (and prints once) a new admin token at start,
	// for an operator who lost the bootstrap token: it needs the data
	// directory and the root key, i.e. control of the server itself.
	NewAdminToken bool
	// CheckpointEvery makes the audit log keep a signed tree head every so
	// many entries (default 1024).
	CheckpointEvery uint64
}

// Server is the key service. It may start sealed (Shamir seal) and serves
// only status and unseal until operators unseal it.
type Server struct {
	cfg      Config
	verifier attest.Verifier
	logger   *slog.Logger
	core     atomic.Pointer[core.Core] // nil while sealed
	db       *store.DB                 // the core's store, set with it
	limiter  *limiter                  // per API token
	addrs    *limiter                  // per source address, before a token is accepted
	metrics  *metrics

	mu        sync.Mutex // guards sealState and shares
	sealState *seal.State
	// shares given so far, grouped by split. A version 2 seal.json commits
	// to each share, so only genuine shares get here (one group). Before
	// that (version 1), shares of another split, or junk from whoever can
	// reach the unauthenticated unseal route, are kept apart in at most
	// maxShareGroups groups so that they never mix with the operators'
	// shares, and memory stays bounded.
	shares     map[[4]byte][]shamir.Share
	shareOrder [][4]byte // groups, oldest first
}

// maxShareGroups bounds the splits a sealed server keeps shares of.
const maxShareGroups = 8

// New boots the server from cfg.DataDir: it creates a new root key only in
// a fresh directory, prints the bootstrap token (and Shamir shares) once,
// and for an existing Shamir-sealed directory returns a sealed server.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("kms: no data directory")
	}
	if cfg.Seal == "" {
		cfg.Seal = string(seal.TypeFile)
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = 60 * time.Second
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 10 * time.Minute
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 1000
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = int(2 * cfg.RateLimit)
	}
	if cfg.AddrRateLimit == 0 {
		cfg.AddrRateLimit = 100
	}
	if cfg.AddrRateBurst <= 0 {
		cfg.AddrRateBurst = int(2 * cfg.AddrRateLimit)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "ppml-kms"
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1024
	}
	if cfg.Shares == 0 {
		cfg.Shares = 5
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = 3
	}
	if err := checkInitRecipients(&cfg); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, limiter: newLimiter(cfg.RateLimit, cfg.RateBurst, time.Now),
		addrs: newLimiter(cfg.AddrRateLimit, cfg.AddrRateBurst, time.Now), metrics: newMetrics()}
	s.verifier = cfg.Verifier
	if s.verifier == nil {
		s.verifier = verifier.New(verifier.Config{Collateral: cfg.Collateral, SNPCerts: cfg.SNPCerts, SimKeys: cfg.SimKeys})
	}
	sealer, err := s.sealer(nil)
	if err != nil {
		return nil, err
	}
	root, created, err := seal.Boot(cfg.DataDir, sealer, DBFile)
	var se *seal.SealedError
	if errors.As(err, &se) {
		st, lerr := seal.LoadState(cfg.DataDir)
		if lerr != nil {
			return nil, lerr
		}
		s.sealState = st
		s.logger.Info("started sealed", "seal", string(st.Type), "threshold", st.Threshold)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kms: unseal root key: %w", err)
	}
	if created != nil && len(created.Shares) > 0 {
		if len(cfg.ShareRecipients) > 0 {
			fmt.Fprintf(cfg.Out, "Initialised a new %d-of-%d Shamir-sealed key service. Unseal shares, each encrypted to its holder's public key (shown ONCE; holder N decrypts theirs: awk '$1==\"ppml-init-share-N\" {print $3}' | base64 -d | ppml decrypt --key HOLDER.key -):\n", created.State.Threshold, created.State.Shares)
		} else {
			fmt.Fprintf(cfg.Out, "Initialised a new %d-of-%d Shamir-sealed key service. Unseal shares (shown ONCE, give each to a different operator):\n", created.State.Threshold, created.State.Shares)
		}
		for i, sh := range created.Shares {
			var r *envelope.Recipient
			if len(cfg.ShareRecipients) > 0 {
				r = cfg.ShareRecipients[i]
			}
			if err := showOnce(cfg.Out, fmt.Sprintf("ppml-init-share-%d", i+1), sh.String(), r); err != nil {
				clear(root)
				return nil, fmt.Errorf("kms: %w; the data directory %s was initialised but its unseal shares were not shown: delete it and start again", err, cfg.DataDir)
			}
		}
	}
	st, err := seal.LoadState(cfg.DataDir)
	if err != nil {
		clear(root)
		return nil, err
	}
	s.sealState = st
	if err := s.open(root, created != nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) sealer(shares []shamir.Share) (seal.Sealer, error) {
	switch seal.Type(s.cfg.Seal) {
	case seal.TypeFile:
		p := s.cfg.SealKeyFile
		if p == "" {
			p = filepath.Join(s.cfg.DataDir, "root.key")
		}
		return &seal.File{Path: p}, nil
	case seal.TypeShamir:
		return &seal.Shamir{Threshold: s.cfg.Threshold, Count: s.cfg.Shares, Shares: shares}, nil
	case seal.TypeTEE:
		return &seal.TEE{KeyDir: s.cfg.TEEKeyDir, KeyName: s.cfg.TEEKeyName}, nil
	}
	return nil, fmt.Errorf("kms: seal %q: want file, shamir or tee", s.cfg.Seal)
}

// open opens the store under root and the core over it; the core creates
// signing keys and the admin bootstrap token on first start (fresh: the
// root key was created by this start). The store checks its whole state
// against its authenticated head, and the state witness says whether the
// database is older than the one this server last ran on.
func (s *Server) open(root []byte, fresh bool) error {
	db, err := openStore(s.cfg.DataDir, root, fresh, s.cfg.Now)
	clear(root)
	if err != nil {
		return err
	}
	if n := db.Migrated(); n > 0 {
		s.logger.Warn("migrated the store to format 2 (authenticated state): every value now binds the state version it was written at, and start-up checks every row against the MACed state head; the migration is recorded on the audit log", "rows", n, "file", filepath.Join(s.cfg.DataDir, DBFile))
	}
	if err := checkWitness(s.cfg.DataDir, db, s.logger); err != nil {
		db.Close()
		return err
	}
	c, boot, err := core.Open(db, core.Config{
		Verifier: s.verifier, Now: s.cfg.Now, NonceTTL: s.cfg.NonceTTL, TokenTTL: s.cfg.TokenTTL,
		APITokenTTL: s.cfg.APITokenTTL, APITokenMaxTTL: s.cfg.APITokenMaxTTL,
		Issuer: s.cfg.Issuer, CheckpointEvery: s.cfg.CheckpointEvery, NewAdminToken: s.cfg.NewAdminToken,
		Logger: s.logger, Observer: s.metrics, RefusalInterval: s.cfg.RefusalInterval,
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("kms: refusing to start: %w", err)
	}
	if err := writeWitness(s.cfg.DataDir, db); err != nil {
		c.Close()
		return err
	}
	if boot != nil {
		if s.cfg.BootstrapToken != nil {
			s.cfg.BootstrapToken(boot.Token)
		}
		if s.cfg.AdminRecipient != nil {
			fmt.Fprintf(s.cfg.Out, "Admin token, encrypted to the admin's public key (shown ONCE; decrypt it: awk '$1==\"ppml-init-admin-token\" {print $3}' | base64 -d | ppml decrypt --key ADMIN.key -):\n")
		} else {
			fmt.Fprintf(s.cfg.Out, "Admin token (shown ONCE; store it now):\n")
		}
		if err := showOnce(s.cfg.Out, "ppml-init-admin-token", boot.Token, s.cfg.AdminRecipient); err != nil {
			c.Close()
			return fmt.Errorf("kms: %w; issue a new one with --new-admin-token", err)
		}
	}
	s.db = db
	s.core.Store(c)
	h, _ := db.Head()
	s.logger.Info("unsealed", "seal", s.cfg.Seal, "store_id", h.StoreID, "state_version", h.Version)
	return nil
}

// openStore opens DataDir's database under root, checking its state.
// Unless fresh, the database must exist and hold a state: a missing or
// empty file is a replaced database, not a reason to start over.
func openStore(dataDir string, root []byte, fresh bool, now func() time.Time) (*store.DB, error) {
	path := filepath.Join(dataDir, DBFile)
	if !fresh {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("kms: refusing to start: %s is missing, but %s says this data directory was initialised: the database was deleted or moved. Restore it from a backup (ppml server restore --data-dir %s BACKUP); a new, empty database would lose every key", path, seal.StateFile, dataDir)
		}
	}
	backend, err := boltstore.Open(path, nil)
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	db, err := store.Open(backend, root, &store.Options{Existing: !fresh, Now: now, Describe: core.DescribeBucket, Explain: core.ExplainState})
	if err != nil {
		backend.Close()
		var se *store.StateError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("kms: refusing to start: %s was changed outside the key service: %w.\nNothing was served from it. If you restored parts of it by hand, restore a whole backup instead (ppml server restore --data-dir %s BACKUP); otherwise treat it as an attack on the server's disk", path, err, dataDir)
		case errors.Is(err, store.ErrEmpty):
			return nil, fmt.Errorf("kms: refusing to start: %s holds no state, but %s says this data directory was initialised: the database was replaced by an empty file (or the first start was interrupted before it wrote anything: then remove %s and start again). Restore it from a backup with ppml server restore", path, seal.StateFile, seal.StateFile)
		}
		return nil, fmt.Errorf("kms: %s: %w", path, err)
	}
	return db, nil
}

// Sealed reports whether the server waits for unseal shares.
func (s *Server) Sealed() bool { return s.core.Load() == nil }

// Unseal adds one Shamir share; with enough shares it recovers the root
// key and opens the store. It returns the status after the share. A share
// the sealed state can tell is not this server's (another split, or, with
// a version 2 seal.json, one that does not match its commitment) is
// refused and not kept.
func (s *Server) Unseal(share string) (api.Status, error) {
	sh, err := shamir.Parse(share)
	if err != nil {
		return s.Status(), err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.core.Load() != nil {
		return s.statusLocked(), nil
	}
	if s.sealState == nil || s.sealState.Type != seal.TypeShamir {
		return s.statusLocked(), errors.New("this key service is not Shamir-sealed")
	}
	if err := s.sealState.CheckShare(sh); err != nil {
		return s.statusLocked(), err
	}
	if s.shares == nil {
		s.shares = map[[4]byte][]shamir.Share{}
	}
	group, known := s.shares[sh.SetID]
	for _, have := range group {
		if have.X == sh.X {
			return s.statusLocked(), errors.New("this share was already given")
		}
	}
	if !known {
		s.evictShareGroup()
		s.shareOrder = append(s.shareOrder, sh.SetID)
	}
	group = append(group, sh)
	s.shares[sh.SetID] = group
	if len(group) < s.sealState.Threshold {
		return s.statusLocked(), nil
	}
	sealer, err := s.sealer(group)
	if err != nil {
		return s.statusLocked(), err
	}
	root, err := sealer.Unseal(s.sealState)
	if err != nil {
		// The group combines to a wrong key: at least one share in it is
		// forged or damaged; drop the group, keep the others.
		s.dropShareGroup(sh.SetID)
		return s.statusLocked(), err
	}
	if s.sealState.SplitID == "" {
		// Version 1: now that genuine shares are known, commit to every
		// share of the split so that forged ones are refused from now on.
		if up, err := seal.UpgradeShamir(s.cfg.DataDir, s.sealState, group); err != nil {
			s.logger.Error("could not upgrade seal.json with share commitments; forged unseal shares stay possible until it is", "error", err.Error())
		} else {
			s.sealState = up
			s.logger.Warn("upgraded seal.json to version 2: it now holds a commitment to each unseal share, and a sealed server refuses forged shares; the shares themselves are unchanged", "split_id", up.SplitID)
		}
	}
	s.shares, s.shareOrder = nil, nil
	if err := s.open(root, false); err != nil {
		return s.statusLocked(), err
	}
	return s.statusLocked(), nil
}

// evictShareGroup makes room for a new group of shares: at most
// maxShareGroups are kept, and the one with the fewest shares (the oldest
// of those) goes, so junk from an attacker pushes out junk, not the
// operators' growing group.
func (s *Server) evictShareGroup() {
	if len(s.shareOrder) < maxShareGroups {
		return
	}
	victim := s.shareOrder[0]
	for _, id := range s.shareOrder {
		if len(s.shares[id]) < len(s.shares[victim]) {
			victim = id
		}
	}
	s.dropShareGroup(victim)
}

func (s *Server) dropShareGroup(id [4]byte) {
	delete(s.shares, id)
	s.shareOrder = slices.DeleteFunc(s.shareOrder, func(x [4]byte) bool { return x == id })
}

// Status reports the seal state and, once unsealed, the store's state
// version and the audit log's size.
func (s *Server) Status() api.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked()
}

func (s *Server) statusLocked() api.Status {
	st := api.Status{Sealed: s.core.Load() == nil, Seal: s.cfg.Seal, Version: BuildVersion()}
	if s.sealState != nil {
		st.Seal = string(s.sealState.Type)
		if s.sealState.Type == seal.TypeShamir {
			st.Threshold, st.SharesTotal = s.sealState.Threshold, s.sealState.Shares
		}
	}
	if st.Sealed {
		for _, g := range s.shares {
			st.Shares = max(st.Shares, len(g))
		}
		return st
	}
	if h, n, err := s.core.Load().StateInfo(); err == nil {
		st.StoreID, st.StateVersion, st.StateTime, st.AuditSize = h.StoreID, h.Version, h.Time, n
	}
	return st
}

// BuildVersion names this build: the module version and VCS revision
// recorded by the Go toolchain.
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v
}

// Close records the final state version in the state witness and closes
// the store.
func (s *Server) Close() error {
	c := s.core.Load()
	if c == nil || !s.core.CompareAndSwap(c, nil) {
		return nil
	}
	werr := writeWitness(s.cfg.DataDir, s.db)
	if err := c.Close(); err != nil {
		return err
	}
	return werr
}

// Core returns the service core, nil while sealed.
func (s *Server) Core() *core.Core { return s.core.Load() }

// AuditPublicKey returns the key that signs audit tree heads (nil while sealed).
func (s *Server) AuditPublicKey() *ecdsa.PublicKey {
	if c := s.core.Load(); c != nil {
		return c.AuditPublicKey()
	}
	return nil
}
