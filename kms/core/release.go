package core

import (
	"context"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
)

// HPKE identifiers of the suite: HKDF-SHA256 and AES-256-GCM.
const (
	hpkeKDF  uint16 = 0x0001
	hpkeAEAD uint16 = 0x0002
)

// Challenge issues a single-use nonce for the caller's token (runner).
func (c *Core) Challenge(ctx context.Context, who *Caller) (*api.Challenge, error) {
	if err := Require(who, api.RoleRunner); err != nil {
		return nil, err
	}
	ch, err := c.nonces.issue(who.TokenID)
	if errors.Is(err, errTooManyNonces) {
		return nil, Errorf(KindRateLimited, "rate_limited", "%v", err)
	}
	if err != nil {
		return nil, err
	}
	return &ch, nil
}

// JobDigest is the job identity the release protocol uses: SHA-256 of the
// canonical form of the manifest (package job), which covers every engine's
// parameters with their defaults made explicit. The service knows every
// engine's parameters (engine/specs) without linking any engine.
func JobDigest(manifest []byte) ([]byte, error) {
	m, err := job.Parse(manifest, "/", specs.All)
	if err != nil {
		return nil, err
	}
	d := m.Digest()
	return d[:], nil
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

// releaseCtx is one release request on its way through the steps.
type releaseCtx struct {
	req    *api.ReleaseRequest
	who    *Caller
	kem    uint16
	pub    hpke.PublicKey
	now    time.Time      // policies and the attestation token are evaluated at this time
	job    []byte         // the job digest, once the manifest parsed
	claims *attest.Claims // once the evidence verified
	// inputOwners are the tenants owning the requested input keys that
	// exist (an output key must belong to one, or name the job).
	inputOwners map[string]bool
}

// refusal is why a request is refused as a whole, before any key is looked at.
type refusal struct{ rule, reason string }

// Release runs the key service's side of the release protocol
// (docs/api/release-protocol.md) for a runner: the request as a whole
// passes the checks of releaseChecks in order, then each requested key is
// admitted by its own policy and every decision is audited in one
// transaction, all or nothing; the granted data keys are then sealed to
// the TEE's ephemeral key, with a signed attestation token. Any refusal is
// a KindDenied error naming each key and the rule that refused it, and is
// on each key's audit trail.
func (c *Core) Release(ctx context.Context, who *Caller, req *api.ReleaseRequest) (*api.ReleaseResponse, error) {
	if err := Require(who, api.RoleRunner); err != nil {
		return nil, err
	}
	if err := check(req); err != nil {
		return nil, err
	}
	rc := &releaseCtx{req: req, who: who, now: c.now()}
	for _, step := range c.releaseChecks() {
		if r := step(ctx, rc); r != nil {
			return nil, c.denyAll(rc, r)
		}
	}
	// Decide, seal (wrap each key to the TEE), then record the outcome:
	// the audit log says "released" only for keys that were sealed, and
	// nothing leaves before it says so.
	for attempt := 0; ; attempt++ {
		g, err := c.decide(rc)
		if err != nil {
			return nil, err
		}
		var resp *api.ReleaseResponse
		if len(g.denials) == 0 {
			if resp, err = c.seal(rc, g); err != nil {
				c.cfg.Logger.Error("release: sealing the granted keys failed; recorded as denied", "error", err.Error())
				g.wrapFailed(err)
			}
		}
		err = c.commit(rc, g)
		g.zero()
		if errors.Is(err, errKeyChanged) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(g.denials) > 0 {
			return nil, c.denied(g.denials)
		}
		c.released(rc, resp)
		return resp, nil
	}
}

// releaseChecks are the checks of a release request as a whole, in order:
// a refusal of one stops the request.
func (c *Core) releaseChecks() []func(context.Context, *releaseCtx) *refusal {
	return []func(context.Context, *releaseCtx) *refusal{
		c.consumeNonce,
		c.digestManifest,
		c.parsePublicKey,
		c.verifyEvidence,
		c.checkReportData,
	}
}

// consumeNonce uses up the challenge: whatever happens next, it is gone.
func (c *Core) consumeNonce(_ context.Context, rc *releaseCtx) *refusal {
	if err := c.nonces.consume(rc.req.Nonce, rc.who.TokenID); err != nil {
		return &refusal{api.RuleNonce, err.Error()}
	}
	return nil
}

// digestManifest computes the job digest the evidence must bind.
func (c *Core) digestManifest(_ context.Context, rc *releaseCtx) *refusal {
	jd, err := c.digests.digest(rc.req.Manifest)
	if err != nil {
		return &refusal{api.RuleManifest, "the job manifest does not parse: " + err.Error()}
	}
	rc.job = jd
	return nil
}

// parsePublicKey reads the TEE's ephemeral HPKE key.
func (c *Core) parsePublicKey(_ context.Context, rc *releaseCtx) *refusal {
	rc.kem = rc.req.KEM
	if rc.kem == 0 {
		rc.kem = api.KEMX25519
	}
	kem, err := hpke.NewKEM(rc.kem)
	if err != nil {
		return &refusal{api.RulePublicKey, err.Error()}
	}
	if rc.pub, err = kem.NewPublicKey(rc.req.PublicKey); err != nil {
		return &refusal{api.RulePublicKey, "the ephemeral public key does not parse: " + err.Error()}
	}
	return nil
}

// verifyEvidence verifies the evidence (signatures, chains, collateral,
// TCB) into claims.
func (c *Core) verifyEvidence(ctx context.Context, rc *releaseCtx) *refusal {
	claims, err := c.cfg.Verifier.Verify(ctx, &rc.req.Evidence, attest.VerifyOptions{Time: c.now()})
	if err != nil {
		check := "evidence"
		var ce *attest.CheckError
		if errors.As(err, &ce) {
			check = ce.Check
		}
		return &refusal{"attestation:" + check, err.Error()}
	}
	rc.claims = claims
	return nil
}

// checkReportData recomputes what the evidence must bind: this nonce, this
// job and this ephemeral key. Anything else is evidence made for another
// request (a replay).
func (c *Core) checkReportData(_ context.Context, rc *releaseCtx) *refusal {
	want := api.ReportData(rc.req.Nonce, rc.job, rc.req.PublicKey)
	if subtle.ConstantTimeCompare(want[:], rc.claims.ReportData) != 1 {
		return &refusal{api.RuleReportData, "the evidence's report_data is not SHA-512(nonce ‖ job digest ‖ public key) for this request: it was made for another nonce, job or key"}
	}
	return nil
}
