package kms

import (
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/policy"
	"github.com/ppml/ppml/store"
)

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func sortStrings(s []string) []string { slices.Sort(s); return s }

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	ch, err := s.nonces.issue(c.tokenID)
	if errors.Is(err, errTooManyNonces) {
		return nil, apiErr(http.StatusTooManyRequests, "rate_limited", "%v", err)
	}
	return ch, err
}

// TypeOutputKey is the audit entry of a fresh data key issued, inside a
// release, to an attested TEE for a job output (an input key's release is
// audit.TypeRelease). Denials of either are audit.TypeDenial; an output
// key's denial reason starts with "output key: ".
const TypeOutputKey audit.Type = "output_key"

// TypeDataKey is the audit entry of a data key generated for an owner
// (POST /v1/datakey, what ppml encrypt --key kms://... calls).
const TypeDataKey audit.Type = "data_key"

// Rules of release denials that are not policy rules.
const (
	RuleNonce      = "nonce"       // unknown, used, expired or foreign nonce
	RuleManifest   = "manifest"    // the job manifest does not parse
	RuleReportData = "report_data" // evidence binds other data than nonce, job and key
	RulePublicKey  = "public_key"  // the ephemeral key does not parse
	RuleUnknownKey = "unknown_key"
	RuleNoPolicy   = "no_policy"
	// attestation failures are "attestation:" + the verifier's check name
)

// KeyName returns the key name of a release item's ref: a kms:// reference's
// KEY (its version, when given, must match the wrapped key's) or a bare name.
func keyNameOf(ref string) (string, uint32, error) {
	if strings.HasPrefix(ref, "kms://") {
		kr, err := envelope.ParseKeyRef(ref)
		if err != nil {
			return "", 0, err
		}
		return kr.Name, kr.Version, nil
	}
	if !envelope.ValidKeyName(ref) {
		return "", 0, fmt.Errorf("key %q: not a kms:// reference or key name", ref)
	}
	return ref, 0, nil
}

// digestCache remembers the job digests of recently seen manifests: a job
// runs many TEEs (and retries) with the same manifest, and parsing YAML is
// the costliest step of a release after the signatures.
type digestCache struct {
	mu sync.Mutex
	m  map[[32]byte][]byte
}

const digestCacheSize = 4096

func (c *digestCache) digest(manifest []byte) ([]byte, error) {
	h := sha256.Sum256(manifest)
	c.mu.Lock()
	d, ok := c.m[h]
	c.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := JobDigest(manifest)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= digestCacheSize {
		c.m = map[[32]byte][]byte{}
	}
	c.m[h] = d
	c.mu.Unlock()
	return d, nil
}

// JobDigest is the job identity the release protocol uses: SHA-256 of the
// canonical form of the manifest (package job).
func JobDigest(manifest []byte) ([]byte, error) {
	m, err := job.Parse(manifest, "/")
	if err != nil {
		return nil, err
	}
	d := m.Digest()
	return d[:], nil
}

type releaseCtx struct {
	req    *api.ReleaseRequest
	c      *caller
	job    []byte
	claims *attest.Claims
}

// deny records a refusal of every requested key for a reason that is not
// about one key (nonce, evidence, report data) and returns the 403.
func (s *Server) denyAll(st *state, rc *releaseCtx, rule, reason string) error {
	reason = truncate(reason, maxReason)
	var ds []api.Denial
	for _, it := range rc.req.Keys {
		ds = append(ds, api.Denial{Key: it.Ref, Rule: rule, Reason: reason})
	}
	for _, it := range rc.req.Outputs {
		ds = append(ds, api.Denial{Key: it.Ref, Rule: rule, Reason: "output key: " + reason})
	}
	if err := s.auditDenials(st, rc, ds); err != nil {
		return err
	}
	return denied(ds)
}

// maxReason bounds a denial reason: reasons quote parser and verifier
// errors about attacker-supplied bytes, and an audit entry is bounded.
const maxReason = 1024

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func denied(ds []api.Denial) error {
	msg := fmt.Sprintf("release refused: key %s: %s: %s", ds[0].Key, ds[0].Rule, ds[0].Reason)
	if len(ds) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(ds)-1)
	}
	return &httpError{status: http.StatusForbidden, body: api.Error{Code: "denied", Message: msg, Denials: ds}}
}

func (s *Server) auditDenials(st *state, rc *releaseCtx, ds []api.Denial) error {
	for _, d := range ds {
		s.metrics.denials.WithLabelValues(d.Rule).Inc()
	}
	return st.db.Batch(func(tx *store.Tx) error {
		for _, d := range ds {
			e := s.releaseEntry(rc, audit.TypeDenial, audit.Deny)
			e.Rule, e.Reason = d.Rule, d.Reason
			e.Key = d.Key
			if name, _, err := keyNameOf(d.Key); err == nil {
				e.Key = name
				var k keyRec
				if err := getJSON(tx, bktKeys, keyKey(st.db, name), &k); err == nil {
					e.Tenant = k.Tenant
				}
			}
			if _, err := st.log.Append(tx.Bolt(), e); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Server) releaseEntry(rc *releaseCtx, t audit.Type, decision string) audit.Entry {
	e := audit.Entry{Type: t, Actor: rc.c.tokenID, Decision: decision, JobDigest: rc.job}
	if cl := rc.claims; cl != nil {
		e.Platform, e.Measurement, e.Signer, e.TCBStatus, e.Insecure = string(cl.Platform), cl.Measurement, cl.Signer, cl.TCBStatus, cl.Insecure
	} else {
		e.Platform = string(rc.req.Evidence.Platform)
	}
	return e
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, c *caller, st *state) (any, error) {
	var req api.ReleaseRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	rc := &releaseCtx{req: &req, c: c}
	if err := s.nonces.consume(req.Nonce, c.tokenID); err != nil {
		return nil, s.denyAll(st, rc, RuleNonce, err.Error())
	}
	jd, err := s.digests.digest(req.Manifest)
	if err != nil {
		return nil, s.denyAll(st, rc, RuleManifest, "the job manifest does not parse: "+err.Error())
	}
	rc.job = jd
	kemID := req.KEM
	if kemID == 0 {
		kemID = api.KEMX25519
	}
	kem, err := hpke.NewKEM(kemID)
	if err != nil {
		return nil, s.denyAll(st, rc, RulePublicKey, err.Error())
	}
	pub, err := kem.NewPublicKey(req.PublicKey)
	if err != nil {
		return nil, s.denyAll(st, rc, RulePublicKey, "the ephemeral public key does not parse: "+err.Error())
	}
	claims, err := s.verifier.Verify(r.Context(), &req.Evidence, attest.VerifyOptions{Time: st.now()})
	if err != nil {
		check := "evidence"
		var ce *attest.CheckError
		if errors.As(err, &ce) {
			check = ce.Check
		}
		return nil, s.denyAll(st, rc, "attestation:"+check, err.Error())
	}
	rc.claims = claims
	want := api.ReportData(req.Nonce, jd, req.PublicKey)
	if subtle.ConstantTimeCompare(want[:], claims.ReportData) != 1 {
		return nil, s.denyAll(st, rc, RuleReportData, "the evidence's report_data is not SHA-512(nonce ‖ job digest ‖ public key) for this request: it was made for another nonce, job or key")
	}

	type grant struct {
		item api.ReleaseKeyItem
		name string
		ver  uint32
		dk   []byte
		key  *keyRec
	}
	type outGrant struct {
		item    api.ReleaseOutputItem
		name    string
		ver     uint32
		dk      []byte
		wrapped []byte
		key     *keyRec
	}
	var grants []grant
	var outs []outGrant
	var ds []api.Denial
	var dkeys []*keyRec // dkeys[i] is the key of ds[i], when it exists
	now := st.now()
	// admit looks a key up and evaluates its policy; a nil *api.Denial
	// with a nil error means the policy allows this TEE and job.
	admit := func(tx *store.Tx, ref string) (*keyRec, string, uint32, *api.Denial, error) {
		name, refVer, err := keyNameOf(ref)
		if err != nil {
			return nil, "", 0, &api.Denial{Key: ref, Rule: RuleUnknownKey, Reason: truncate(err.Error(), maxReason)}, nil
		}
		var k keyRec
		if err := getJSON(tx, bktKeys, keyKey(st.db, name), &k); err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				return nil, "", 0, nil, err
			}
			return nil, name, 0, &api.Denial{Key: ref, Rule: RuleUnknownKey, Reason: "no key " + name}, nil
		}
		if len(k.Policy) == 0 {
			return &k, name, 0, &api.Denial{Key: ref, Rule: RuleNoPolicy, Reason: "key " + name + " has no release policy"}, nil
		}
		p, err := policy.Parse(k.Policy)
		if err != nil {
			return &k, name, 0, &api.Denial{Key: ref, Rule: policy.RuleInvalidPolicy, Reason: truncate(err.Error(), maxReason)}, nil
		}
		if d := policy.Evaluate(p, claims, jd, now); !d.Allow {
			return &k, name, 0, &api.Denial{Key: ref, Rule: d.Rule, Reason: d.Reason}, nil
		}
		return &k, name, refVer, nil, nil
	}
	deny := func(k *keyRec, d api.Denial) {
		ds = append(ds, d)
		dkeys = append(dkeys, k)
	}
	err = st.db.Batch(func(tx *store.Tx) error {
		// Batch may rerun fn.
		for _, g := range grants {
			clear(g.dk)
		}
		for _, o := range outs {
			clear(o.dk)
		}
		grants, outs, ds, dkeys = grants[:0], outs[:0], ds[:0], dkeys[:0]
		for _, it := range req.Keys {
			k, name, refVer, d, err := admit(tx, it.Ref)
			if err != nil {
				return err
			}
			if d != nil {
				deny(k, *d)
				continue
			}
			dk, v, err := unwrapDataKey(k, it.Wrapped, it.AAD)
			if err != nil {
				var ue *errUnwrap
				if !errors.As(err, &ue) {
					return err
				}
				deny(k, api.Denial{Key: it.Ref, Rule: ue.rule, Reason: ue.msg})
				continue
			}
			if refVer != 0 && refVer != v {
				clear(dk)
				deny(k, api.Denial{Key: it.Ref, Rule: "key_version", Reason: fmt.Sprintf("the reference names version %d but the data key is wrapped under version %d", refVer, v)})
				continue
			}
			grants = append(grants, grant{item: it, name: name, ver: v, dk: dk, key: k})
		}
		// Output keys are gated by the same policy as input keys: the
		// owner decides which jobs, in which TEEs, may write under the key.
		for _, it := range req.Outputs {
			k, name, refVer, d, err := admit(tx, it.Ref)
			if err != nil {
				return err
			}
			if d != nil {
				d.Reason = "output key: " + d.Reason
				deny(k, *d)
				continue
			}
			if nv := k.newest().Version; refVer != 0 && refVer != nv {
				deny(k, api.Denial{Key: it.Ref, Rule: "key_version", Reason: fmt.Sprintf("output key: the reference names version %d, but new data keys are wrapped under the newest version, %d", refVer, nv)})
				continue
			}
			dk, wrapped, v, err := wrapDataKey(k, it.AAD)
			if err != nil {
				return err
			}
			outs = append(outs, outGrant{item: it, name: name, ver: v, dk: dk, wrapped: wrapped, key: k})
		}
		// All or nothing: a job needs every key it asks for, and a partial
		// release would hand out keys the job cannot use.
		if len(ds) > 0 {
			for i, d := range ds {
				e := s.releaseEntry(rc, audit.TypeDenial, audit.Deny)
				e.Key, e.Rule, e.Reason = d.Key, d.Rule, d.Reason
				if name, _, err := keyNameOf(d.Key); err == nil {
					e.Key = name
				}
				if dkeys[i] != nil {
					e.Tenant = dkeys[i].Tenant
				}
				if _, err := st.log.Append(tx.Bolt(), e); err != nil {
					return err
				}
			}
			return nil
		}
		for _, g := range grants {
			e := s.releaseEntry(rc, audit.TypeRelease, audit.Allow)
			e.Key, e.KeyVersion, e.Tenant = g.name, g.ver, g.key.Tenant
			if _, err := st.log.Append(tx.Bolt(), e); err != nil {
				return err
			}
		}
		for _, o := range outs {
			e := s.releaseEntry(rc, TypeOutputKey, audit.Allow)
			e.Key, e.KeyVersion, e.Tenant = o.name, o.ver, o.key.Tenant
			if _, err := st.log.Append(tx.Bolt(), e); err != nil {
				return err
			}
		}
		return nil
	})
	defer func() {
		for _, g := range grants {
			clear(g.dk)
		}
		for _, o := range outs {
			clear(o.dk)
		}
	}()
	if err != nil {
		return nil, err
	}
	if len(ds) > 0 {
		for _, d := range ds {
			s.metrics.denials.WithLabelValues(d.Rule).Inc()
		}
		return nil, denied(ds)
	}
	resp := &api.ReleaseResponse{Suite: api.ReleaseSuite{KEM: kemID, KDF: hpkeKDF, AEAD: hpkeAEAD}, Job: jd, Claims: claims}
	var names []string
	for _, g := range grants {
		sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), api.ReleaseInfo(req.Nonce, g.item.Ref), g.dk)
		if err != nil {
			return nil, fmt.Errorf("seal key %s: %w", g.name, err)
		}
		resp.Keys = append(resp.Keys, api.ReleasedKey{Ref: g.item.Ref, Key: g.name, Version: g.ver, Sealed: sealed})
		names = append(names, g.name)
	}
	for i, o := range outs {
		sealed, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), api.OutputInfo(req.Nonce, i, o.item.Ref), o.dk)
		if err != nil {
			return nil, fmt.Errorf("seal output key %s: %w", o.name, err)
		}
		resp.Outputs = append(resp.Outputs, api.ReleasedOutput{Ref: o.item.Ref, Key: o.name, Version: o.ver, Sealed: sealed, Wrapped: o.wrapped})
		names = append(names, o.name)
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	tc := TokenClaims{
		Issuer: s.cfg.Issuer, Subject: hex.EncodeToString(jd), IssuedAt: now.Unix(), Expiry: now.Add(s.cfg.TokenTTL).Unix(), ID: hex.EncodeToString(jti),
		Platform: string(claims.Platform), TEEType: claims.TEEType, Measurement: claims.Measurement.String(), Signer: claims.Signer.String(),
		TCBStatus: claims.TCBStatus, JobDigest: hex.EncodeToString(jd), Insecure: claims.Insecure, Debug: claims.Debug, Keys: names,
	}
	if resp.Token, err = signJWT(st.jwtKey, tc); err != nil {
		return nil, err
	}
	s.metrics.releases.WithLabelValues(string(claims.Platform)).Add(float64(len(grants) + len(outs)))
	s.logger.Info("release", "platform", string(claims.Platform), "insecure", claims.Insecure, "job", hex.EncodeToString(jd), "keys", strings.Join(names, ","))
	return resp, nil
}

// HPKE identifiers of the suite: HKDF-SHA256 and AES-256-GCM.
const (
	hpkeKDF  uint16 = 0x0001
	hpkeAEAD uint16 = 0x0002
)
