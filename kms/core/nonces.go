package core

import (
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/ppml/ppml/kms/api"
)

// nonces holds outstanding challenges in memory: a restart forgets them,
// which only makes TEEs ask again. Consuming one deletes it, so each is
// usable once, whatever the outcome.
type nonces struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]nonceRec
}

type nonceRec struct {
	token   string // id of the API token that asked
	expires time.Time
}

// maxNonces bounds outstanding challenges (a runner asking in a loop).
const maxNonces = 1 << 16

func newNonces(ttl time.Duration, now func() time.Time) *nonces {
	return &nonces{ttl: ttl, now: now, m: map[string]nonceRec{}}
}

var errTooManyNonces = errors.New("too many outstanding challenges; retry later")

func (n *nonces) issue(tokenID string) (api.Challenge, error) {
	b := make([]byte, api.NonceSize)
	if _, err := rand.Read(b); err != nil {
		return api.Challenge{}, err
	}
	now := n.now()
	exp := now.Add(n.ttl)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) >= maxNonces {
		for k, v := range n.m {
			if !now.Before(v.expires) {
				delete(n.m, k)
			}
		}
		if len(n.m) >= maxNonces {
			return api.Challenge{}, errTooManyNonces
		}
	}
	n.m[string(b)] = nonceRec{token: tokenID, expires: exp}
	return api.Challenge{Nonce: b, Expires: exp.UTC()}, nil
}

// consume removes the nonce and says why it cannot be used, if it cannot.
func (n *nonces) consume(nonce []byte, tokenID string) error {
	n.mu.Lock()
	rec, ok := n.m[string(nonce)]
	delete(n.m, string(nonce))
	n.mu.Unlock()
	switch {
	case !ok:
		return errors.New("the nonce is unknown or was already used (challenges are single use and forgotten on restart)")
	case !n.now().Before(rec.expires):
		return errors.New("the nonce expired: ask for a new challenge and attest within its lifetime")
	case rec.token != tokenID:
		return errors.New("the nonce was issued to another API token")
	}
	return nil
}
