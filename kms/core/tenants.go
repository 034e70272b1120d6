package core

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/store"
)

// Authenticate finds the API token (as given after "Bearer ") and returns
// its caller. A malformed, unknown or revoked token is KindUnauthorized.
func (c *Core) Authenticate(ctx context.Context, token string) (*Caller, error) {
	if token == "" {
		return nil, Errorf(KindUnauthorized, "unauthorized", "missing API token (Authorization: Bearer TOKEN)")
	}
	var rec *tokenRec
	err := c.db.View(func(tx store.Tx) error {
		var err error
		if rec, err = lookupToken(tx, strings.TrimSpace(token)); err != nil {
			return err
		}
		return rec.expired(c.now())
	})
	if err != nil {
		return nil, Errorf(KindUnauthorized, "unauthorized", "API token refused: %v", err)
	}
	return &Caller{TokenID: rec.ID, Tenant: rec.Tenant, Role: rec.Role}, nil
}

// CreateTenant creates a tenant (admin).
func (c *Core) CreateTenant(ctx context.Context, who *Caller, req *api.CreateTenantRequest) (*api.Tenant, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	t := &tenantRec{Name: req.Name, Role: req.Role, Created: c.now().UTC()}
	err := c.db.Update(func(tx store.Tx) error {
		k := c.tenantKey(t.Name)
		if _, err := tx.Get(bktTenants, k); err == nil {
			return Errorf(KindConflict, "conflict", "tenant %s exists", t.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := putJSON(tx, bktTenants, k, t); err != nil {
			return err
		}
		return c.record(tx, audit.Entry{Type: audit.TypeTenant, Tenant: t.Name, Actor: who.TokenID, Reason: "created tenant " + t.Name + " (" + t.Role + ")"})
	})
	if err != nil {
		return nil, err
	}
	return &api.Tenant{Name: t.Name, Role: t.Role, Created: t.Created}, nil
}

// ListTenants lists every tenant (admin).
func (c *Core) ListTenants(ctx context.Context, who *Caller) ([]api.Tenant, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return nil, err
	}
	out := []api.Tenant{}
	err := c.db.View(func(tx store.Tx) error {
		return tx.Scan(bktTenants, nil, nil, func(_, v []byte) error {
			var t tenantRec
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, api.Tenant{Name: t.Name, Role: t.Role, Created: t.Created})
			return nil
		})
	})
	return out, err
}

// CreateToken issues an API token for a tenant (admin); the secret is in
// the result only.
func (c *Core) CreateToken(ctx context.Context, who *Caller, req *api.CreateTokenRequest) (*api.TokenInfo, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	var info *api.TokenInfo
	err := c.db.Update(func(tx store.Tx) error {
		var t tenantRec
		if err := getJSON(tx, bktTenants, c.tenantKey(req.Tenant), &t); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound("no tenant %s (create it first: ppml tenant create)", req.Tenant)
			}
			return err
		}
		ttl, err := api.ParseTTL(req.TTL)
		if err != nil {
			return badRequest(err)
		}
		info, err = c.issueToken(tx, &t, req.Description, who.TokenID, "administrator token "+who.TokenID+" of tenant "+who.Tenant, ttl)
		return err
	})
	return info, err
}

// RenewToken extends a token's expiry to now + TTL (the request's, else
// the token's own): the caller's own token (any role), or any token by id
// (admin). Revoked and expired tokens cannot be renewed; tokens issued
// before tokens expired get the default TTL.
func (c *Core) RenewToken(ctx context.Context, who *Caller, req *api.RenewTokenRequest) (*api.TokenInfo, error) {
	if err := Require(who, api.RoleAdmin, api.RoleOwner, api.RoleRunner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	id := req.ID
	if id == "" {
		id = who.TokenID
	}
	if id != who.TokenID && who.Role != api.RoleAdmin {
		return nil, Errorf(KindForbidden, "forbidden", "only an admin renews another token; renew your own by leaving the id out")
	}
	ttl, _ := api.ParseTTL(req.TTL)
	var info api.TokenInfo
	err := c.db.Update(func(tx store.Tx) error {
		var t tokenRec
		if err := getJSON(tx, bktTokens, []byte(id), &t); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound("no token with id %q", id)
			}
			return err
		}
		if t.Revoked {
			return Errorf(KindConflict, "conflict", "token %s is revoked: issue a new one", id)
		}
		now := c.now().UTC()
		if err := t.expired(now); err != nil {
			return Errorf(KindConflict, "conflict", "%v", err)
		}
		if ttl == 0 {
			ttl = t.TTL
		}
		if ttl == 0 {
			ttl = c.cfg.APITokenTTL
		}
		if ttl > c.cfg.APITokenMaxTTL {
			return Errorf(KindBadRequest, "bad_request", "ttl %s is longer than this server allows (%s)", ttl, c.cfg.APITokenMaxTTL)
		}
		t.TTL, t.Expires = ttl, now.Add(ttl)
		if err := putJSON(tx, bktTokens, []byte(id), &t); err != nil {
			return err
		}
		info = t.info()
		return c.record(tx, audit.Entry{Type: audit.TypeTokenRenew, Tenant: t.Tenant, Actor: who.TokenID, Reason: "token " + id + " renewed until " + t.Expires.Format(time.RFC3339)})
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// ListTokens lists every API token, never its secret (admin).
func (c *Core) ListTokens(ctx context.Context, who *Caller) ([]api.TokenInfo, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return nil, err
	}
	out := []api.TokenInfo{}
	err := c.db.View(func(tx store.Tx) error {
		return tx.Scan(bktTokens, nil, nil, func(_, v []byte) error {
			var t tokenRec
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, t.info())
			return nil
		})
	})
	return out, err
}

// RevokeToken revokes an API token by id (admin).
func (c *Core) RevokeToken(ctx context.Context, who *Caller, id string) (*api.TokenInfo, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return nil, err
	}
	var info api.TokenInfo
	err := c.db.Update(func(tx store.Tx) error {
		var t tokenRec
		if err := getJSON(tx, bktTokens, []byte(id), &t); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound("no token with id %q", id)
			}
			return err
		}
		t.Revoked = true
		if err := putJSON(tx, bktTokens, []byte(id), &t); err != nil {
			return err
		}
		info = t.info()
		return c.record(tx, audit.Entry{Type: audit.TypeTokenRevoke, Tenant: t.Tenant, Actor: who.TokenID, Reason: "revoked token " + id})
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}
