package job

import (
	"fmt"
	"sort"
	"strings"
)

// Spec is the pure-Go half of an engine: it reads and validates the
// engine's parameters section and gives it a canonical form. The key service
// computes job digests with it, so a spec package must not link the engine
// itself (no cgo, no engine libraries); see docs/engines.md.
type Spec interface {
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

// Specs is the set of engines a parse accepts: the engines built into a
// runtime (launcher.Specs), or every engine of the platform (package
// engine/specs) where digests are computed without running anything.
type Specs interface {
	// Spec returns the named engine's spec, or an error that says which
	// engines there are.
	Spec(name string) (Spec, error)
	// Names lists the engines, sorted.
	Names() []string
}

// SpecSet is a fixed set of specs.
type SpecSet struct {
	byName map[string]Spec
	names  []string
}

// NewSpecSet makes a set of specs. It panics on a duplicate name or an
// out-of-range ThreadsDefaulter default: programming errors, caught when the
// set is built at start-up.
func NewSpecSet(specs ...Spec) *SpecSet {
	s := &SpecSet{byName: map[string]Spec{}}
	for _, sp := range specs {
		if err := CheckSpec(sp); err != nil {
			panic(err.Error())
		}
		if _, dup := s.byName[sp.Name()]; dup {
			panic(fmt.Sprintf("job: engine %q listed twice", sp.Name()))
		}
		s.byName[sp.Name()] = sp
		s.names = append(s.names, sp.Name())
	}
	sort.Strings(s.names)
	return s
}

// CheckSpec reports what is wrong with a spec itself: an empty name or a
// ThreadsDefaulter default outside 1 to MaxThreads.
func CheckSpec(sp Spec) error {
	if sp.Name() == "" {
		return fmt.Errorf("job: engine spec %T has an empty name", sp)
	}
	if d, ok := sp.(ThreadsDefaulter); ok {
		if t := d.DefaultThreads(); t < 1 || t > MaxThreads {
			return fmt.Errorf("job: engine %q default threads %d outside 1 to %d", sp.Name(), t, MaxThreads)
		}
	}
	return nil
}

// Spec implements Specs.
func (s *SpecSet) Spec(name string) (Spec, error) {
	if sp, ok := s.byName[name]; ok {
		return sp, nil
	}
	return nil, fmt.Errorf("unknown engine %q (known engines: %s)", truncate(name), strings.Join(s.names, ", "))
}

// Names implements Specs.
func (s *SpecSet) Names() []string { return append([]string(nil), s.names...) }

// ManifestChecker is implemented by engine parameters that must agree with
// the rest of the manifest (outputs and inputs they name, paths relative to
// the manifest's directory). Parse calls CheckManifest once everything else
// parsed without a problem; it may complete the parameters (defaults that
// depend on the outputs) before the digest is computed.
type ManifestChecker interface {
	CheckManifest(m *Manifest, c *Checker)
}

// ThreadsDefaulter is implemented by engine specs whose jobs should run with
// a different thread count than DefaultThreads when the manifest's resources
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
