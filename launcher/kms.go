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
func (k *KMSKeys) Release(ctx context.Context, manifest []byte, reqs []KeyRequest) ([][]byte, error) {
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
			return nil, fmt.Errorf("input %s (%s) is encrypted under %s, and no local key file was given", local[0].Input, local[0].File, local[0].Ref)
		}
		lks, err := k.Local.Release(ctx, manifest, local)
		if err != nil {
			return nil, err
		}
		for j, i := range localAt {
			keys[i] = lks[j]
		}
	}
	if len(items) == 0 {
		return keys, nil
	}
	if len(items) > api.MaxReleaseKeys {
		Zero(keys)
		return nil, fmt.Errorf("the job needs %d key-service keys (one per input file); a release carries at most %d", len(items), api.MaxReleaseKeys)
	}
	rel, err := k.Client.Release(ctx, k.Attester, manifest, items, 0)
	if err != nil {
		Zero(keys)
		var se *client.StatusError
		if errors.As(err, &se) && len(se.Err.Denials) > 0 {
			de := &DeniedError{}
			for _, d := range se.Err.Denials {
				de.Denials = append(de.Denials, Denial{Key: d.Key, Rule: d.Rule, Reason: d.Reason})
			}
			return nil, de
		}
		if strings.Contains(err.Error(), k.Server) {
			return nil, err // the client names the address it tried
		}
		return nil, fmt.Errorf("key service %s: %w", k.Server, err)
	}
	k.Token = rel.Token
	for j, i := range remote {
		keys[i] = rel.Keys[j]
	}
	return keys, nil
}

// OutputWrapper implements KeySource: local: and file: keys from Local.
func (k *KMSKeys) OutputWrapper(ctx context.Context, ref job.KeyRef) (envelope.KeyWrapper, error) {
	if ref.Scheme == job.KeyKMS {
		return nil, fmt.Errorf("output key %s: %w", ref, errNoKMSOutputs)
	}
	if k.Local == nil {
		k.Local = &LocalKeys{}
	}
	return k.Local.OutputWrapper(ctx, ref)
}
