package rabit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ppml/ppml/workload/tunnel"
)

// Rabit's tracker protocol (XGBoost 1.7, rabit/src/allreduce_base.cc and
// xgboost/tracker.py): 32-bit integers in the host's byte order (little
// endian on every platform ppml runs on), strings as an integer length and
// the bytes.
const (
	magic      = 0xff99
	maxStr     = 1024 // host names and task ids
	maxLinks   = 1024 // neighbours and peers handed out at once
	targetRank = "rabit"
	// TargetTracker is the tunnel target of the tracker, served by the
	// worker that runs it.
	TargetTracker = "tracker"
	// TargetRabit is the tunnel target of a worker's XGBoost listening port.
	TargetRabit = targetRank
)

// Dialer opens a tunnel stream to target at a worker's tunnel address.
type Dialer func(ctx context.Context, addr, target string) (net.Conn, error)

// Relay is a worker's side of the collective: a loopback endpoint its
// XGBoost uses as the tracker, relaying to the tracker through a tunnel,
// and a loopback port per peer that tunnels to that peer.
type Relay struct {
	// Index is this worker's index, which must be the rank the tracker
	// assigns (ranks are assigned by sorted task id; see TaskID).
	Index int
	// Peers are the tunnel addresses of the workers, by index; Peers[0]
	// runs the tracker.
	Peers []string
	Dial  Dialer

	ctx    context.Context
	cancel context.CancelFunc
	ln     net.Listener
	wg     sync.WaitGroup
	relays sync.WaitGroup // tracker connections being relayed

	mu        sync.Mutex
	peerLns   map[int]net.Listener
	conns     map[net.Conn]struct{} // relayed tracker connections, both ends
	rabitPort int
	err       error
}

// TaskID is the rabit task id of worker index: zero-padded, so that the
// tracker's sort by task id gives rank index.
func TaskID(index int) string { return fmt.Sprintf("ppml-worker-%06d", index) }

// Start listens on a loopback port for XGBoost's tracker connections and
// returns the address to give XGBoost as its tracker.
func (r *Relay) Start() (host string, port int, err error) {
	if r.Index < 0 || r.Index >= len(r.Peers) {
		return "", 0, fmt.Errorf("rabit relay: worker %d of %d", r.Index, len(r.Peers))
	}
	if r.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return "", 0, fmt.Errorf("rabit relay: %w", err)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.peerLns = map[int]net.Listener{}
	r.conns = map[net.Conn]struct{}{}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			r.relays.Add(1)
			go func() {
				defer r.wg.Done()
				defer r.relays.Done()
				if err := r.relayTracker(c); err != nil {
					r.fail(err)
				}
			}()
		}
	}()
	return "127.0.0.1", r.ln.Addr().(*net.TCPAddr).Port, nil
}

// Err is the first relay failure (a tunnel that could not be opened, a
// tracker that broke the protocol), to explain why XGBoost failed.
func (r *Relay) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Relay) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

// RabitAddr is the loopback address of this worker's XGBoost listening
// port, known once XGBoost reported it to the tracker: the tunnel server's
// "rabit" target.
func (r *Relay) RabitAddr() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rabitPort == 0 {
		return "", errors.New("this worker's XGBoost has not joined the collective yet")
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.rabitPort)), nil
}

// trackerAnswerTimeout bounds the wait for the tracker's first answer on
// a connection (a var for tests).
var trackerAnswerTimeout = time.Minute

// relayGrace bounds how long Close waits for tracker connections still
// being relayed.
const relayGrace = 10 * time.Second

// Close stops relaying and closes every loopback port. It first lets the
// tracker connections in flight finish (for at most relayGrace): XGBoost
// sends its "shutdown" to the tracker and returns from training before the
// relay has passed it on.
func (r *Relay) Close() { r.close(true) }

// Abort closes at once.
func (r *Relay) Abort() { r.close(false) }

func (r *Relay) close(graceful bool) {
	if r.ln == nil {
		return
	}
	r.ln.Close()
	if graceful {
		done := make(chan struct{})
		go func() { r.relays.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(relayGrace):
		}
	}
	r.cancel()
	r.mu.Lock()
	for _, ln := range r.peerLns {
		ln.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// peerPort is the loopback port that tunnels to worker rank.
func (r *Relay) peerPort(rank int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ln, ok := r.peerLns[rank]; ok {
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	r.peerLns[rank] = ln
	addr := r.Peers[rank]
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tunnel.Forward(ln, func() (net.Conn, error) { return r.Dial(r.ctx, addr, TargetRabit) }, func(err error) {
			r.fail(fmt.Errorf("tunnel to worker %d: %w", rank, err))
		})
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// track adds or removes an open connection; it reports false (and closes
// c) once the relay is closed.
func (r *Relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.ctx.Err() != nil {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

// conn reads and writes the tracker protocol's values, and names the side
// in errors.
type conn struct {
	c    net.Conn
	side string
}

func (c *conn) int() (int32, error) {
	var b [4]byte
	if _, err := io.ReadFull(c.c, b[:]); err != nil {
		return 0, fmt.Errorf("rabit relay: reading from the %s: %w", c.side, err)
	}
	return int32(binary.LittleEndian.Uint32(b[:])), nil
}

func (c *conn) putInt(v int32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(v))
	if _, err := c.c.Write(b[:]); err != nil {
		return fmt.Errorf("rabit relay: writing to the %s: %w", c.side, err)
	}
	return nil
}

func (c *conn) str() (string, error) {
	n, err := c.int()
	if err != nil {
		return "", err
	}
	if n < 0 || n > maxStr {
		return "", fmt.Errorf("rabit relay: the %s sent a string of %d bytes", c.side, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.c, b); err != nil {
		return "", fmt.Errorf("rabit relay: reading from the %s: %w", c.side, err)
	}
	return string(b), nil
}

func (c *conn) putStr(s string) error {
	if err := c.putInt(int32(len(s))); err != nil {
		return err
	}
	_, err := io.WriteString(c.c, s)
	return err
}

// copyInts passes n integers from src to dst and returns them.
func copyInts(dst, src *conn, n int) ([]int32, error) {
	out := make([]int32, n)
	for i := range out {
		v, err := src.int()
		if err != nil {
			return nil, err
		}
		if err := dst.putInt(v); err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func copyStr(dst, src *conn) (string, error) {
	s, err := src.str()
	if err != nil {
		return "", err
	}
	return s, dst.putStr(s)
}

// relayTracker relays one of XGBoost's tracker connections.
func (r *Relay) relayTracker(local net.Conn) error {
	defer local.Close()
	if !r.track(local, true) {
		return nil
	}
	defer r.track(local, false)
	remote, err := r.Dial(r.ctx, r.Peers[0], TargetTracker)
	if err != nil {
		return fmt.Errorf("the rabit tracker (worker 0 at %s) is unreachable: %w", r.Peers[0], err)
	}
	defer remote.Close()
	if !r.track(remote, true) {
		return nil
	}
	defer r.track(remote, false)
	x := &conn{local, "XGBoost worker"}
	t := &conn{remote, "tracker"}
	cmd, err := handshake(x, t)
	if err != nil {
		return fmt.Errorf("the rabit tracker (worker 0 at %s): %w", r.Peers[0], err)
	}
	if cmd == "start" || cmd == "recover" {
		if err := r.linkSetup(x, t); err != nil {
			return err
		}
	}
	tunnel.Splice(local, remote)
	return nil
}

// handshake relays the magic numbers and the worker's rank, world size,
// task id and command, and returns the command.
func handshake(x, t *conn) (string, error) {
	m, err := copyInts(t, x, 1)
	if err != nil {
		return "", err
	}
	if m[0] != magic {
		return "", fmt.Errorf("rabit relay: XGBoost sent magic %#x, want %#x", m[0], magic)
	}
	// The tracker answers at once unless it is stuck, and XGBoost waits
	// for this answer without a bound (in its shutdown too): fail it.
	t.c.SetReadDeadline(time.Now().Add(trackerAnswerTimeout))
	if m, err = copyInts(x, t, 1); err != nil {
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			return "", fmt.Errorf("rabit relay: the tracker did not answer within %s", trackerAnswerTimeout)
		}
		return "", err
	}
	t.c.SetReadDeadline(time.Time{})
	if m[0] != magic {
		return "", fmt.Errorf("rabit relay: the tracker sent magic %#x, want %#x", m[0], magic)
	}
	if _, err := copyInts(t, x, 2); err != nil { // rank, world size
		return "", err
	}
	if _, err := copyStr(t, x); err != nil { // task id
		return "", err
	}
	return copyStr(t, x)
}

// linkSetup relays the rank assignment and the link negotiation, rewriting
// each peer address to the loopback port that tunnels to that peer, and
// learns this worker's listening port.
func (r *Relay) linkSetup(x, t *conn) error {
	v, err := copyInts(x, t, 4) // rank, parent rank, world size, number of tree neighbours
	if err != nil {
		return err
	}
	rank, world, nn := int(v[0]), int(v[2]), int(v[3])
	if rank != r.Index {
		return fmt.Errorf("rabit relay: the tracker made worker %d rank %d (ranks must follow the task ids)", r.Index, rank)
	}
	if world != len(r.Peers) {
		return fmt.Errorf("rabit relay: the tracker runs %d workers, this job %d", world, len(r.Peers))
	}
	if nn < 0 || nn > maxLinks {
		return fmt.Errorf("rabit relay: the tracker sent %d neighbours", nn)
	}
	if _, err := copyInts(x, t, nn+2); err != nil { // neighbours, ring previous, ring next
		return err
	}
	for {
		g, err := copyInts(t, x, 1) // links already good
		if err != nil {
			return err
		}
		if g[0] < 0 || g[0] > maxLinks {
			return fmt.Errorf("rabit relay: XGBoost reported %d good links", g[0])
		}
		if _, err := copyInts(t, x, int(g[0])); err != nil {
			return err
		}
		n, err := copyInts(x, t, 2) // to connect, to accept
		if err != nil {
			return err
		}
		if n[0] < 0 || n[0] > maxLinks {
			return fmt.Errorf("rabit relay: the tracker sent %d peers", n[0])
		}
		for range n[0] {
			if _, err := t.str(); err != nil { // the host the tracker saw: a loopback address, meaningless here
				return err
			}
			if _, err := t.int(); err != nil { // the peer's own port, reached through its tunnel server instead
				return err
			}
			pr, err := t.int()
			if err != nil {
				return err
			}
			if pr < 0 || int(pr) >= len(r.Peers) || int(pr) == r.Index {
				return fmt.Errorf("rabit relay: the tracker named peer rank %d", pr)
			}
			port, err := r.peerPort(int(pr))
			if err != nil {
				return err
			}
			if err := x.putStr("127.0.0.1"); err != nil {
				return err
			}
			if err := x.putInt(int32(port)); err != nil {
				return err
			}
			if err := x.putInt(pr); err != nil {
				return err
			}
		}
		e, err := copyInts(t, x, 1) // failed connections
		if err != nil {
			return err
		}
		if e[0] != 0 {
			continue
		}
		// This worker's listening port: known here before the tracker
		// can hand it to a peer, whose stream then finds it.
		p, err := x.int()
		if err != nil {
			return err
		}
		if p <= 0 || p > 65535 {
			return fmt.Errorf("rabit relay: XGBoost reported listening port %d", p)
		}
		r.mu.Lock()
		r.rabitPort = int(p)
		r.mu.Unlock()
		return t.putInt(p)
	}
}
