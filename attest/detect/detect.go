// Package detect finds which evidence backend this machine offers and says
// why: Gramine's /dev/attestation inside an SGX enclave, or the Linux
// configfs-tsm report interface inside an SEV-SNP or TDX guest. It never
// picks the simulated TEE on its own; that takes an explicit choice.
package detect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/ccel"
	"github.com/ppml/ppml/attest/gramine"
	"github.com/ppml/ppml/attest/tsm"
)

// Options say where to look; zero values mean the real system paths.
type Options struct {
	GramineRoot string // default /dev/attestation
	TSMRoot     string // default /sys/kernel/config/tsm/report
	DevRoot     string // default /dev, for /dev/sev-guest and /dev/tdx_guest
}

// Result is the backend found and why.
type Result struct {
	Backend  string          `json:"backend"` // "gramine" or "tsm"
	Reason   string          `json:"reason"`
	Attester attest.Attester `json:"-"`
}

// NoTEEError lists why each backend was not found.
type NoTEEError struct{ Reasons []string }

func (e *NoTEEError) Error() string {
	return "no TEE evidence backend found: " + strings.Join(e.Reasons, "; ") +
		" (use --tee sim for the simulated TEE, which is insecure)"
}

// Detect returns the first backend found: Gramine, then configfs-tsm.
func Detect(o Options) (*Result, error) {
	groot := or(o.GramineRoot, gramine.DefaultRoot)
	troot := or(o.TSMRoot, tsm.DefaultRoot)
	dev := or(o.DevRoot, "/dev")
	var reasons []string

	g := &gramine.Attester{Root: groot}
	typ, err := g.Type()
	switch {
	case err == nil && typ == "dcap":
		return &Result{Backend: "gramine", Attester: g,
			Reason: fmt.Sprintf("%s/attestation_type is \"dcap\": running in a Gramine SGX enclave", groot)}, nil
	case err == nil:
		reasons = append(reasons, fmt.Sprintf("Gramine attestation type is %q, not \"dcap\"", typ))
	case errors.Is(err, os.ErrNotExist):
		reasons = append(reasons, fmt.Sprintf("no %s (not in a Gramine enclave)", filepath.Join(groot, "attestation_type")))
	default:
		reasons = append(reasons, err.Error())
	}

	var guest []string
	for _, d := range []string{"sev-guest", "tdx_guest"} {
		if _, err := os.Stat(filepath.Join(dev, d)); err == nil {
			guest = append(guest, filepath.Join(dev, d))
		}
	}
	st, err := os.Stat(troot)
	switch {
	case err == nil && st.IsDir():
		reason := fmt.Sprintf("configfs-tsm report interface at %s", troot)
		if len(guest) > 0 {
			reason += " (guest device " + strings.Join(guest, ", ") + ")"
		}
		return &Result{Backend: "tsm", Attester: ccel.WithEventLog(&tsm.Attester{Root: troot}), Reason: reason}, nil
	case len(guest) > 0:
		reasons = append(reasons, fmt.Sprintf("found %s but no configfs-tsm at %s: needs Linux ≥ 6.7 with configfs mounted (mount -t configfs none /sys/kernel/config)", strings.Join(guest, ", "), troot))
	default:
		reasons = append(reasons, fmt.Sprintf("no %s and no SEV-SNP or TDX guest device in %s", troot, dev))
	}
	return nil, &NoTEEError{Reasons: reasons}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
