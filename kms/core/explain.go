package core

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/store"
)

// DescribeBucket names the service's buckets for operators, in the
// messages of a failed state check (store.Options.Describe).
func DescribeBucket(bucket string) string {
	switch bucket {
	case bktTenants:
		return "tenants"
	case bktTokens:
		return "API tokens"
	case bktKeys:
		return "keys (versions, key material and policies)"
	case bktMeta:
		return "the service's signing keys, deployment CA and bootstrap marker"
	case bktCertPolicies:
		return "certificate policies"
	case bktCerts:
		return "workload certificates (issued and revoked)"
	case "_store":
		return "the store's own records"
	}
	return auditlog.DescribeBucket(bucket)
}

// ExplainState names what is wrong in a bucket that failed the store's
// state check (store.Options.Explain): the markers that were deleted, and
// records that contradict the audit log — a token the log revoked that is
// not revoked, a policy or key version state other than the one the log
// last recorded — which is what single values copied back from a backup
// look like. It reads the store through tx and never shows a secret.
func ExplainState(db *store.DB, tx store.Tx, bucket string, present func(key []byte) bool) []string {
	switch bucket {
	case bktMeta:
		var out []string
		for _, m := range []struct{ key, what string }{
			{"bootstrapped", "the bootstrap marker meta/bootstrapped was deleted (without it a start would issue a new admin bootstrap token)"},
			{"token_signing_key", "the attestation token signing key meta/token_signing_key was deleted"},
			{"audit_signing_key", "the audit tree head signing key meta/audit_signing_key was deleted"},
			{metaCAKey, "the deployment CA key meta/ca_key was deleted (without it a start would create a new deployment CA)"},
			{metaCACert, "the deployment CA certificate meta/ca_cert was deleted"},
		} {
			if !present([]byte(m.key)) {
				out = append(out, m.what)
			}
		}
		return out
	case bktTokens, bktKeys, bktTenants:
		h := readHistory(db, tx)
		if h == nil {
			return nil
		}
		var out []string
		switch bucket {
		case bktTokens:
			out = h.explainTokens(tx, present)
		case bktKeys:
			out = h.explainKeys(db, tx, present)
		default:
			out = h.explainTenants(db, present)
		}
		slices.Sort(out)
		return out
	}
	return auditlog.Explain(db, tx, bucket, present)
}

// history is what the audit log says the state should be.
type history struct {
	tokenIssued  map[string]uint64 // token id -> entry
	tokenRevoked map[string]uint64
	tenants      map[string]uint64 // created
	keys         map[string]*keyHistory
}

type keyHistory struct {
	created, newestAt uint64
	newest            uint32
	policy            string // "sha256:HEX" of the last policy set
	policyAt          uint64
	states            map[uint32]string // version -> last state set
	stateAt           map[uint32]uint64
}

func readHistory(db *store.DB, tx store.Tx) *history {
	h := &history{tokenIssued: map[string]uint64{}, tokenRevoked: map[string]uint64{}, tenants: map[string]uint64{}, keys: map[string]*keyHistory{}}
	lg := auditlog.New(auditlog.Config{Blinder: db})
	for from := uint64(0); ; {
		es, err := lg.List(tx, from, 1000)
		if err != nil {
			return nil
		}
		if len(es) == 0 {
			return h
		}
		for i := range es {
			h.add(&es[i])
		}
		from = es[len(es)-1].Index + 1
	}
}

func (h *history) key(name string) *keyHistory {
	k := h.keys[name]
	if k == nil {
		k = &keyHistory{states: map[uint32]string{}, stateAt: map[uint32]uint64{}}
		h.keys[name] = k
	}
	return k
}

func (h *history) add(e *audit.Entry) {
	word := func(prefix string) string {
		rest, ok := strings.CutPrefix(e.Reason, prefix)
		if !ok {
			return ""
		}
		w, _, _ := strings.Cut(rest, " ")
		return w
	}
	switch e.Type {
	case audit.TypeTokenIssue:
		if id := word("token "); id != "" {
			h.tokenIssued[id] = e.Index
		}
	case audit.TypeTokenRevoke:
		if id := word("revoked token "); id != "" {
			h.tokenRevoked[id] = e.Index
		}
	case audit.TypeTenant:
		if name := word("created tenant "); name != "" {
			h.tenants[name] = e.Index
		}
	case audit.TypeKeyCreate, audit.TypeKeyRotate:
		k := h.key(e.Key)
		if e.Type == audit.TypeKeyCreate {
			k.created = e.Index
		}
		k.newest, k.newestAt = e.KeyVersion, e.Index
	case audit.TypePolicySet:
		k := h.key(e.Key)
		k.policy, k.policyAt = word("policy "), e.Index
	case audit.TypeKeyDisable, audit.TypeKeyEnable, audit.TypeKeyDestroy:
		k := h.key(e.Key)
		st := map[audit.Type]string{audit.TypeKeyDisable: api.KeyDisabled, audit.TypeKeyEnable: api.KeyEnabled, audit.TypeKeyDestroy: api.KeyDestroyed}[e.Type]
		k.states[e.KeyVersion], k.stateAt[e.KeyVersion] = st, e.Index
	}
}

func (h *history) explainTokens(tx store.Tx, present func([]byte) bool) []string {
	var out []string
	for id, at := range h.tokenIssued {
		if !present([]byte(id)) {
			out = append(out, fmt.Sprintf("API token %s (issued in audit entry %d) was deleted", id, at))
			continue
		}
		var t tokenRec
		if err := getJSON(tx, bktTokens, []byte(id), &t); err != nil {
			continue // the store names rows that do not authenticate
		}
		if at, ok := h.tokenRevoked[id]; ok && !t.Revoked {
			out = append(out, fmt.Sprintf("API token %s of tenant %s is not revoked, but audit entry %d revoked it: its record was replaced by an older copy, which would make it work again", id, t.Tenant, at))
		}
	}
	return out
}

func (h *history) explainKeys(db *store.DB, tx store.Tx, present func([]byte) bool) []string {
	var out []string
	for name, kh := range h.keys {
		kk := db.Blind([]byte("key\x00" + name))
		if !present(kk) {
			out = append(out, fmt.Sprintf("key %s (created in audit entry %d) was deleted", name, kh.created))
			continue
		}
		var k keyRec
		if err := getJSON(tx, bktKeys, kk, &k); err != nil {
			continue
		}
		if nv := k.newest().Version; nv < kh.newest {
			out = append(out, fmt.Sprintf("key %s has versions up to %d, but audit entry %d created version %d: its record was replaced by an older copy", name, nv, kh.newestAt, kh.newest))
		}
		if kh.policy != "" {
			sum := sha256.Sum256(k.Policy)
			if got := "sha256:" + hex.EncodeToString(sum[:]); len(k.Policy) == 0 || got != kh.policy {
				out = append(out, fmt.Sprintf("the release policy of key %s is not the one audit entry %d set (%s): its record was replaced by an older copy with another policy", name, kh.policyAt, kh.policy))
			}
		}
		for v, st := range kh.states {
			if kv := k.version(v); kv != nil && kv.state() != st {
				out = append(out, fmt.Sprintf("version %d of key %s is %s, but audit entry %d made it %s: its record was replaced by an older copy", v, name, kv.state(), kh.stateAt[v], st))
			}
		}
		for i := range k.Versions {
			clear(k.Versions[i].Material)
		}
	}
	return out
}

func (h *history) explainTenants(db *store.DB, present func([]byte) bool) []string {
	var out []string
	for name, at := range h.tenants {
		if !present(db.Blind([]byte("tenant\x00" + name))) {
			out = append(out, fmt.Sprintf("tenant %s (created in audit entry %d) was deleted", name, at))
		}
	}
	return out
}
