package policy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ppml/ppml/attest"
)

// Rule names: stable identifiers of the rule that denied a release, for
// audit entries, metrics labels and API errors.
const (
	RuleInvalidPolicy  = "invalid_policy"      // the policy itself fails validation (or is nil)
	RuleNoClaims       = "no_claims"           // no claims were given
	RuleNotYetValid    = "not_yet_valid"       // before not_before
	RuleExpired        = "expired"             // after not_after
	RulePlatform       = "platform"            // the platform is not listed
	RuleInsecure       = "insecure"            // insecure claims from a platform other than sim, or sim claims not marked insecure
	RuleDebug          = "debug"               // debuggable TEE and allow_debug is not set
	RuleMeasurement    = "measurement"         // measurement not in the list
	RuleSigner         = "signer"              // signer not in the list
	RuleProductID      = "product_id"          // product id differs
	RuleSecurityVer    = "security_version"    // below min_security_version
	RuleTCBStatus      = "tcb_status"          // TCB status not accepted
	RuleAdvisory       = "advisory"            // an advisory not in allowed_advisories
	RuleMigrationAgent = "snp_migration_agent" // SNP guest allows a migration agent
	RuleSMT            = "snp_smt"             // SNP guest allows SMT and allow_smt is false
	RuleJob            = "job_digest"          // job digest not in jobs
)

// Decision is the outcome of Evaluate.
type Decision struct {
	Allow bool `json:"allow"`
	// Rule is the stable name of the rule that denied (empty when allowed).
	Rule string `json:"rule,omitempty"`
	// Field is the policy field that denied, as a path into the document
	// (platforms.tdx.rtmr1, platforms.snp.min_reported_tcb.microcode), when
	// one field decided.
	Field string `json:"field,omitempty"`
	// Reason is one human sentence saying why: what the evidence holds and
	// what the policy accepts. It names no secret: measurements, statuses
	// and versions only.
	Reason string `json:"reason"`
}

func deny(rule, format string, args ...any) Decision {
	return Decision{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// Evaluate decides whether a key under p may be released to the TEE that
// produced claims c, for the job with manifest digest jobDigest, at time now.
// It checks, in order: validity period, platform, insecure label, debug,
// measurement, signer, product id, security version, TCB status,
// advisories, SNP migration agent and SMT, the TDX and SEV-SNP field rules
// (evaluateFields, in the order of docs/policy.md), job digest; the first
// failing rule decides. A rule that names a field the claims lack denies.
// It never panics; a nil or invalid policy, or nil claims, deny.
func Evaluate(p *Policy, c *attest.Claims, jobDigest []byte, now time.Time) Decision {
	if p == nil {
		return deny(RuleInvalidPolicy, "no policy is set for this key")
	}
	if err := p.Validate(); err != nil {
		return deny(RuleInvalidPolicy, "the key's policy is invalid: %v", err)
	}
	if c == nil {
		return deny(RuleNoClaims, "no verified attestation claims")
	}
	if p.NotBefore != nil && now.Before(*p.NotBefore) {
		return denyField(RuleNotYetValid, "not_before", "the policy is valid from %s, it is now %s", p.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if p.NotAfter != nil && !now.Before(*p.NotAfter) {
		return denyField(RuleExpired, "not_after", "the policy expired at %s, it is now %s", p.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if len(p.Platforms) == 0 {
		return deny(RulePlatform, "the policy accepts no platform")
	}
	r, ok := p.Platforms[c.Platform]
	if !ok || r == nil {
		if c.Platform == attest.PlatformSim {
			return deny(RulePlatform, "simulated TEE evidence is refused: the policy does not list platform sim")
		}
		return deny(RulePlatform, "platform %q is not accepted (the policy accepts %s)", c.Platform, platformList(p))
	}
	if c.Platform == attest.PlatformSim && !c.Insecure {
		return deny(RuleInsecure, "claims for the simulated TEE are not marked insecure")
	}
	if c.Insecure && c.Platform != attest.PlatformSim {
		return deny(RuleInsecure, "the %s evidence is marked insecure", c.Platform)
	}
	prefix := "platforms." + string(c.Platform) + "."
	if c.Debug && !r.AllowDebug {
		return denyField(RuleDebug, prefix+"allow_debug", "the TEE is in debug mode (its memory can be read by a debugger) and the policy does not allow debug")
	}
	if len(r.Measurements) > 0 && !containsHex(r.Measurements, c.Measurement) {
		return denyField(RuleMeasurement, prefix+"measurements", "measurement %s is not in the policy's %d allowed measurements", short(c.Measurement), len(r.Measurements))
	}
	if len(r.Signers) > 0 && !containsHex(r.Signers, c.Signer) {
		if len(c.Signer) == 0 {
			return denyField(RuleSigner, prefix+"signers", "the evidence names no signer and the policy requires one of %d signers", len(r.Signers))
		}
		return denyField(RuleSigner, prefix+"signers", "signer %s is not in the policy's %d allowed signers", short(c.Signer), len(r.Signers))
	}
	if r.ProductID != nil && c.ProductID != *r.ProductID {
		return denyField(RuleProductID, prefix+"product_id", "product id %d is not the policy's %d", c.ProductID, *r.ProductID)
	}
	if c.SecurityVersion < r.MinSecurityVersion {
		return denyField(RuleSecurityVer, prefix+"min_security_version", "security version %d is below the policy's minimum %d", c.SecurityVersion, r.MinSecurityVersion)
	}
	accepted := r.TCBStatuses
	if len(accepted) == 0 {
		accepted = []string{TCBUpToDate}
	}
	switch {
	case c.TCBStatus == "" && c.Platform == attest.PlatformSim:
		// The simulated TEE has no TCB; listing sim is the opt-in.
	case c.TCBStatus == "" && c.Platform == attest.PlatformSNP:
		// AMD publishes no TCB status collateral: the SNP verifier checks
		// that REPORTED_TCB is the TCB its VCEK/VLEK certifies, and
		// min_security_version bounds the guest's own SVN.
	case c.TCBStatus == "":
		return denyField(RuleTCBStatus, prefix+"tcb_statuses", "the evidence carries no TCB status and the policy accepts only %s", strings.Join(accepted, ", "))
	case !slices.Contains(accepted, c.TCBStatus):
		return denyField(RuleTCBStatus, prefix+"tcb_statuses", "TCB status %q is not accepted (the policy accepts %s)", c.TCBStatus, strings.Join(accepted, ", "))
	}
	for _, a := range c.Advisories {
		if !slices.Contains(r.AllowedAdvisories, a) {
			return denyField(RuleAdvisory, prefix+"allowed_advisories", "advisory %s applies to this TCB and the policy does not allow it", a)
		}
	}
	if c.Platform == attest.PlatformSNP {
		if c.MigrationAgent && !r.AllowMigrationAgent {
			return denyField(RuleMigrationAgent, prefix+"allow_migration_agent", "the SNP guest policy allows a migration agent and the policy does not")
		}
		if c.SMTAllowed && r.AllowSMT != nil && !*r.AllowSMT {
			return denyField(RuleSMT, prefix+"allow_smt", "the SNP guest policy allows SMT (hyper-threading) and the policy requires it off")
		}
	}
	if d := evaluateFields(r, c); !d.Allow {
		return d
	}
	if len(p.Jobs) > 0 && !containsDigest(p.Jobs, jobDigest) {
		if len(jobDigest) == 0 {
			return denyField(RuleJob, "jobs", "no job digest was given and the policy accepts only %d listed jobs", len(p.Jobs))
		}
		return denyField(RuleJob, "jobs", "job %s is not one of the policy's %d allowed jobs", short(jobDigest), len(p.Jobs))
	}
	return Decision{Allow: true, Reason: fmt.Sprintf("%s %s measurement %s meets the policy", c.Platform, c.TEEType, short(c.Measurement))}
}

func containsDigest(list []JobDigest, v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, d := range list {
		if bytes.Equal(d, v) {
			return true
		}
	}
	return false
}

func containsHex(list []attest.Hex, v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, h := range list {
		if bytes.Equal(h, v) {
			return true
		}
	}
	return false
}

// short prints the first 8 bytes of a digest, enough to tell which one.
func short(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + "…"
	}
	return hex.EncodeToString(b)
}

func platformList(p *Policy) string {
	var names []string
	for k := range p.Platforms {
		names = append(names, string(k))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
