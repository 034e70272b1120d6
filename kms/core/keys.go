package core

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/store"
)

// ownedKey loads key name and checks that the caller's tenant owns it (an
// admin may read any key).
func (c *Core) ownedKey(tx store.Tx, who *Caller, name string) (*keyRec, error) {
	var k keyRec
	if err := getJSON(tx, bktKeys, c.keyKey(name), &k); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, noKey(name)
		}
		return nil, err
	}
	// Another tenant's key answers exactly like a missing one, so that
	// names cannot be probed for existence; the probe is counted into the
	// caller's refusal summary.
	if who.Role != api.RoleAdmin && k.Tenant != who.Tenant {
		c.refuse(who, "foreign_key", 1)
		return nil, noKey(name)
	}
	return &k, nil
}

func noKey(name string) error { return notFound("no key %s", name) }

// KeyNamespace says why tenant may not create a key called name: new key
// names are TENANT/KEY, in the creating tenant's own namespace, so that no
// tenant can take a name another will look for. The answer is the same
// whatever exists, so it reveals nothing about other tenants. Keys created
// before namespaces keep their names (docs/guide/data-owner-kms.md).
func KeyNamespace(tenant, name string) error {
	ns, rest, ok := strings.Cut(name, "/")
	if ok && ns == tenant && rest != "" {
		return nil
	}
	last := name[strings.LastIndexByte(name, '/')+1:]
	return fmt.Errorf("key name %s is not in your tenant's namespace: name new keys %s/KEY, e.g. %s/%s", name, tenant, tenant, last)
}

// CreateKey creates a primary key owned by the caller's tenant, in its
// namespace (owner).
func (c *Core) CreateKey(ctx context.Context, who *Caller, req *api.CreateKeyRequest) (*api.Key, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	if err := KeyNamespace(who.Tenant, req.Name); err != nil {
		return nil, Errorf(KindBadRequest, "key_namespace", "%v", err)
	}
	var out api.Key
	err := c.db.Update(func(tx store.Tx) error {
		kk := c.keyKey(req.Name)
		if _, err := tx.Get(bktKeys, kk); err == nil {
			return Errorf(KindConflict, "conflict", "key %s exists", req.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		m, err := newKeyMaterial(req.Recipient)
		if err != nil {
			return err
		}
		now := c.now().UTC()
		k := &keyRec{Name: req.Name, Tenant: who.Tenant, KEM: req.Recipient, Versions: []keyVersionRec{{Version: 1, Material: m, Created: now}}, Created: now}
		err = putJSON(tx, bktKeys, kk, k)
		clear(m)
		if err != nil {
			return err
		}
		out = k.api()
		e := audit.Entry{Type: audit.TypeKeyCreate, Tenant: who.Tenant, Actor: who.TokenID, Key: req.Name, KeyVersion: 1}
		if req.Recipient != "" {
			e.Reason = "recipient key " + req.Recipient
		}
		return c.record(tx, e)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateKey adds a version to a key; older versions still unwrap (owner).
func (c *Core) RotateKey(ctx context.Context, who *Caller, req *api.CreateKeyRequest) (*api.Key, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	if req.Recipient != "" {
		return nil, Errorf(KindBadRequest, "bad_request", "a key keeps its kind when rotated: give only the name")
	}
	var out api.Key
	err := c.db.Update(func(tx store.Tx) error {
		k, err := c.ownedKey(tx, who, req.Name)
		if err != nil {
			return err
		}
		m, err := newKeyMaterial(k.KEM)
		if err != nil {
			return err
		}
		v := k.newest().Version + 1
		k.Versions = append(k.Versions, keyVersionRec{Version: v, Material: m, Created: c.now().UTC()})
		if err := putJSON(tx, bktKeys, c.keyKey(k.Name), k); err != nil {
			return err
		}
		out = k.api()
		return c.record(tx, audit.Entry{Type: audit.TypeKeyRotate, Tenant: k.Tenant, Actor: who.TokenID, Key: k.Name, KeyVersion: v})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PublicKey returns the public half of a recipient key's version (0: the
// newest), for anyone with an API token (owner, runner, admin): a data
// provider encrypts files to the key with it. A missing key, another
// tenant's symmetric key and a symmetric key of the caller's own all answer
// "no recipient key", so only recipient keys' names can be learnt here.
func (c *Core) PublicKey(ctx context.Context, who *Caller, name string, version uint32) (*api.PublicKey, error) {
	if err := Require(who, api.RoleOwner, api.RoleRunner, api.RoleAdmin); err != nil {
		return nil, err
	}
	if err := envelope.CheckKeyName(name); err != nil {
		return nil, badRequest(err)
	}
	var out api.PublicKey
	err := c.db.View(func(tx store.Tx) error {
		var k keyRec
		if err := getJSON(tx, bktKeys, c.keyKey(name), &k); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound("no recipient key %s", name)
			}
			return err
		}
		if k.KEM == "" {
			return notFound("no recipient key %s", name)
		}
		kv := k.newest()
		if version != 0 {
			if kv = k.version(version); kv == nil {
				return notFound("recipient key %s has no version %d", name, version)
			}
		}
		id, err := kv.identity(k.KEM)
		if err != nil {
			return err
		}
		r := id.Recipient()
		out = api.PublicKey{Key: k.Name, Version: kv.Version, Recipient: k.KEM, KeyID: r.ID(), PublicKey: r.String()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListKeys lists the caller's keys, or every key for an admin (owner,
// admin). An administrator's listing is on the trail of every tenant whose
// keys it shows.
func (c *Core) ListKeys(ctx context.Context, who *Caller) ([]api.Key, error) {
	if err := Require(who, api.RoleOwner, api.RoleAdmin); err != nil {
		return nil, err
	}
	var out []api.Key
	list := func(tx store.Tx) error {
		out = []api.Key{}
		return tx.Scan(bktKeys, nil, nil, func(_, v []byte) error {
			var k keyRec
			if err := json.Unmarshal(v, &k); err != nil {
				return err
			}
			if who.Role == api.RoleAdmin || k.Tenant == who.Tenant {
				out = append(out, k.api())
			}
			return nil
		})
	}
	if who.Role != api.RoleAdmin {
		return out, c.db.View(list)
	}
	err := c.db.Update(func(tx store.Tx) error {
		if err := list(tx); err != nil {
			return err
		}
		count := map[string]int{}
		var tenants []string
		for _, k := range out {
			if count[k.Tenant] == 0 {
				tenants = append(tenants, k.Tenant)
			}
			count[k.Tenant]++
		}
		slices.Sort(tenants)
		for _, t := range tenants {
			e := audit.Entry{Type: audit.TypeKeyList, Tenant: t, Actor: who.TokenID, Reason: fmt.Sprintf("an administrator (tenant %s) listed this tenant's %d keys", who.Tenant, count[t])}
			if err := c.record(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// SetPolicy sets or replaces a key's release policy from a YAML or JSON
// document (owner) and returns it as parsed.
func (c *Core) SetPolicy(ctx context.Context, who *Caller, key string, doc []byte) (*policy.Policy, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	p, err := policy.Parse(doc)
	if err != nil {
		return nil, Errorf(KindBadRequest, "bad_policy", "%v", err)
	}
	js, err := p.JSON()
	if err != nil {
		return nil, err
	}
	err = c.db.Update(func(tx store.Tx) error {
		k, err := c.ownedKey(tx, who, key)
		if err != nil {
			return err
		}
		k.Policy = js
		if err := putJSON(tx, bktKeys, c.keyKey(k.Name), k); err != nil {
			return err
		}
		return c.record(tx, audit.Entry{Type: audit.TypePolicySet, Tenant: k.Tenant, Actor: who.TokenID, Key: k.Name, Reason: policySummary(p)})
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// policySummary records what a policy accepts in its audit entry (the
// digest identifies the exact document).
func policySummary(p *policy.Policy) string {
	js, _ := p.JSON()
	var plats []string
	for k := range p.Platforms {
		plats = append(plats, string(k))
	}
	slices.Sort(plats)
	return fmt.Sprintf("policy sha256:%x platforms=%s jobs=%d", sha256.Sum256(js), strings.Join(plats, ","), len(p.Jobs))
}

// GetPolicy returns a key's policy as stored (JSON) (owner).
func (c *Core) GetPolicy(ctx context.Context, who *Caller, key string) (json.RawMessage, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	var out json.RawMessage
	err := c.db.View(func(tx store.Tx) error {
		k, err := c.ownedKey(tx, who, key)
		if err != nil {
			return err
		}
		if len(k.Policy) == 0 {
			return notFound("key %s has no policy (nothing is ever released without one)", key)
		}
		out = k.Policy
		return nil
	})
	return out, err
}

// GenerateDataKey returns a fresh data key and its form wrapped under the
// key's newest version, bound to req.AAD (owner).
func (c *Core) GenerateDataKey(ctx context.Context, who *Caller, req *api.GenerateDataKeyRequest) (*api.DataKey, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	var out api.DataKey
	err := c.db.Batch(func(tx store.Tx) error {
		clear(out.DataKey) // Batch may rerun fn
		k, err := c.ownedKey(tx, who, req.Key)
		if err != nil {
			return err
		}
		dk, wrapped, v, err := wrapDataKey(k, req.AAD)
		if err != nil {
			var ue *errUnwrap
			if errors.As(err, &ue) {
				return Errorf(KindConflict, ue.rule, "%v", err)
			}
			return err
		}
		out = api.DataKey{Key: k.Name, Version: v, DataKey: dk, Wrapped: wrapped}
		return c.record(tx, audit.Entry{Type: audit.TypeDataKey, Tenant: k.Tenant, Actor: who.TokenID, Key: k.Name, KeyVersion: v, Decision: audit.Allow})
	})
	if err != nil {
		clear(out.DataKey)
		return nil, err
	}
	return &out, nil
}

// Decrypt unwraps a data key wrapped under one of the caller's keys with
// the same AAD (owner).
func (c *Core) Decrypt(ctx context.Context, who *Caller, req *api.DecryptRequest) (*api.DataKey, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	var out api.DataKey
	err := c.db.Batch(func(tx store.Tx) error {
		clear(out.DataKey) // Batch may rerun fn
		k, err := c.ownedKey(tx, who, req.Key)
		if err != nil {
			return err
		}
		dk, v, err := unwrapDataKey(k, req.Wrapped, req.AAD)
		if err != nil {
			var ue *errUnwrap
			if errors.As(err, &ue) {
				kind := KindBadRequest
				if ue.rule == api.RuleKeyDisabled || ue.rule == api.RuleKeyDestroyed {
					kind = KindConflict
				}
				return Errorf(kind, ue.rule, "%v", err)
			}
			return err
		}
		out = api.DataKey{Key: k.Name, Version: v, DataKey: dk, Wrapped: req.Wrapped}
		return c.record(tx, audit.Entry{Type: audit.TypeDecrypt, Tenant: k.Tenant, Actor: who.TokenID, Key: k.Name, KeyVersion: v, Decision: audit.Allow})
	})
	if err != nil {
		clear(out.DataKey)
		return nil, err
	}
	return &out, nil
}

// DisableKeyVersion disables one version of a key (owner): while disabled
// it wraps, unwraps and releases nothing. Audited on the key's trail.
func (c *Core) DisableKeyVersion(ctx context.Context, who *Caller, req *api.KeyVersionRequest) (*api.Key, error) {
	return c.changeVersion(who, req, audit.TypeKeyDisable, func(kv *keyVersionRec) error {
		switch kv.State {
		case api.KeyDisabled:
			return Errorf(KindConflict, "conflict", "key %s version %d is already disabled", req.Key, kv.Version)
		case api.KeyDestroyed:
			return Errorf(KindConflict, "conflict", "key %s version %d was destroyed", req.Key, kv.Version)
		}
		kv.State = api.KeyDisabled
		return nil
	})
}

// EnableKeyVersion enables a disabled version again (owner).
func (c *Core) EnableKeyVersion(ctx context.Context, who *Caller, req *api.KeyVersionRequest) (*api.Key, error) {
	return c.changeVersion(who, req, audit.TypeKeyEnable, func(kv *keyVersionRec) error {
		switch kv.State {
		case "":
			return Errorf(KindConflict, "conflict", "key %s version %d is already enabled", req.Key, kv.Version)
		case api.KeyDestroyed:
			return Errorf(KindConflict, "conflict", "key %s version %d was destroyed: it can never be enabled again", req.Key, kv.Version)
		}
		kv.State = ""
		return nil
	})
}

// DestroyKeyVersion erases a disabled version's key material (owner):
// whatever it wrapped can never be decrypted again, by anyone; its number
// is never reused. The store is then compacted, so the material is gone
// from the database file and from backups taken afterwards (backups taken
// before still hold it, under the root key).
func (c *Core) DestroyKeyVersion(ctx context.Context, who *Caller, req *api.KeyVersionRequest) (*api.Key, error) {
	k, err := c.changeVersion(who, req, audit.TypeKeyDestroy, func(kv *keyVersionRec) error {
		switch kv.State {
		case "":
			return Errorf(KindConflict, "conflict", "key %s version %d is enabled: disable it first (ppml key disable), then destroy it", req.Key, kv.Version)
		case api.KeyDestroyed:
			return Errorf(KindConflict, "conflict", "key %s version %d was already destroyed", req.Key, kv.Version)
		}
		clear(kv.Material)
		kv.Material, kv.State = nil, api.KeyDestroyed
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.db.Compact(); err != nil {
		// The version is destroyed in the state; only older copies of the
		// record remain in free space until the next compaction.
		c.cfg.Logger.Error("compacting the store after destroying a key version failed; the old record stays in the file's free space until a later destroy compacts it", "key", req.Key, "version", req.Version, "error", err.Error())
	}
	return k, nil
}

// changeVersion applies change to one version of an owned key and audits it.
func (c *Core) changeVersion(who *Caller, req *api.KeyVersionRequest, t audit.Type, change func(*keyVersionRec) error) (*api.Key, error) {
	if err := Require(who, api.RoleOwner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	var out api.Key
	err := c.db.Update(func(tx store.Tx) error {
		k, err := c.ownedKey(tx, who, req.Key)
		if err != nil {
			return err
		}
		kv := k.version(req.Version)
		if kv == nil {
			return notFound("key %s has no version %d (it has %d)", k.Name, req.Version, k.newest().Version)
		}
		if err := change(kv); err != nil {
			return err
		}
		kv.Changed = c.now().UTC()
		err = putJSON(tx, bktKeys, c.keyKey(k.Name), k)
		for i := range k.Versions {
			clear(k.Versions[i].Material)
		}
		if err != nil {
			return err
		}
		out = k.api()
		return c.record(tx, audit.Entry{Type: t, Tenant: k.Tenant, Actor: who.TokenID, Key: k.Name, KeyVersion: req.Version})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
