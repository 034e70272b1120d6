package launcher

import (
	"context"
	"fmt"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
)

// OutputKeyRequest asks the key source for a fresh data key for an output:
// the output's kms:// key and the associated data the wrap must bind, the
// WrapAAD of the output envelope's header, made before the release.
type OutputKeyRequest struct {
	Output string
	Ref    envelope.KeyRef
	AAD    []byte
}

// OutputKeySource is a KeySource that can also issue output data keys, in
// the same attested release as the input keys (the key service). wrappers[i]
// encrypts the envelope of outs[i] and nothing else.
type OutputKeySource interface {
	KeySource
	ReleaseWithOutputs(ctx context.Context, m *Manifest, reqs []KeyRequest, outs []OutputKeyRequest) (keys [][]byte, wrappers []envelope.KeyWrapper, err error)
}

// Output keys. A local or file: output key wraps its data key when the
// output is written. A kms:// output's data key must come from the single
// attested release before the job runs, wrapped with the output header's
// associated data; so the header is drafted first (envelope.Draft: random
// salt and nonce prefix, the length to be recorded after the wrap), its
// WrapAAD goes into the release, and the file is written from the draft
// with the released key once the job has succeeded and the length is known.
type outputKeys struct {
	wrappers []envelope.KeyWrapper // per output; kms:// ones after the release
	drafts   []*envelope.Draft     // per output; kms:// outputs only
	reqs     []OutputKeyRequest    // one per draft, in output order
	released []envelope.KeyWrapper // what the release returned, to zero
}

// loadOutputKeys gets every output's key-encryption key, or drafts the
// header of a kms:// output for the release.
func loadOutputKeys(ctx context.Context, m *job.Manifest, ks KeySource) (*outputKeys, error) {
	k := &outputKeys{wrappers: make([]envelope.KeyWrapper, len(m.Outputs)), drafts: make([]*envelope.Draft, len(m.Outputs))}
	for i, o := range m.Outputs {
		if o.Key.Scheme != job.KeyKMS {
			w, err := ks.OutputWrapper(ctx, o.Key)
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", o.Name, err)
			}
			k.wrappers[i] = w
			continue
		}
		if _, ok := ks.(OutputKeySource); !ok {
			return nil, fmt.Errorf("output %s: key %s is a key-service key, and keys come from local key files here: give --server", o.Name, o.Key)
		}
		d, err := envelope.NewDraft(&envelope.Options{ContentType: contentType(o.ContentType), SizeLater: true})
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		k.drafts[i] = d
		k.reqs = append(k.reqs, OutputKeyRequest{Output: o.Name, Ref: o.Key.Envelope, AAD: d.WrapAAD()})
	}
	return k, nil
}

// setReleased hands the release's output keys to the drafted outputs, in order.
func (k *outputKeys) setReleased(ws []envelope.KeyWrapper) error {
	k.released = ws
	if len(ws) != len(k.reqs) {
		return fmt.Errorf("key source returned %d output keys for %d requests", len(ws), len(k.reqs))
	}
	j := 0
	for i, d := range k.drafts {
		if d != nil {
			k.wrappers[i] = ws[j]
			j++
		}
	}
	return nil
}

// zero clears the released output keys that no writer took (the job
// failed); a key a writer took was cleared by the writer.
func (k *outputKeys) zero() {
	for _, w := range k.released {
		if z, ok := w.(interface{ Zero() }); ok {
			z.Zero()
		}
	}
}

// create starts output i's envelope at path, recording its length: from the
// draft with the released key for a kms:// output, else anew.
func (k *outputKeys) create(i int, path, media string, size int64) (*envelope.FileWriter, error) {
	if d := k.drafts[i]; d != nil {
		return d.CreateFile(path, k.wrappers[i], size, true)
	}
	return envelope.CreateFile(path, k.wrappers[i], &envelope.Options{ContentType: contentType(media), Size: size, SizeKnown: true}, true)
}
