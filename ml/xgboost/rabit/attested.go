package rabit

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/workload"
	"github.com/ppml/ppml/workload/mtls"
	"github.com/ppml/ppml/workload/tunnel"
)

// Role is the worker role of XGBoost workers' certificates.
const Role = "xgboost-worker"

// AttestedOptions say how a worker in a TEE joins a distributed XGBoost
// job with an identity from the key service: what the runtime (ppml-run)
// knows about its job and its place in the cluster.
type AttestedOptions struct {
	// KMS is a runner client of the key service; Attester this TEE's.
	KMS      *client.Client
	Attester attest.Attester
	// Manifest is the job manifest and JobDigest its digest.
	Manifest  []byte
	JobDigest []byte
	// Policy is the certificate policy (TENANT/NAME) to be issued under.
	Policy string
	// Index and Peers as in Options; Listen is the address this worker's
	// tunnel server listens on (default Peers[Index]).
	Index  int
	Peers  []string
	Listen string
	// Tracker and ConnectTimeout as in Options.
	Tracker        string
	ConnectTimeout time.Duration
}

// AttestedWorker is a joined worker with its renewing certificate and the
// deployment CA's live revocation list.
type AttestedWorker struct {
	*Worker
	Identity *client.Identity
	CRL      *client.CRLWatcher
}

// JoinAttested obtains this worker's certificate (role xgboost-worker)
// through the certificate protocol and keeps it renewed, keeps the CA's
// revocation list fresh, and joins the collective accepting only workers
// of the same job and certificate policy (Join).
func JoinAttested(ctx context.Context, o AttestedOptions) (*AttestedWorker, error) {
	if o.KMS == nil || o.Attester == nil {
		return nil, errors.New("rabit: a worker needs a key service client and an attester")
	}
	if o.Index < 0 || o.Index >= len(o.Peers) {
		return nil, fmt.Errorf("rabit: worker %d of %d", o.Index, len(o.Peers))
	}
	id, err := o.KMS.NewIdentity(ctx, o.Attester, o.Manifest, o.JobDigest, client.CertOptions{Policy: o.Policy, Role: Role})
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", o.Index, err)
	}
	own := id.Current()
	crl, err := o.KMS.WatchCRL(ctx, own.CA)
	if err != nil {
		id.Close()
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(own.CA)
	peer := &mtls.Peer{Trust: &workload.Trust{Roots: roots, Revocations: crl}, Expect: workload.Expect{
		JobDigest: own.Identity.JobDigest, Policy: own.Identity.Policy, Roles: []string{Role}, AllowInsecure: own.Identity.Insecure}}
	listen := o.Listen
	if listen == "" {
		listen = o.Peers[o.Index]
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		crl.Close()
		id.Close()
		return nil, fmt.Errorf("worker %d: tunnel listener: %w", o.Index, err)
	}
	w, err := Join(ctx, Options{Index: o.Index, Peers: o.Peers, Listener: ln, Tracker: o.Tracker, ConnectTimeout: o.ConnectTimeout,
		ServerTLS: mtls.ServerConfig(id, peer, tunnel.ALPN), ClientTLS: mtls.ClientConfig(id, peer, tunnel.ALPN)})
	if err != nil {
		crl.Close()
		id.Close()
		return nil, err
	}
	return &AttestedWorker{Worker: w, Identity: id, CRL: crl}, nil
}

// Collective is the XGBoost configuration of this worker.
func (w *AttestedWorker) Collective() *xgboost.Collective {
	return &xgboost.Collective{TrackerHost: w.TrackerHost, TrackerPort: w.TrackerPort, TaskID: TaskID(w.Index), WorldSize: len(w.Peers), Rank: w.Index}
}

// Close ends the worker after a successful training (Worker.Close), then
// stops renewing and watching.
func (w *AttestedWorker) Close() error {
	err := w.Worker.Close()
	w.CRL.Close()
	w.Identity.Close()
	return err
}

// Stop ends the worker at once (a failed job).
func (w *AttestedWorker) Stop() {
	w.Worker.Stop()
	w.CRL.Close()
	w.Identity.Close()
}
