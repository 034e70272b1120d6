package core

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/store"
)

// AuditQuery selects entries of the audit log: of one key, of a tenant's
// own trail (Tenant; an owner's query naming no key is of its tenant), or
// of the whole log (admin, naming neither), from index From, at most
// Limit (1 to 1000; otherwise 1000).
type AuditQuery struct {
	Key    string
	Tenant string
	From   uint64
	Limit  int
}

// MaxAuditList bounds the entries of one AuditList answer.
const MaxAuditList = 1000

// AuditList lists audit entries (owner: its own keys'; admin: all).
func (c *Core) AuditList(ctx context.Context, who *Caller, q AuditQuery) ([]audit.Entry, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Limit > MaxAuditList {
		q.Limit = MaxAuditList
	}
	if q.Key != "" && q.Tenant != "" {
		return nil, Errorf(KindBadRequest, "bad_request", "give a key or a tenant, not both")
	}
	if who.Role != api.RoleAdmin && q.Key == "" {
		if q.Tenant != "" && q.Tenant != who.Tenant {
			return nil, Errorf(KindForbidden, "forbidden", "owners read their own tenant's trail only")
		}
		q.Tenant = who.Tenant
	}
	var out []audit.Entry
	err := c.db.View(func(tx store.Tx) error {
		var err error
		if q.Tenant != "" {
			out, err = c.log.ListByKey(tx, q.Tenant, "", q.From, q.Limit)
			return err
		}
		if q.Key == "" {
			out, err = c.log.List(tx, q.From, q.Limit)
			return err
		}
		if name, ok := strings.CutPrefix(q.Key, api.CertPolicyTrail); ok {
			tenant, err := c.certPolicyTrailTenant(tx, who, name)
			if err != nil {
				return err
			}
			out, err = c.log.ListByKey(tx, tenant, q.Key, q.From, q.Limit)
			return err
		}
		k, err := c.ownedKey(tx, who, q.Key)
		if err != nil {
			return err
		}
		out, err = c.log.ListByKey(tx, k.Tenant, k.Name, q.From, q.Limit)
		return err
	})
	if out == nil {
		out = []audit.Entry{}
	}
	return out, err
}

// AuditHead signs the log's current tree head (any role): whoever keeps it
// can later check that the log only grew (ppml audit verify --trusted-head).
func (c *Core) AuditHead(ctx context.Context, who *Caller) (*audit.TreeHead, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin, api.RoleRunner); err != nil {
		return nil, err
	}
	var h *audit.TreeHead
	err := c.db.View(func(tx store.Tx) error {
		var err error
		h, err = c.log.SignTreeHead(tx)
		return err
	})
	return h, err
}

// AuditExport writes the whole log in the export format to w (admin), from
// one consistent snapshot. An error after the first byte leaves w with a
// truncated export, which fails verification.
func (c *Core) AuditExport(ctx context.Context, who *Caller, w io.Writer) error {
	if err := Require(who, api.RoleAdmin); err != nil {
		return err
	}
	return c.db.View(func(tx store.Tx) error {
		_, err := c.log.Export(tx, w)
		return err
	})
}

// TrailQuery selects the trails of a trail export: Keys (names of the
// caller's keys; an admin's, of any) and, always, the trail of each key's
// tenant and of Tenant (an owner's own when empty). From are the sizes of
// tree heads the caller trusts, for consistency proofs.
type TrailQuery struct {
	Keys   []string
	Tenant string
	From   []uint64
}

// MaxTrailKeys bounds the keys of one trail export.
const MaxTrailKeys = 64

// AuditTrail writes the trail export (audit.VerifyTrail) of the query's
// trails to w (owner: its tenant and keys; admin: any), from one
// consistent snapshot. Check errors come before the first byte; an error
// after it leaves w with a truncated export, which fails verification.
func (c *Core) AuditTrail(ctx context.Context, who *Caller, q TrailQuery, w io.Writer) error {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return err
	}
	if len(q.Keys) > MaxTrailKeys || len(q.From) > MaxTrailKeys {
		return Errorf(KindBadRequest, "bad_request", "at most %d keys and %d trusted sizes per trail export", MaxTrailKeys, MaxTrailKeys)
	}
	if who.Role != api.RoleAdmin {
		if q.Tenant != "" && q.Tenant != who.Tenant {
			return Errorf(KindForbidden, "forbidden", "owners export their own tenant's trail only")
		}
		q.Tenant = who.Tenant
	}
	if q.Tenant == "" && len(q.Keys) == 0 {
		return Errorf(KindBadRequest, "bad_request", "name a key (?key=NAME) or a tenant (?tenant=NAME)")
	}
	return c.db.View(func(tx store.Tx) error {
		var ids []audit.TrailID
		if q.Tenant != "" {
			var t tenantRec
			if err := getJSON(tx, bktTenants, c.tenantKey(q.Tenant), &t); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return notFound("no tenant %s", q.Tenant)
				}
				return err
			}
			ids = append(ids, audit.TrailID{Tenant: q.Tenant})
		}
		for _, name := range q.Keys {
			k, err := c.ownedKey(tx, who, name)
			if err != nil {
				return err
			}
			ids = append(ids, audit.TrailID{Tenant: k.Tenant}, audit.TrailID{Tenant: k.Tenant, Key: k.Name})
		}
		_, err := c.log.ExportTrails(tx, w, ids, q.From)
		return err
	})
}

func hexList(in [][]byte) []attest.Hex {
	out := make([]attest.Hex, len(in))
	for i, h := range in {
		out[i] = h
	}
	return out
}

// AuditProof returns a receipt for entry index: the entry, a signed tree
// head and the entry's inclusion proof (owner: entries about its tenant;
// admin: any).
func (c *Core) AuditProof(ctx context.Context, who *Caller, index uint64) (*api.InclusionProof, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return nil, err
	}
	var out api.InclusionProof
	err := c.db.View(func(tx store.Tx) error {
		head, err := c.log.SignTreeHead(tx)
		if err != nil {
			return err
		}
		if index >= head.Size {
			return notFound("no entry %d: the log has %d entries", index, head.Size)
		}
		e, raw, err := c.log.Entry(tx, index)
		if err != nil {
			return err
		}
		if who.Role != api.RoleAdmin && e.Tenant != who.Tenant {
			return Errorf(KindForbidden, "forbidden", "entry %d is not about your tenant", index)
		}
		p, err := c.log.InclusionProof(tx, index, head.Size)
		if err != nil {
			return err
		}
		hj, _ := json.Marshal(head)
		out = api.InclusionProof{Index: index, Entry: raw, TreeHead: hj, Proof: hexList(p)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditConsistency proves that the log of from entries, whose tree head
// the caller holds, is a prefix of the current log (owner, admin).
func (c *Core) AuditConsistency(ctx context.Context, who *Caller, from uint64) (*api.ConsistencyProof, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return nil, err
	}
	var out api.ConsistencyProof
	err := c.db.View(func(tx store.Tx) error {
		head, err := c.log.SignTreeHead(tx)
		if err != nil {
			return err
		}
		if from > head.Size {
			return Errorf(KindConflict, "conflict", "you hold a tree head of size %d but the log has %d entries: it was rolled back (restored from a backup?) or forked", from, head.Size)
		}
		p, err := c.log.ConsistencyProof(tx, from, head.Size)
		if err != nil {
			return err
		}
		hj, _ := json.Marshal(head)
		out = api.ConsistencyProof{From: from, TreeHead: hj, Proof: hexList(p)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Backup writes a consistent copy of the database to w (admin), as
// encrypted as the database: restoring it needs the same root key and
// seal.json. The copy holds every owner's keys, so it is on every owner
// tenant's trail first (and the entries are in the copy).
func (c *Core) Backup(ctx context.Context, who *Caller, w io.Writer) (int64, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return 0, err
	}
	err := c.db.Update(func(tx store.Tx) error {
		var owners []string
		err := tx.Scan(bktTenants, nil, nil, func(_, v []byte) error {
			var t tenantRec
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if t.Role == api.RoleOwner {
				owners = append(owners, t.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.Sort(owners)
		for _, t := range owners {
			e := audit.Entry{Type: audit.TypeBackup, Tenant: t, Actor: who.TokenID, Reason: "an administrator (tenant " + who.Tenant + ") took a backup of the key service's database, which holds this tenant's keys"}
			if err := c.record(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return c.db.Backup(w)
}
