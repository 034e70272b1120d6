package launcher

import (
	"context"
	"fmt"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/kms/api"
)

// KeyRequest is one data key the job needs: what an input file's envelope
// header says.
type KeyRequest struct {
	Input string // the manifest's input name
	File  string // the encrypted file
	// Pinned is the input's key in the manifest, if it pins one.
	Pinned  *job.KeyRef
	Ref     envelope.KeyRef
	Wrapped []byte
	AAD     []byte
}

// KeySource obtains keys for a job (m, whose digest the key service's
// policies check). Release returns the data key of every request, in order,
// or an error and no key at all: one denied key denies the whole job.
// OutputWrapper returns the key-encryption key an output is encrypted under.
//
// Implementations: LocalKeys (local key files, development and tests) and
// KMSKeys (the key service's attested release).
type KeySource interface {
	Release(ctx context.Context, m *Manifest, reqs []KeyRequest) (keys [][]byte, err error)
	OutputWrapper(ctx context.Context, ref job.KeyRef) (envelope.KeyWrapper, error)
}

// Denial names a refused key, the rule that refused it and, when the
// key's policy was evaluated, the policy field that decided: the key
// service's answer, as `ppml-run run --json` reports it.
type Denial = api.Denial

// DeniedError is a release that was refused; nothing runs.
type DeniedError struct {
	Denials []Denial
}

func (e *DeniedError) Error() string { return api.DenialsText(e.Denials) }

// LocalKeys releases keys from key files (local:ID references, and
// recipient:KEM:ID references from recipient private key files) to any job:
// there is no policy and no attestation, so it is for development, tests and
// the simulated TEE only. file: references in the manifest are loaded from
// their paths.
type LocalKeys struct {
	keys map[string]*keyfile.Any // by key reference
}

// NewLocalKeys loads key files.
func NewLocalKeys(paths ...string) (*LocalKeys, error) {
	lk := &LocalKeys{keys: map[string]*keyfile.Any{}}
	for _, p := range paths {
		if _, err := lk.load(p); err != nil {
			return nil, err
		}
	}
	return lk, nil
}

func (lk *LocalKeys) load(path string) (*keyfile.Any, error) {
	k, err := keyfile.LoadAny(path)
	if err != nil {
		return nil, err
	}
	if lk.keys == nil {
		lk.keys = map[string]*keyfile.Any{}
	}
	lk.keys[k.Ref().String()] = k
	return k, nil
}

// Release implements KeySource.
func (lk *LocalKeys) Release(_ context.Context, _ *Manifest, reqs []KeyRequest) ([][]byte, error) {
	keys := make([][]byte, 0, len(reqs))
	fail := func(err error) ([][]byte, error) {
		Zero(keys)
		return nil, err
	}
	for _, r := range reqs {
		if r.Pinned != nil && r.Pinned.Scheme == job.KeyFile {
			if _, err := lk.load(r.Pinned.AbsPath); err != nil {
				return fail(fmt.Errorf("input %s: %w", r.Input, err))
			}
		}
		if r.Ref.Scheme != envelope.SchemeLocal && r.Ref.Scheme != envelope.SchemeRecipient {
			return fail(fmt.Errorf("input %s (%s) is encrypted under %s: that needs a key service (--server)", r.Input, r.File, r.Ref))
		}
		k, ok := lk.keys[r.Ref.String()]
		if !ok {
			return fail(fmt.Errorf("input %s (%s) needs %s: give its key file with --key", r.Input, r.File, r.Ref.Describe()))
		}
		dk, err := k.KeyResolver().UnwrapDataKey(r.Ref, r.Wrapped, r.AAD)
		if err != nil {
			return fail(fmt.Errorf("input %s (%s): %w", r.Input, r.File, err))
		}
		keys = append(keys, dk)
	}
	return keys, nil
}

// OutputWrapper implements KeySource for local: and file: references (a
// recipient private key file encrypts outputs to its public half).
func (lk *LocalKeys) OutputWrapper(_ context.Context, ref job.KeyRef) (envelope.KeyWrapper, error) {
	switch ref.Scheme {
	case job.KeyFile:
		k, err := lk.load(ref.AbsPath)
		if err != nil {
			return nil, err
		}
		return k.KeyWrapper(), nil
	case job.KeyLocal:
		if k, ok := lk.keys[ref.Envelope.String()]; ok {
			return k.KeyWrapper(), nil
		}
		return nil, fmt.Errorf("output key %s: give its key file with --key", ref)
	}
	return nil, fmt.Errorf("output key %s needs a key service (--server)", ref)
}

// Zero overwrites key material the launcher owns.
func Zero(keys [][]byte) {
	for _, k := range keys {
		clear(k)
	}
}
