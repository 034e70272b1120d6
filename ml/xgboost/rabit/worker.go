package rabit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/ppml/ppml/workload/tunnel"
)

// Options say how a worker joins a distributed job.
type Options struct {
	// Index is this worker's index (its rank), Peers the tunnel addresses
	// of all workers by index (Peers[Index] is this worker's own).
	Index int
	Peers []string
	// Listener accepts this worker's tunnel streams (on Peers[Index]).
	Listener net.Listener
	// ServerTLS and ClientTLS are this worker's mutually attested TLS
	// configurations (workload/mtls, ALPN tunnel.ALPN), accepting the
	// job's workers only.
	ServerTLS, ClientTLS *tls.Config
	// Tracker, on worker 0, is the loopback address of a tracker already
	// running beside it (a sidecar: under Gramine the runtime may not start
	// python3). Empty: worker 0 starts XGBoost's tracker itself. The
	// tracker only hands out ranks and ports; every link it arranges is an
	// attested tunnel, and the relays check the ranks it assigns.
	Tracker string
	// ConnectTimeout bounds the wait for worker 0's tunnel (default 60s):
	// past it, Join fails naming the address.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
	// OnStream is told of each tunnel stream this worker serves.
	OnStream func(target string, peer *x509.Certificate)
}

// Worker is a joined worker: its tunnel server, its relay and, on worker
// 0, the tracker.
type Worker struct {
	Relay
	// TrackerHost and TrackerPort are what XGBoost is given as its tracker
	// (loopback: the relay).
	TrackerHost string
	TrackerPort int
	tracker     *Tracker
	server      *tunnel.Server
	served      chan struct{} // closed when the server's Serve returned
}

// Join starts the worker's side of the collective: on worker 0 the
// tracker; the tunnel server (target "rabit", and "tracker" on worker 0);
// a check that worker 0's tunnel is reachable and accepts this worker;
// and the relay XGBoost is pointed at.
func Join(ctx context.Context, o Options) (*Worker, error) {
	if len(o.Peers) < 1 || o.Index < 0 || o.Index >= len(o.Peers) {
		return nil, fmt.Errorf("rabit: worker %d of %d", o.Index, len(o.Peers))
	}
	if o.Listener == nil || o.ServerTLS == nil || o.ClientTLS == nil {
		return nil, errors.New("rabit: a worker needs its tunnel listener and TLS configurations")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 60 * time.Second
	}
	w := &Worker{Relay: Relay{Index: o.Index, Peers: o.Peers, Dial: func(ctx context.Context, addr, target string) (net.Conn, error) {
		return tunnel.Dial(ctx, addr, target, o.ClientTLS)
	}}}
	targets := map[string]tunnel.Target{TargetRabit: w.RabitAddr}
	if o.Index == 0 && o.Tracker != "" {
		if host, _, err := net.SplitHostPort(o.Tracker); err != nil || !net.ParseIP(host).IsLoopback() {
			o.Listener.Close()
			return nil, fmt.Errorf("rabit: tracker address %q: want a loopback HOST:PORT (the tracker link is plaintext)", o.Tracker)
		}
		targets[TargetTracker] = func() (string, error) { return o.Tracker, nil }
	} else if o.Index == 0 {
		t, err := StartTracker(ctx, len(o.Peers))
		if err != nil {
			o.Listener.Close()
			return nil, err
		}
		w.tracker = t
		targets[TargetTracker] = func() (string, error) { return t.Addr(), nil }
	}
	w.server = &tunnel.Server{TLS: o.ServerTLS, Targets: targets, Logger: o.Logger, OnStream: o.OnStream}
	w.served = make(chan struct{})
	go func() {
		defer close(w.served)
		w.server.Serve(o.Listener)
	}()
	if err := w.waitForTracker(ctx, o); err != nil {
		w.Close()
		return nil, err
	}
	host, port, err := w.Relay.Start()
	if err != nil {
		w.Close()
		return nil, err
	}
	w.TrackerHost, w.TrackerPort = host, port
	return w, nil
}

// waitForTracker pings worker 0's tunnel until it answers: workers start
// in any order, but one that cannot reach worker 0 fails fast and names it.
func (w *Worker) waitForTracker(ctx context.Context, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	var last error
	for {
		if last = tunnel.Ping(ctx, o.Peers[0], o.ClientTLS); last == nil {
			return nil
		}
		var oe *net.OpError
		notUp := errors.As(last, &oe) && oe.Op == "dial"
		if !notUp && ctx.Err() == nil {
			// A TLS refusal will not change by waiting.
			return fmt.Errorf("rabit: worker 0's tunnel at %s: %w", o.Peers[0], last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rabit: worker 0's tunnel at %s did not answer within %s: %w", o.Peers[0], o.ConnectTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close ends the worker's side. Worker 0 first waits (at most a minute)
// for the tracker it started to see every worker shut down, since the
// others reach the tracker through its tunnel server; with a sidecar
// tracker (Options.Tracker) it cannot tell, and must close last.
func (w *Worker) Close() error {
	var err error
	if w.tracker != nil {
		select {
		case <-w.tracker.Done():
			err = w.tracker.Wait()
		case <-time.After(time.Minute):
			err = errors.New("rabit tracker: not every worker shut down within a minute")
		}
		w.tracker.Stop()
	}
	w.Relay.Close()
	if w.server != nil {
		w.server.Close()
		<-w.served
	}
	return err
}

// Stop ends the worker at once (a failed job): every tunnel stream is
// closed and the tracker killed, which fails whatever this worker's
// XGBoost waits on — except a wait for a peer to connect to its listening
// port (the tracker paired them, then the peer died), which one connection
// closed at once ends.
func (w *Worker) Stop() {
	if w.server != nil {
		w.server.Close()
		<-w.served
	}
	addr, err := w.Relay.RabitAddr()
	w.Relay.Abort()
	if w.tracker != nil {
		w.tracker.Stop()
	}
	if err == nil {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
		}
	}
}

// TrainingError explains a failed distributed training: which worker, and
// what the relay saw (a tunnel that could not be opened names its peer).
// A worker that died makes the others' allreduce fail.
func (w *Worker) TrainingError(err error) error {
	if rerr := w.Relay.Err(); rerr != nil {
		return fmt.Errorf("distributed XGBoost training failed on worker %d of %d (%v): %w", w.Index, len(w.Peers), rerr, err)
	}
	return fmt.Errorf("distributed XGBoost training failed on worker %d of %d (a worker died or its tunnel closed): %w", w.Index, len(w.Peers), err)
}
