package core

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/jwt"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/store"
)

// keyNameOf returns the key name of a release item's ref: a kms://
// reference's KEY (and its version, when given) or a bare key name.
func keyNameOf(ref string) (string, uint32, error) {
	if strings.HasPrefix(ref, "kms://") {
		kr, err := envelope.ParseKeyRef(ref)
		if err != nil {
			return "", 0, fmt.Errorf("%s is not a valid kms:// reference", quoteRef(ref))
		}
		return kr.Name, kr.Version, nil
	}
	if !envelope.ValidKeyName(ref) {
		return "", 0, fmt.Errorf("%s is not a kms:// reference or key name", quoteRef(ref))
	}
	return ref, 0, nil
}

// refName is a release item's reference as answers and audit entries show
// it: itself when it is a valid reference or key name, else quoted and cut
// to 64 bytes, so that no control character or terminal escape a runner
// sends reaches a log, an audit entry or a terminal.
func refName(ref string) string {
	if _, _, err := keyNameOf(ref); err == nil {
		return ref
	}
	return quoteRef(ref)
}

func quoteRef(ref string) string { return strconv.QuoteToASCII(truncate(ref, 64)) }

// maxReason bounds a denial reason: reasons quote parser and verifier
// errors about attacker-supplied bytes, and an audit entry is bounded.
const maxReason = 1024

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// denial is a refused key: the answer's api.Denial and, when the key
// exists, its record (whose tenant the audit entry names). auditRule and
// auditReason, when set, are what the owner's trail records where the
// answer says less (see unavailable).
type denial struct {
	api.Denial
	key                    *keyRec
	auditRule, auditReason string
}

// unavailable is the answer for a key the caller may not learn anything
// about: one that does not exist and one without a (valid) release policy
// answer alike, so that a runner with valid evidence cannot tell which
// names exist. The owner's trail records which it was.
func unavailable(ref, name string) api.Denial {
	return api.Denial{Key: ref, Rule: api.RuleUnknownKey, Reason: "no key " + name + " is available to this job: it does not exist, or its owner has set no release policy"}
}

// denyAll refuses every requested key for a reason about the request as a
// whole, found before any key was looked at: it writes no entry per key
// (c.refuse counts it and sums it into the token's refusal summary) and
// returns the KindDenied error.
func (c *Core) denyAll(rc *releaseCtx, r *refusal) error {
	reason := truncate(r.reason, maxReason)
	var ds []api.Denial
	for _, it := range rc.req.Keys {
		ds = append(ds, api.Denial{Key: refName(it.Ref), Rule: r.rule, Reason: reason})
	}
	for _, it := range rc.req.Outputs {
		ds = append(ds, api.Denial{Key: refName(it.Ref), Rule: r.rule, Reason: "output key: " + reason})
	}
	c.refuse(rc.who, r.rule, len(ds))
	return deniedError(ds)
}

// denied counts the per-key refusals and makes the error the caller sees.
func (c *Core) denied(ds []denial) error {
	out := make([]api.Denial, len(ds))
	for i, d := range ds {
		out[i] = d.Denial
		if c.cfg.Observer != nil {
			c.cfg.Observer.Denied(d.rule())
		}
	}
	return deniedError(out)
}

// rule is the rule the owner's trail records.
func (d *denial) rule() string {
	if d.auditRule != "" {
		return d.auditRule
	}
	return d.Rule
}

func deniedError(out []api.Denial) error {
	msg := fmt.Sprintf("release refused: key %s: %s: %s", out[0].Key, out[0].Rule, out[0].Reason)
	if len(out) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(out)-1)
	}
	return &Error{Kind: KindDenied, Code: "denied", Message: msg, Denials: out}
}

// releaseEntry is the audit entry of a release decision, with what was
// verified about the TEE.
func releaseEntry(rc *releaseCtx, t audit.Type, decision string) audit.Entry {
	e := audit.Entry{Type: t, Actor: rc.who.TokenID, Decision: decision, JobDigest: rc.job}
	if cl := rc.claims; cl != nil {
		e.Platform, e.Measurement, e.Signer, e.TCBStatus, e.Insecure = string(cl.Platform), cl.Measurement, cl.Signer, cl.TCBStatus, cl.Insecure
	} else {
		e.Platform = string(rc.req.Evidence.Platform)
	}
	return e
}

// recordDenials audits each refused key, on its owner's trail when it
// exists. An entry names a key only by a valid key name; a reference that
// is none is quoted, cut short, in the reason.
func (c *Core) recordDenials(tx store.Tx, rc *releaseCtx, ds []denial) error {
	for _, d := range ds {
		e := releaseEntry(rc, audit.TypeDenial, audit.Deny)
		e.Rule, e.Field, e.Reason = d.rule(), d.Field, d.Reason
		if d.auditReason != "" {
			e.Reason = d.auditReason
		}
		if name, _, err := keyNameOf(d.Key); err == nil {
			e.Key = name
		}
		if d.key != nil {
			e.Tenant = d.key.Tenant
		}
		if err := c.record(tx, e); err != nil {
			return err
		}
	}
	return nil
}

// grant is a data key the release hands out: an input key unwrapped for
// item, or a fresh output key with its wrapped form.
type grant struct {
	ref     string
	name    string
	ver     uint32
	dk      []byte
	wrapped []byte // output keys only
	key     *keyRec
}

// grants is the outcome of the per-key decisions.
type grants struct {
	inputs, outputs []grant
	denials         []denial
}

func (g *grants) zero() {
	for _, x := range g.inputs {
		clear(x.dk)
	}
	for _, x := range g.outputs {
		clear(x.dk)
	}
}

// admit looks a requested key up and evaluates its policy against the
// verified claims and the job; a nil *denial and nil error admit it, with
// the key's policy.
func (c *Core) admit(tx store.Tx, rc *releaseCtx, ref string) (*keyRec, *policy.Policy, uint32, *denial, error) {
	name, refVer, err := keyNameOf(ref)
	if err != nil {
		return nil, nil, 0, &denial{Denial: api.Denial{Key: quoteRef(ref), Rule: api.RuleUnknownKey, Reason: truncate(err.Error(), maxReason)}}, nil
	}
	var k keyRec
	raw, err := tx.Get(bktKeys, c.keyKey(name))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, nil, 0, nil, err
		}
		return nil, nil, 0, &denial{Denial: unavailable(ref, name)}, nil
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, nil, 0, nil, err
	}
	k.raw = raw
	if len(k.Policy) == 0 {
		return &k, nil, 0, &denial{Denial: unavailable(ref, name), key: &k, auditRule: api.RuleNoPolicy, auditReason: "key " + name + " has no release policy"}, nil
	}
	p, err := policy.Parse(k.Policy)
	if err != nil {
		return &k, nil, 0, &denial{Denial: unavailable(ref, name), key: &k, auditRule: policy.RuleInvalidPolicy, auditReason: truncate(err.Error(), maxReason)}, nil
	}
	if d := policy.Evaluate(p, rc.claims, rc.job, rc.now); !d.Allow {
		// The key exists and has a valid policy, which the runner's
		// evidence was judged by: the field says no more than the reason.
		return &k, nil, 0, &denial{Denial: api.Denial{Key: ref, Rule: d.Rule, Field: d.Field, Reason: d.Reason}, key: &k}, nil
	}
	return &k, p, refVer, nil, nil
}

// grantInput admits an input key and unwraps the data key the TEE found in
// its envelope header.
func (c *Core) grantInput(tx store.Tx, rc *releaseCtx, it api.ReleaseKeyItem, g *grants) error {
	k, _, refVer, d, err := c.admit(tx, rc, it.Ref)
	if k != nil {
		rc.inputOwners[k.Tenant] = true // whatever its policy said of this job
	}
	if err != nil || d != nil {
		if d != nil {
			g.denials = append(g.denials, *d)
		}
		return err
	}
	dk, v, err := unwrapDataKey(k, it.Wrapped, it.AAD)
	if err != nil {
		var ue *errUnwrap
		if !errors.As(err, &ue) {
			return err
		}
		g.denials = append(g.denials, denial{Denial: api.Denial{Key: it.Ref, Rule: ue.rule, Reason: ue.msg}, key: k})
		return nil
	}
	if refVer != 0 && refVer != v {
		clear(dk)
		g.denials = append(g.denials, denial{Denial: api.Denial{Key: it.Ref, Rule: api.RuleKeyVersion, Reason: fmt.Sprintf("the reference names version %d but the data key is wrapped under version %d", refVer, v)}, key: k})
		return nil
	}
	g.inputs = append(g.inputs, grant{ref: it.Ref, name: k.Name, ver: v, dk: dk, key: k})
	return nil
}

// grantOutput admits an output key and makes a fresh data key wrapped
// under its newest version. Output keys are gated by the same policy as
// input keys: the owner decides which jobs, in which TEEs, may write under
// the key. And the key must belong to a tenant whose policy names the job:
// the owner of one of the job's input keys (whose policies admitted it), or
// an owner whose output key's policy lists the job's digest. Otherwise any
// job could make its results look like another tenant's data.
func (c *Core) grantOutput(tx store.Tx, rc *releaseCtx, it api.ReleaseOutputItem, g *grants) error {
	k, p, refVer, d, err := c.admit(tx, rc, it.Ref)
	if err != nil || d != nil {
		if d != nil {
			d.Reason = "output key: " + d.Reason
			if d.auditReason != "" {
				d.auditReason = "output key: " + d.auditReason
			}
			g.denials = append(g.denials, *d)
		}
		return err
	}
	if !rc.inputOwners[k.Tenant] && len(p.Jobs) == 0 {
		g.denials = append(g.denials, denial{Denial: api.Denial{Key: it.Ref, Rule: api.RuleOutputOwner,
			Reason: "output key: the job reads no input key of this key's owner, and the key's policy does not list the job's digest (jobs: [...]), which it must to take outputs of other tenants' jobs"}, key: k})
		return nil
	}
	if nv := k.newest().Version; refVer != 0 && refVer != nv {
		g.denials = append(g.denials, denial{Denial: api.Denial{Key: it.Ref, Rule: api.RuleKeyVersion, Reason: fmt.Sprintf("output key: the reference names version %d, but new data keys are wrapped under the newest version, %d", refVer, nv)}, key: k})
		return nil
	}
	dk, wrapped, v, err := wrapDataKey(k, it.AAD)
	if err != nil {
		var ue *errUnwrap
		if !errors.As(err, &ue) {
			return err
		}
		g.denials = append(g.denials, denial{Denial: api.Denial{Key: it.Ref, Rule: ue.rule, Reason: "output key: " + ue.msg}, key: k})
		return nil
	}
	g.outputs = append(g.outputs, grant{ref: it.Ref, name: k.Name, ver: v, dk: dk, wrapped: wrapped, key: k})
	return nil
}

// decide admits or refuses every requested key, unwrapping the input data
// keys and making the output ones, in a read transaction: nothing is
// recorded yet. All or nothing: a job needs every key it asks for, and a
// partial release would hand out keys the job cannot use.
func (c *Core) decide(rc *releaseCtx) (*grants, error) {
	g := &grants{}
	err := c.db.View(func(tx store.Tx) error {
		rc.inputOwners = map[string]bool{}
		for _, it := range rc.req.Keys {
			if err := c.grantInput(tx, rc, it, g); err != nil {
				return err
			}
		}
		for _, it := range rc.req.Outputs {
			if err := c.grantOutput(tx, rc, it, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(g.denials) > 0 {
		g.zero()
		g.inputs, g.outputs = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// errKeyChanged means a key record changed between the decision and its
// commit: the release is decided again.
var errKeyChanged = errors.New("a key changed while the release was decided")

// commit records the outcome of a decided (and, when granted, sealed)
// release in one transaction shared with concurrent releases: each
// denial, or each grant — after checking that every granted key's record
// is still the one the decision read, so that a policy set or a version
// disabled meanwhile is not bypassed.
func (c *Core) commit(rc *releaseCtx, g *grants) error {
	return c.db.Batch(func(tx store.Tx) error {
		if len(g.denials) > 0 {
			return c.recordDenials(tx, rc, g.denials)
		}
		for _, list := range [][]grant{g.inputs, g.outputs} {
			for _, x := range list {
				raw, err := tx.Get(bktKeys, c.keyKey(x.name))
				if errors.Is(err, store.ErrNotFound) || err == nil && !bytes.Equal(raw, x.key.raw) {
					return errKeyChanged
				}
				if err != nil {
					return err
				}
			}
		}
		for _, x := range g.inputs {
			if err := c.recordGrant(tx, rc, audit.TypeRelease, x); err != nil {
				return err
			}
		}
		for _, x := range g.outputs {
			if err := c.recordGrant(tx, rc, audit.TypeOutputKey, x); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *Core) recordGrant(tx store.Tx, rc *releaseCtx, t audit.Type, x grant) error {
	e := releaseEntry(rc, t, audit.Allow)
	e.Key, e.KeyVersion, e.Tenant = x.name, x.ver, x.key.Tenant
	return c.record(tx, e)
}

// seal seals each granted data key to the TEE's ephemeral key (HPKE, info
// bound to the nonce and the reference) and signs the attestation token.
// It runs before anything is recorded: a failure here turns the grants
// into denials (rule api.RuleWrap), so the audit log never says a key was
// released that was not.
func (c *Core) seal(rc *releaseCtx, g *grants) (*api.ReleaseResponse, error) {
	nonce, claims := rc.req.Nonce, rc.claims
	resp := &api.ReleaseResponse{Suite: api.ReleaseSuite{KEM: rc.kem, KDF: hpkeKDF, AEAD: hpkeAEAD}, Job: rc.job, Claims: claims}
	var names []string
	for _, x := range g.inputs {
		sealed, err := hpke.Seal(rc.pub, hpke.HKDFSHA256(), hpke.AES256GCM(), api.ReleaseInfo(nonce, x.ref), x.dk)
		if err != nil {
			return nil, fmt.Errorf("sealing key %s to the TEE's public key failed: %w", x.name, err)
		}
		resp.Keys = append(resp.Keys, api.ReleasedKey{Ref: x.ref, Key: x.name, Version: x.ver, Sealed: sealed})
		names = append(names, x.name)
	}
	for i, x := range g.outputs {
		sealed, err := hpke.Seal(rc.pub, hpke.HKDFSHA256(), hpke.AES256GCM(), api.OutputInfo(nonce, i, x.ref), x.dk)
		if err != nil {
			return nil, fmt.Errorf("sealing output key %s to the TEE's public key failed: %w", x.name, err)
		}
		resp.Outputs = append(resp.Outputs, api.ReleasedOutput{Ref: x.ref, Key: x.name, Version: x.ver, Sealed: sealed, Wrapped: x.wrapped})
		names = append(names, x.name)
	}
	now := rc.now
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return nil, fmt.Errorf("attestation token id: %w", err)
	}
	tc := jwt.Claims{
		Issuer: c.cfg.Issuer, Subject: hex.EncodeToString(rc.job), IssuedAt: now.Unix(), Expiry: now.Add(c.cfg.TokenTTL).Unix(), ID: hex.EncodeToString(jti),
		Platform: string(claims.Platform), TEEType: claims.TEEType, Measurement: claims.Measurement.String(), Signer: claims.Signer.String(),
		TCBStatus: claims.TCBStatus, JobDigest: hex.EncodeToString(rc.job), Insecure: claims.Insecure, Debug: claims.Debug, Keys: names,
	}
	var err error
	if resp.Token, err = jwt.Sign(c.jwtKey, tc); err != nil {
		return nil, fmt.Errorf("signing the attestation token failed: %w", err)
	}
	return resp, nil
}

// wrapFailed turns every grant into a denial saying why nothing could be
// released.
func (g *grants) wrapFailed(err error) {
	reason := truncate(err.Error(), maxReason)
	for _, list := range [][]grant{g.inputs, g.outputs} {
		for _, x := range list {
			g.denials = append(g.denials, denial{Denial: api.Denial{Key: x.ref, Rule: api.RuleWrap, Reason: reason}, key: x.key})
		}
	}
	g.zero()
	g.inputs, g.outputs = nil, nil
}

// released counts and logs a committed release.
func (c *Core) released(rc *releaseCtx, resp *api.ReleaseResponse) {
	var names []string
	for _, k := range resp.Keys {
		names = append(names, k.Key)
	}
	for _, k := range resp.Outputs {
		names = append(names, k.Key)
	}
	if c.cfg.Observer != nil {
		c.cfg.Observer.Released(string(rc.claims.Platform), len(names))
	}
	c.cfg.Logger.Info("release", "platform", string(rc.claims.Platform), "insecure", rc.claims.Insecure, "job", hex.EncodeToString(rc.job), "keys", strings.Join(names, ","))
}

// JWKS is the attestation token keys document (/.well-known/jwks.json).
func (c *Core) JWKS() map[string][]jwt.JWK {
	return map[string][]jwt.JWK{"keys": {jwt.JWKOf(&c.jwtKey.PublicKey)}}
}
