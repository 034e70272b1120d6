package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/workload"
)

// Identity is a workload certificate that renews itself: a fresh key,
// fresh evidence and a new certificate once two thirds of the current
// one's lifetime have passed, retried with back-off until it succeeds or
// the certificate expires. It serves crypto/tls through Certificate, so a
// TLS server or client always presents the newest certificate.
type Identity struct {
	c         *Client
	att       attest.Attester
	manifest  []byte
	jobDigest []byte
	opts      CertOptions

	cur     atomic.Pointer[Cert]
	mu      sync.Mutex
	err     error // the last renewal failure, nil after a success
	onRenew func(cert *Cert, err error)
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewIdentity issues a first certificate (an error if it is refused) and
// starts renewing it until Close.
func (c *Client) NewIdentity(ctx context.Context, att attest.Attester, manifest, jobDigest []byte, o CertOptions) (*Identity, error) {
	cert, err := c.IssueCert(ctx, att, manifest, jobDigest, o)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	id := &Identity{c: c, att: att, manifest: manifest, jobDigest: jobDigest, opts: o, cancel: cancel, done: make(chan struct{})}
	id.cur.Store(cert)
	go id.renew(rctx)
	return id, nil
}

// OnRenew has f told of each later renewal (cert set) or failed attempt
// (err set); f must not block.
func (id *Identity) OnRenew(f func(cert *Cert, err error)) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.onRenew = f
}

// Current is the newest certificate.
func (id *Identity) Current() *Cert { return id.cur.Load() }

// Certificate returns the newest certificate for crypto/tls.
func (id *Identity) Certificate() (*tls.Certificate, error) {
	c := id.cur.Load()
	return &c.TLS, nil
}

// Err is the last renewal failure, nil once a renewal succeeded.
func (id *Identity) Err() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.err
}

// Close stops renewing.
func (id *Identity) Close() {
	id.cancel()
	<-id.done
}

// RenewAt is when a certificate should be renewed: two thirds into its
// lifetime.
func RenewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

func (id *Identity) renew(ctx context.Context) {
	defer close(id.done)
	backoff := 5 * time.Second
	next := RenewAt(id.cur.Load().Leaf)
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cert, err := id.c.IssueCert(ctx, id.att, id.manifest, id.jobDigest, id.opts)
		if ctx.Err() != nil {
			return
		}
		id.mu.Lock()
		id.err = err
		notify := id.onRenew
		id.mu.Unlock()
		if err == nil {
			id.cur.Store(cert)
		}
		if notify != nil {
			notify(cert, err)
		}
		if err != nil {
			// Keep trying until the current certificate expires, and after:
			// the job may outlive an outage of the key service.
			next = time.Now().Add(backoff)
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = 5 * time.Second
		next = RenewAt(cert.Leaf)
	}
}

// CRLWatcher keeps a fresh revocation list of the deployment CA, fetched
// every Refresh (default a third of the list's validity, at most a
// minute). It is a workload.Revocations: until the first list arrives and
// once the newest is past its next update, it answers "unknown" and peers
// refuse everyone.
type CRLWatcher struct {
	c      *Client
	ca     *x509.Certificate
	cur    atomic.Pointer[workload.CRL]
	mu     sync.Mutex
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

// WatchCRL fetches the list once (an error if it cannot) and keeps it
// fresh until Close.
func (c *Client) WatchCRL(ctx context.Context, ca *x509.Certificate) (*CRLWatcher, error) {
	l, err := c.CRL(ctx, ca)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	w := &CRLWatcher{c: c, ca: ca, cancel: cancel, done: make(chan struct{})}
	w.cur.Store(l)
	go w.run(rctx)
	return w, nil
}

// Status implements workload.Revocations with the newest list.
func (w *CRLWatcher) Status(c *x509.Certificate, now time.Time) error {
	l := w.cur.Load()
	if l == nil {
		return errors.New("no revocation list yet")
	}
	if err := l.Status(c, now); err != nil {
		var pe *workload.PeerError
		if !errors.As(err, &pe) {
			if last := w.Err(); last != nil {
				return fmt.Errorf("%w (last fetch: %v)", err, last)
			}
		}
		return err
	}
	return nil
}

// Refresh fetches the list now (after a policy change a peer need not
// wait for the next round).
func (w *CRLWatcher) Refresh(ctx context.Context) error {
	l, err := w.c.CRL(ctx, w.ca)
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		old := w.cur.Load()
		if !l.Newer(old) || w.cur.CompareAndSwap(old, l) {
			return nil
		}
	}
}

// Err is the last fetch failure, nil after a success.
func (w *CRLWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops refreshing.
func (w *CRLWatcher) Close() {
	w.cancel()
	<-w.done
}

func (w *CRLWatcher) run(ctx context.Context) {
	defer close(w.done)
	for {
		l := w.cur.Load()
		every := min(l.List.NextUpdate.Sub(l.List.ThisUpdate)/3, time.Minute)
		if w.Err() != nil {
			every = min(every, 5*time.Second)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		w.Refresh(fctx)
		cancel()
	}
}
