package core

import (
	"context"
	"encoding/json"
	"io"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/store"
)

// AuditQuery selects entries of the audit log: of one key (owners must
// name one), or of the whole log (admin), from index From, at most Limit
// (1 to 1000; otherwise 1000).
type AuditQuery struct {
	Key   string
	From  uint64
	Limit int
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
	if who.Role != api.RoleAdmin && q.Key == "" {
		return nil, Errorf(KindBadRequest, "bad_request", "owners list the audit trail of one key: give ?key=NAME")
	}
	var out []audit.Entry
	err := c.db.View(func(tx store.Tx) error {
		var err error
		if q.Key == "" {
			out, err = c.log.List(tx, q.From, q.Limit)
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

// AuditHead signs the log's current tree head (owner, admin).
func (c *Core) AuditHead(ctx context.Context, who *Caller) (*audit.TreeHead, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
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
// seal.json.
func (c *Core) Backup(ctx context.Context, who *Caller, w io.Writer) (int64, error) {
	if err := Require(who, api.RoleAdmin); err != nil {
		return 0, err
	}
	return c.db.Backup(w)
}
