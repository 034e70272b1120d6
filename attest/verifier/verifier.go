// Package verifier is the one attest.Verifier callers need: it dispatches
// evidence by platform to the DCAP verifier (SGX, TDX), the SEV-SNP verifier
// or the simulated-TEE verifier, and refuses platforms it was not given a
// verifier for. Simulated evidence in particular is refused unless trusted
// simulation platform keys were configured.
package verifier

import (
	"context"
	"crypto/ed25519"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/dcap"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/snp"
)

// Verifier dispatches by Evidence.Platform. A nil backend refuses its platform.
type Verifier struct {
	DCAP attest.Verifier // SGX and TDX
	SNP  attest.Verifier
	Sim  attest.Verifier
}

// Config builds the usual dispatcher.
type Config struct {
	// Collateral for SGX and TDX; nil refuses SGX and TDX evidence.
	Collateral dcap.Source
	// SNPCerts supplies VCEKs (AMD KDS, a mirror or an offline bundle:
	// attest/snp/kds) for SEV-SNP evidence that carries none; nil refuses
	// such evidence.
	SNPCerts snp.CertSource
	// SimKeys are the simulation platform keys to trust; none refuses
	// simulated evidence.
	SimKeys []ed25519.PublicKey
}

// New returns a dispatcher with the pinned vendor roots.
func New(c Config) *Verifier {
	v := &Verifier{SNP: &snp.Verifier{Certs: c.SNPCerts}}
	if c.Collateral != nil {
		v.DCAP = &dcap.Verifier{Source: c.Collateral}
	}
	if len(c.SimKeys) > 0 {
		v.Sim = &sim.Verifier{TrustedKeys: c.SimKeys}
	}
	return v
}

// Verify implements attest.Verifier.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.VerifyOptions) (*attest.Claims, error) {
	if ev == nil {
		return nil, attest.Fail("platform", "no evidence")
	}
	if len(ev.EventLog) > 0 && ev.Platform != attest.PlatformTDX {
		// Nothing in the evidence may pass unchecked.
		return nil, attest.Fail("event_log", "an event log came with %s evidence: event logs apply to TDX only", ev.Platform)
	}
	var b attest.Verifier
	switch ev.Platform {
	case attest.PlatformSGX, attest.PlatformTDX:
		if v.DCAP == nil {
			return nil, attest.Fail("collateral", "%s evidence needs Intel collateral: give a bundle (--collateral) or a PCCS (--pccs)", ev.Platform)
		}
		b = v.DCAP
	case attest.PlatformSNP:
		b = v.SNP
	case attest.PlatformSim:
		if v.Sim == nil {
			return nil, attest.Fail("sim_platform_key", "simulated evidence is refused: no simulation platform key is trusted (--sim-key)")
		}
		b = v.Sim
	default:
		return nil, attest.Fail("platform", "unknown platform %q", ev.Platform)
	}
	if b == nil {
		return nil, attest.Fail("platform", "no verifier configured for %s", ev.Platform)
	}
	cl, err := b.Verify(ctx, ev, opts)
	if err != nil {
		return nil, err
	}
	// A backend answering for another platform is a wiring bug; never let it
	// through as a valid result.
	if cl.Platform != ev.Platform {
		return nil, attest.Fail("platform", "verifier returned %s claims for %s evidence", cl.Platform, ev.Platform)
	}
	if ev.Platform == attest.PlatformSim && !cl.Insecure {
		return nil, attest.Fail("platform", "simulated claims not marked insecure")
	}
	return cl, nil
}
