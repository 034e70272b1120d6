package launcher

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

// KMSKeys obtains kms:// keys from the key service with one attested
// release (challenge, evidence from Attester binding the nonce, the job
// digest and an ephemeral public key, release, HPKE unwrap in memory).
// local: and file: keys go to Local, if set.
type KMSKeys struct {
	Client   *client.Client
	Server   string // the URL, for messages
	Attester attest.Attester
	Local    *LocalKeys
	// Token is the service's signed attestation token from the last release.
	Token string
}

// Release implements KeySource.
func (k *KMSKeys) Release(ctx context.Context, m *Manifest, reqs []KeyRequest) ([][]byte, error) {
	keys, _, err := k.ReleaseWithOutputs(ctx, m, reqs, nil)
	return keys, err
}

// ReleaseWithOutputs implements OutputKeySource: one attested release
// carries the kms:// input keys and a fresh data key for each output; the
// service evaluates the policy of every key, input or output, and grants
// all or none. The returned wrappers are *client.OutputKey, each good for
// the one envelope whose header's fixed part is outs[i].AAD.
func (k *KMSKeys) ReleaseWithOutputs(ctx context.Context, m *Manifest, reqs []KeyRequest, outs []OutputKeyRequest) ([][]byte, []envelope.KeyWrapper, error) {
	keys := make([][]byte, len(reqs))
	var items []api.ReleaseKeyItem
	var remote []int
	var local []KeyRequest
	var localAt []int
	for i, r := range reqs {
		if r.Ref.Scheme == envelope.SchemeKMS {
			items = append(items, api.ReleaseKeyItem{Ref: r.Ref.String(), Wrapped: r.Wrapped, AAD: r.AAD})
			remote = append(remote, i)
			continue
		}
		local = append(local, r)
		localAt = append(localAt, i)
	}
	if len(local) > 0 {
		if k.Local == nil {
			return nil, nil, fmt.Errorf("input %s (%s) is encrypted under %s, and no local key file was given", local[0].Input, local[0].File, local[0].Ref)
		}
		lks, err := k.Local.Release(ctx, m, local)
		if err != nil {
			return nil, nil, err
		}
		for j, i := range localAt {
			keys[i] = lks[j]
		}
	}
	var oitems []api.ReleaseOutputItem
	for _, o := range outs {
		if o.Ref.Scheme != envelope.SchemeKMS {
			Zero(keys)
			return nil, nil, fmt.Errorf("output %s: key %s is not a kms:// key", o.Output, o.Ref)
		}
		oitems = append(oitems, api.ReleaseOutputItem{Ref: o.Ref.String(), AAD: o.AAD})
	}
	if len(items)+len(oitems) == 0 {
		return keys, nil, nil
	}
	if n := len(items) + len(oitems); n > api.MaxReleaseKeys {
		Zero(keys)
		return nil, nil, fmt.Errorf("the job needs %d key-service keys (one per input file and per output under a kms:// key); a release carries at most %d", n, api.MaxReleaseKeys)
	}
	if k.Client == nil {
		Zero(keys)
		return nil, nil, fmt.Errorf("the job needs key-service keys (%d inputs, %d outputs), and no key service was given: give --server", len(items), len(oitems))
	}
	rel, err := k.Client.ReleaseWithOutputs(ctx, k.Attester, m.Raw, m.Job.Digest(), items, oitems, 0)
	if err != nil {
		Zero(keys)
		var se *client.StatusError
		if errors.As(err, &se) && len(se.Err.Denials) > 0 {
			return nil, nil, &DeniedError{Denials: se.Err.Denials}
		}
		if strings.Contains(err.Error(), k.Server) {
			return nil, nil, err // the client names the address it tried
		}
		return nil, nil, fmt.Errorf("key service %s: %w", k.Server, err)
	}
	k.Token = rel.Token
	for j, i := range remote {
		keys[i] = rel.Keys[j]
	}
	var ws []envelope.KeyWrapper
	for _, o := range rel.Outputs {
		ws = append(ws, o)
	}
	return keys, ws, nil
}

// OutputWrapper implements KeySource: local: and file: keys from Local.
// kms:// output keys come from ReleaseWithOutputs, with the release.
func (k *KMSKeys) OutputWrapper(ctx context.Context, ref job.KeyRef) (envelope.KeyWrapper, error) {
	if ref.Scheme == job.KeyKMS {
		return nil, fmt.Errorf("output key %s: a key-service output key comes with the release (ReleaseWithOutputs), not on its own", ref)
	}
	if k.Local == nil {
		k.Local = &LocalKeys{}
	}
	return k.Local.OutputWrapper(ctx, ref)
}
