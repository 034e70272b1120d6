package launcher

import (
	"context"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
)

// Hooks into the output-key internals for the tests of package
// launcher_test (which link the exec engine, and so cannot be in this
// package).

// OutputKeys are the output keys of one run.
type OutputKeys struct{ k *outputKeys }

// LoadOutputKeys is loadOutputKeys.
func LoadOutputKeys(ctx context.Context, m *job.Manifest, ks KeySource) (*OutputKeys, error) {
	k, err := loadOutputKeys(ctx, m, ks)
	if err != nil {
		return nil, err
	}
	return &OutputKeys{k}, nil
}

func (o *OutputKeys) Reqs() []OutputKeyRequest                   { return o.k.reqs }
func (o *OutputKeys) SetReleased(ws []envelope.KeyWrapper) error { return o.k.setReleased(ws) }
func (o *OutputKeys) Drafted(i int) bool                         { return o.k.drafts[i] != nil }
func (o *OutputKeys) Zero()                                      { o.k.zero() }
func (o *OutputKeys) Create(i int, path, media string, size int64) (*envelope.FileWriter, error) {
	return o.k.create(i, path, media, size)
}
