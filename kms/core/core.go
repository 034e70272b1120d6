// Package core is the key service without its transport: tenants and
// hashed API tokens, per-owner primary keys that never leave it, their
// versions and release policies, data keys wrapped under them, the
// attestation challenge and the release of data keys to an attested TEE,
// and the audit log that records every change and every release decision
// in the same store transaction as the change.
//
// Every operation is a method of Core that takes the caller's identity (a
// Caller, from Authenticate) and a typed request from package kms/api, and
// returns a typed result or an *Error whose Kind a transport maps to its
// status (the HTTP layer is package kms). The core checks roles and tenant
// ownership itself, whatever the transport did before. It imports no
// net/http and keeps its state in a store.DB (package store), whatever the
// backend; audit entries are written only through Core.record.
package core

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/store"
)

// Config configures a Core.
type Config struct {
	// Verifier verifies release evidence (required).
	Verifier attest.Verifier
	// Now is the clock for verification, policies, nonces, tokens and audit
	// entries (default time.Now).
	Now func() time.Time
	// NonceTTL is the challenge lifetime (default 60 s).
	NonceTTL time.Duration
	// TokenTTL is the attestation token lifetime (default 10 min).
	TokenTTL time.Duration
	// APITokenTTL is the lifetime of API tokens issued without one
	// (default DefaultAPITokenTTL); APITokenMaxTTL the longest a token may
	// be given, at issue or renewal (default DefaultAPITokenMax).
	APITokenTTL, APITokenMaxTTL time.Duration
	// Issuer is the attestation token issuer (default "ppml-kms").
	Issuer string
	// CheckpointEvery makes the audit log keep a signed tree head every so
	// many entries (default 1024).
	CheckpointEvery uint64
	// NewAdminToken issues a new admin token at Open, for an operator who
	// lost the bootstrap token (it takes control of the store to do so).
	NewAdminToken bool
	// Logger for structured logs (default: discard). It never sees secrets.
	Logger *slog.Logger
	// Observer is told about releases and denials (metrics); nil: nobody.
	Observer Observer
	// RefusalInterval is how long requests of one token refused before any
	// key was looked at are summed into one audit entry (default 1 min).
	RefusalInterval time.Duration
	// CRLValidity is how long the deployment CA's revocation list is valid
	// (default DefaultCRLValidity).
	CRLValidity time.Duration
}

// Observer is told about release decisions, for metrics.
type Observer interface {
	// Released counts keys released (input and output) to a platform.
	Released(platform string, keys int)
	// Denied counts one refused key with the rule that refused it.
	Denied(rule string)
	// Refused counts one request refused before any key was looked at
	// (no valid nonce or evidence, another tenant's key name), by rule.
	Refused(rule string)
}

// Core is an open key service.
type Core struct {
	cfg      Config
	db       *store.DB
	log      *auditlog.Log
	jwtKey   *ecdsa.PrivateKey
	auditKey *ecdsa.PrivateKey
	nonces   *nonces
	digests  digestCache
	refusals refusals
	// stopFlush ends the goroutine that writes refusal summaries;
	// flushDone is closed when it has ended.
	stopFlush, flushDone chan struct{}
	closeOnce            sync.Once
	ca                   *authority // the deployment CA (ca.go)
}

// Caller is who calls an operation: the API token's id (never the token),
// its tenant and the tenant's role.
type Caller struct {
	TokenID string
	Tenant  string
	Role    string
}

// Open opens the service state kept in db, creating the token and audit
// signing keys, the audit log, the admin tenant and its bootstrap token on
// first open. boot is the admin token issued by this open (at first open or
// for Config.NewAdminToken), nil otherwise; it is shown once and never
// stored. Closing the Core closes db.
func Open(db *store.DB, cfg Config) (c *Core, boot *api.TokenInfo, err error) {
	if cfg.Verifier == nil {
		return nil, nil, errors.New("kms: no evidence verifier")
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
	if cfg.Issuer == "" {
		cfg.Issuer = "ppml-kms"
	}
	if cfg.APITokenMaxTTL <= 0 {
		cfg.APITokenMaxTTL = DefaultAPITokenMax
	}
	if cfg.APITokenTTL <= 0 {
		cfg.APITokenTTL = min(DefaultAPITokenTTL, cfg.APITokenMaxTTL)
	}
	if cfg.APITokenTTL > cfg.APITokenMaxTTL {
		return nil, nil, fmt.Errorf("kms: API token TTL %s is longer than the maximum %s", cfg.APITokenTTL, cfg.APITokenMaxTTL)
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RefusalInterval <= 0 {
		cfg.RefusalInterval = time.Minute
	}
	if cfg.CRLValidity <= 0 {
		cfg.CRLValidity = DefaultCRLValidity
	}
	c = &Core{cfg: cfg, db: db, nonces: newNonces(cfg.NonceTTL, cfg.Now)}
	c.refusals = refusals{every: cfg.RefusalInterval, m: map[string]*refusalWindow{}}
	err = db.Update(func(tx store.Tx) error {
		var err error
		if c.jwtKey, err = loadOrCreateSigner(tx, "token_signing_key"); err != nil {
			return err
		}
		if c.auditKey, err = loadOrCreateSigner(tx, "audit_signing_key"); err != nil {
			return err
		}
		c.log = auditlog.New(auditlog.Config{Signer: c.auditKey, Blinder: db, CheckpointEvery: cfg.CheckpointEvery, Now: cfg.Now})
		if err := c.log.Init(tx); err != nil {
			return err
		}
		if n := db.Migrated(); n > 0 {
			if err := c.record(tx, audit.Entry{Type: audit.TypeStoreMigrate, Actor: "operator", Reason: fmt.Sprintf("store migrated to format 2 (authenticated state): %d rows resealed", n)}); err != nil {
				return err
			}
		}
		if boot, err = c.bootstrap(tx); err != nil {
			return err
		}
		c.ca, err = c.loadOrCreateCA(tx)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kms: open state: %w", err)
	}
	c.startRefusalFlusher()
	return c, boot, nil
}

// bootstrap creates the admin tenant and its first token in a fresh store,
// or a recovery admin token when asked to.
func (c *Core) bootstrap(tx store.Tx) (*api.TokenInfo, error) {
	if _, err := tx.Get(bktMeta, []byte("bootstrapped")); err == nil {
		if !c.cfg.NewAdminToken {
			return nil, nil
		}
		var admin tenantRec
		if err := getJSON(tx, bktTenants, c.tenantKey("admin"), &admin); err != nil {
			return nil, fmt.Errorf("admin tenant: %w", err)
		}
		return c.issueToken(tx, &admin, "operator recovery", "operator", "the operator (a start with --new-admin-token)", 0)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// No marker: a fresh store, unless it has tenants already (the store's
	// state check finds a deleted marker first; this holds whatever the store).
	hasTenants := false
	if err := tx.Keys(bktTenants, nil, nil, func([]byte) error { hasTenants = true; return store.ErrStop }); err != nil {
		return nil, err
	}
	if hasTenants {
		return nil, errors.New("the bootstrap marker meta/bootstrapped is missing from a store that has tenants: refusing to issue a new bootstrap admin token (restore the database from a backup with ppml server restore)")
	}
	admin := &tenantRec{Name: "admin", Role: api.RoleAdmin, Created: c.now().UTC()}
	if err := putJSON(tx, bktTenants, c.tenantKey(admin.Name), admin); err != nil {
		return nil, err
	}
	if err := c.record(tx, audit.Entry{Type: audit.TypeTenant, Tenant: admin.Name, Actor: "bootstrap", Reason: "created tenant admin (admin)"}); err != nil {
		return nil, err
	}
	boot, err := c.issueToken(tx, admin, "bootstrap", "bootstrap", "the key service at its first start", 0)
	if err != nil {
		return nil, err
	}
	return boot, tx.Put(bktMeta, []byte("bootstrapped"), []byte("1"))
}

// Close writes the pending refusal summaries and closes the store.
func (c *Core) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stopFlush)
		<-c.flushDone
		err = c.FlushRefusals()
		if cerr := c.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// StateInfo is the store's state head and the audit log's size, for
// status reports (they reveal no secret).
func (c *Core) StateInfo() (store.Head, uint64, error) {
	h, err := c.db.Head()
	if err != nil {
		return h, 0, err
	}
	var n uint64
	err = c.db.View(func(tx store.Tx) error {
		var err error
		n, err = c.log.Size(tx)
		return err
	})
	return h, n, err
}

// AppendOperatorEntry appends e to the audit log of an initialised store
// that no Core serves (the server is stopped): operator actions such as a
// restore are recorded on the log of the database they act on.
func AppendOperatorEntry(db *store.DB, e audit.Entry, now func() time.Time) (index uint64, err error) {
	return appendOperator(db, e, now, false)
}

// RecordRestore appends the restore entry e (about no tenant) to the log
// of a restored store that no Core serves, then one restore entry on the
// trail of every tenant of that store, in one transaction: a restore puts
// back every tenant's keys, policies and tokens as they were, so each
// owner's own trail must show it. It returns the index of e.
func RecordRestore(db *store.DB, e audit.Entry, now func() time.Time) (index uint64, err error) {
	return appendOperator(db, e, now, true)
}

func appendOperator(db *store.DB, e audit.Entry, now func() time.Time, perTenant bool) (index uint64, err error) {
	if now == nil {
		now = time.Now
	}
	err = db.Update(func(tx store.Tx) error {
		b, err := tx.Get(bktMeta, []byte("audit_signing_key"))
		if err != nil {
			return fmt.Errorf("audit signing key: %w", err)
		}
		k, err := parseSigner("audit_signing_key", b)
		if err != nil {
			return err
		}
		lg := auditlog.New(auditlog.Config{Signer: k, Blinder: db, Now: now})
		if index, err = lg.Append(tx, e); err != nil || !perTenant {
			return err
		}
		var tenants []string
		if err := tx.Scan(bktTenants, nil, nil, func(_, v []byte) error {
			var t tenantRec
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("tenant record: %w", err)
			}
			tenants = append(tenants, t.Name)
			return nil
		}); err != nil {
			return err
		}
		slices.Sort(tenants)
		for _, t := range tenants {
			te := e
			te.Tenant = t
			te.Reason = fmt.Sprintf("the database was restored from a backup (audit entry %d): this tenant's keys, policies and tokens are as they were in it", index)
			if _, err := lg.Append(tx, te); err != nil {
				return err
			}
		}
		return nil
	})
	return index, err
}

func (c *Core) now() time.Time { return c.cfg.Now() }

// record appends e to the audit log in tx: every audit entry of the key
// service is written here, in the transaction of the change it records.
func (c *Core) record(tx store.Tx, e audit.Entry) error {
	_, err := c.log.Append(tx, e)
	return err
}

// AuditPublicKey is the key that signs audit tree heads.
func (c *Core) AuditPublicKey() *ecdsa.PublicKey { return &c.auditKey.PublicKey }

// TokenPublicKey is the key that signs attestation tokens (JWKS).
func (c *Core) TokenPublicKey() *ecdsa.PublicKey { return &c.jwtKey.PublicKey }
