package model

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ppml/ppml/serve/tensor"
)

// Registry holds the models a server serves, by name and version.
type Registry struct {
	mu       sync.RWMutex
	models   map[string]map[string]*Entry
	defaults map[string]string // name → version used when a request names none
	draining atomic.Bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{models: map[string]map[string]*Entry{}, defaults: map[string]string{}}
}

// Entry is one model version in a registry.
type Entry struct {
	Model
	meta    Metadata
	batcher *batcher
	reg     *Registry
}

// Metadata returns the model's metadata (cached: it does not change).
func (e *Entry) Metadata() Metadata { return e.meta }

// Add registers a model. The first version added under a name is its default version
// (requests that name no version get it) unless a later Add says otherwise with SetDefault.
// batch configures dynamic batching for batchable models (zero: none).
func (r *Registry) Add(m Model, batch BatchOptions) (*Entry, error) {
	md := m.Metadata()
	if md.Name == "" || md.Version == "" {
		return nil, fmt.Errorf("a served model needs a name and a version (got %q, %q)", md.Name, md.Version)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.models[md.Name][md.Version] != nil {
		return nil, fmt.Errorf("model %q version %q is already served", md.Name, md.Version)
	}
	e := &Entry{Model: m, meta: md, reg: r}
	if md.Batchable && batch.MaxBatch > 1 {
		e.batcher = newBatcher(m, batch)
	}
	if r.models[md.Name] == nil {
		r.models[md.Name] = map[string]*Entry{}
		r.defaults[md.Name] = md.Version
	}
	r.models[md.Name][md.Version] = e
	return e, nil
}

// SetDefault makes version the one requests without a version get.
func (r *Registry) SetDefault(name, version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.models[name][version] == nil {
		return fmt.Errorf("model %q has no version %q", name, version)
	}
	r.defaults[name] = version
	return nil
}

// Get returns a model version; version "" is the model's default version.
func (r *Registry) Get(name, version string) (*Entry, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.models[name]
	if vs == nil {
		return nil, NotFound("no model named %q", tensor.Clip(name))
	}
	if version == "" {
		version = r.defaults[name]
	}
	e := vs[version]
	if e == nil {
		return nil, NotFound("model %q has no version %q (versions: %v)", name, tensor.Clip(version), r.versionsLocked(name))
	}
	return e, nil
}

// Versions lists a model's versions, sorted.
func (r *Registry) Versions(name string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.versionsLocked(name)
}

func (r *Registry) versionsLocked(name string) []string {
	var vs []string
	for v := range r.models[name] {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}

// List returns every entry, sorted by name then version.
func (r *Registry) List() []*Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var es []*Entry
	for _, vs := range r.models {
		for _, e := range vs {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *Entry) int {
		if a.meta.Name != b.meta.Name {
			return cmpString(a.meta.Name, b.meta.Name)
		}
		return cmpString(a.meta.Version, b.meta.Version)
	})
	return es
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Ready reports whether the server takes inference requests: it has models and is not
// draining.
func (r *Registry) Ready() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.models) > 0 && !r.draining.Load()
}

// Drain marks the registry as draining: Ready turns false and new inference requests are
// refused as unavailable, while requests already admitted finish.
func (r *Registry) Drain() { r.draining.Store(true) }

// Draining reports whether Drain was called.
func (r *Registry) Draining() bool { return r.draining.Load() }

// Close stops the batchers and closes every model.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, vs := range r.models {
		for _, e := range vs {
			if e.batcher != nil {
				e.batcher.close()
			}
			if err := e.Model.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	r.models = map[string]map[string]*Entry{}
	return first
}

// Infer checks the inputs against the model's metadata and runs the model, through the
// dynamic batcher when there is one. Outputs come in metadata order.
func (e *Entry) Infer(ctx context.Context, inputs []tensor.Tensor) ([]tensor.Tensor, error) {
	if e.reg.draining.Load() {
		return nil, Unavailable("the server is shutting down")
	}
	in, err := CheckInputs(&e.meta, inputs)
	if err != nil {
		return nil, err
	}
	if e.batcher != nil {
		return e.batcher.do(ctx, in)
	}
	return e.Model.Predict(ctx, in)
}

// Ready reports whether this model takes requests.
func (e *Entry) Ready() bool { return !e.reg.draining.Load() }
