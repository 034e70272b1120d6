package job

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Engine validates the engine-specific parameters of a manifest. Each engine
// (exec here; sql, ml and others in their own packages) registers one.
type Engine interface {
	// Name is the value of the manifest's engine field.
	Name() string
	// ParseParameters reads the parameters section. present is false when
	// the manifest has none; n then carries only the field path. Problems go
	// to c; the returned value is used only when c reports no problem.
	ParseParameters(n Node, present bool, c *Checker) Parameters
}

// Parameters are an engine's validated parameters.
type Parameters interface {
	// Canonical returns the parameters with every default explicit, as a
	// value built only from string, int64, bool, []any and map[string]any.
	// It is the "parameters" member of the canonical form.
	Canonical() map[string]any
}

var (
	enginesMu sync.RWMutex
	engines   = map[string]Engine{}
)

// RegisterEngine makes an engine known to Parse. It panics on a duplicate
// name or an out-of-range ThreadsDefaulter default, programming errors caught
// at start-up.
func RegisterEngine(e Engine) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[e.Name()]; dup {
		panic(fmt.Sprintf("job: engine %q registered twice", e.Name()))
	}
	if d, ok := e.(ThreadsDefaulter); ok {
		if t := d.DefaultThreads(); t < 1 || t > MaxThreads {
			panic(fmt.Sprintf("job: engine %q default threads %d outside 1 to %d", e.Name(), t, MaxThreads))
		}
	}
	engines[e.Name()] = e
}

// Engines lists the registered engine names in order.
func Engines() []string {
	enginesMu.RLock()
	defer enginesMu.RUnlock()
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookupEngine(name string) (Engine, error) {
	enginesMu.RLock()
	e, ok := engines[name]
	enginesMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown engine %q (known engines: %s)", truncate(name), strings.Join(Engines(), ", "))
	}
	return e, nil
}

// ManifestChecker is implemented by engine parameters that must agree with
// the rest of the manifest (outputs and inputs they name, paths relative to
// the manifest's directory). Parse calls CheckManifest once everything else
// parsed without a problem; it may complete the parameters (defaults that
// depend on the outputs) before the digest is computed.
type ManifestChecker interface {
	CheckManifest(m *Manifest, c *Checker)
}

// ThreadsDefaulter is implemented by engines whose jobs should run with a
// different thread count than DefaultThreads when the manifest's resources
// omit threads (the ml engine: one XGBoost thread, since OpenMP stalls on
// small machines and one thread makes training reproducible). Parse applies
// it before reading the resources section, so the canonical form, and with
// it the digest, always carries the thread count the job runs with: a
// manifest that omits threads and one that writes the engine's default are
// the same job.
type ThreadsDefaulter interface {
	// DefaultThreads is the engine's default, between 1 and MaxThreads.
	DefaultThreads() int
}
