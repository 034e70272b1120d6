package mlengine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/ml/xgboost/rabit"
)

// runWorker is one worker's part of a distributed train job (docs/cluster.md):
// it obtains this TEE's certificate under the job's certificate policy, joins
// the other workers over attested tunnels (accepting only workers whose
// certificates name this job's digest and policy), trains on its block of the
// training files, and leaves. Worker 0 writes the model every worker built;
// it returns only when the tracker saw every worker leave, so a worker that
// failed fails worker 0 too and no model is written.
func runWorker(ctx context.Context, j *launcher.Job, cfg Config, spec *mlspec.Params, inputs map[string]Input, outputs map[string]Output) error {
	w := j.Worker
	switch {
	case w == nil:
		return fmt.Errorf("ml engine: the job trains on %d workers: give this worker's place (ppml-run run --worker-index, --peers)", spec.Workers)
	case j.KeyService == nil:
		return fmt.Errorf("ml engine: the job trains on %d workers, which obtain certificates from the key service: give --server", spec.Workers)
	case j.Attester == nil:
		return fmt.Errorf("ml engine: the job trains on %d workers, which attest to obtain certificates: no TEE", spec.Workers)
	}
	place := fmt.Sprintf("worker %d of %d", w.Index, len(w.Peers))
	timeout := w.JoinTimeout
	if timeout <= 0 {
		timeout = DefaultJoinTimeout
	}
	e := workerEnd{joined: make(chan struct{})}
	finished := make(chan struct{})
	defer close(finished)
	join := func(ctx context.Context) (*xgboost.Collective, error) {
		j.Logf("ml engine: %s: obtaining a certificate under %s and joining the other workers (tunnel %s)", place, spec.CertificatePolicy, w.Peers[w.Index])
		digest := j.Manifest.Digest()
		aw, err := rabit.JoinAttested(ctx, rabit.AttestedOptions{KMS: j.KeyService, Attester: j.Attester, Manifest: j.RawManifest, JobDigest: digest[:],
			Policy: spec.CertificatePolicy, Index: w.Index, Peers: w.Peers, Listen: w.Listen, Tracker: w.Tracker, ConnectTimeout: timeout})
		if err != nil {
			return nil, err
		}
		if !e.set(aw) {
			return nil, fmt.Errorf("stopped while joining: %w", context.Cause(ctx))
		}
		j.Logf("ml engine: %s joined; training", place)
		go e.watchJoin(timeout, finished)
		c := aw.Collective()
		c.Agree = agreement(j.Inputs)
		c.Joined = sync.OnceFunc(func() { close(e.joined) })
		return c, nil
	}
	stop := context.AfterFunc(ctx, func() { e.end() })
	defer stop()
	cfg.Worker = &Worker{Rank: w.Index, Workers: len(w.Peers), Join: join}
	res, err := Run(ctx, cfg, spec, inputs, outputs)
	if err != nil {
		aw := e.end()
		var te *TrainError
		switch {
		case errors.Is(err, xgboost.ErrDisagree):
			return fmt.Errorf("ml engine: %s: the workers were shown different files of the training input (their listings differ); nothing was trained", place)
		case e.joinTimedOut():
			return fmt.Errorf("ml engine: %s: not every worker joined the collective within %s (workers at %s: one failed or was not started, see its log); no model is written", place, timeout, strings.Join(w.Peers, ", "))
		case ctx.Err() != nil:
			return fmt.Errorf("ml engine: %s: stopped (%v): %w", place, context.Cause(ctx), err)
		case errors.As(err, &te) && aw != nil:
			return aw.TrainingError(err)
		}
		return fmt.Errorf("ml engine: %s: %w", place, err)
	}
	if !stop() {
		return fmt.Errorf("ml engine: %s: stopped: %w", place, context.Cause(ctx))
	}
	if err := e.close(); err != nil {
		// Worker 0: not every worker left the collective cleanly; the job fails
		// and its model is not written.
		return fmt.Errorf("ml engine: %s: %w", place, err)
	}
	j.Logf("ml engine: %s trained on its %d rows", place, res.Rows)
	return nil
}

// agreement is what the workers compare before training: every input's
// listing as this worker saw it (launcher.Input.Listing), by name.
func agreement(inputs []launcher.Input) []byte {
	h := sha256.New()
	for _, in := range inputs {
		fmt.Fprintf(h, "%d:%s", len(in.Name), in.Name)
		h.Write(in.Listing)
	}
	return h.Sum(nil)
}

// workerEnd ends a joined worker exactly once: Close after a successful
// training (worker 0 waits for every worker to leave the collective), Stop
// when the job fails or is stopped, which closes its tunnels and so fails the
// other workers' training too. A stop that comes while the worker is still
// joining stops it as soon as it joined.
type workerEnd struct {
	joined   chan struct{} // closed when XGBoost joined the collective
	mu       sync.Mutex
	aw       *rabit.AttestedWorker
	ended    bool
	timedOut bool
}

// DefaultJoinTimeout is how long a worker of a distributed job waits for the
// others to join when launcher.Worker.JoinTimeout is not set.
const DefaultJoinTimeout = 2 * time.Minute

// watchJoin stops the worker when it has not joined the collective within
// timeout: XGBoost waits without a bound until every worker reached the
// tracker and then until its peers connected to it, so a worker that failed
// before joining, or died just after the tracker paired it, would hang the
// others. Joined is when XGBoost's own join returned (Collective.Joined);
// after that, rabit's timeout bounds every wait on a peer.
func (e *workerEnd) watchJoin(timeout time.Duration, finished <-chan struct{}) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case <-finished:
	case <-e.joined:
	case <-deadline.C:
		e.mu.Lock()
		if !e.ended && e.aw != nil {
			e.timedOut = true
			e.aw.Stop()
			e.ended = true
		}
		e.mu.Unlock()
	}
}

func (e *workerEnd) joinTimedOut() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.timedOut
}

// set records the joined worker; false if the job already ended (the worker
// was stopped).
func (e *workerEnd) set(aw *rabit.AttestedWorker) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		aw.Stop()
		return false
	}
	e.aw = aw
	return true
}

// end stops the worker (if it joined) and returns it, for its error messages.
func (e *workerEnd) end() *rabit.AttestedWorker {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.ended && e.aw != nil {
		e.aw.Stop()
	}
	e.ended = true
	return e.aw
}

// close ends the worker after a successful training.
func (e *workerEnd) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended || e.aw == nil {
		return errors.New("the worker was stopped")
	}
	e.ended = true
	return e.aw.Close()
}
