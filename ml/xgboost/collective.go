package xgboost

/*
#include <stdlib.h>
#include <xgboost/c_api.h>
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Collective joins a training run to XGBoost's rabit collective: the
// workers of one job each train on their own rows, and XGBoost's
// allreduce (histograms, sketches, the model's base score) makes them
// build the same model. The tracker (xgboost.tracker.RabitTracker) hands
// out ranks and peer addresses; in ppml every worker reaches the tracker
// and its peers only through the attested tunnels of package
// ml/xgboost/rabit, so TrackerHost is a loopback address.
type Collective struct {
	TrackerHost string
	TrackerPort int
	// TaskID names the worker; ranks follow the sorted task ids when the
	// tracker sorts by task (rabit.TaskID makes ids that sort by index).
	TaskID    string
	WorldSize int
	// Rank is the rank this worker must get (its index: the tunnels map
	// ranks to workers by index).
	Rank int
	// Timeout bounds how long a worker waits on a dead peer (rabit's own
	// timeout; 0: 5 minutes). A worker that dies mid-training then fails
	// the others' Train with an error instead of a hang.
	Timeout time.Duration
	// Agree, when set, is a value every worker must hold (its length the
	// same on all): after joining and before the first round the workers
	// compare it over the collective, and Train fails on every worker when
	// any differs (ErrDisagree). ppml compares the workers' views of the
	// job's input, so that none trains on another listing of the files.
	Agree []byte
	// Joined, when set, is called once this worker joined the collective:
	// every worker reached the tracker and connected to its peers. Until
	// then XGBoost waits without a bound (on the tracker, and for its
	// peers to connect), so a caller that bounds the join stops waiting here.
	Joined func()
	// Finish, when set, is called on every worker after the last round,
	// before it leaves the collective: a worker may predict with b and
	// combine results with the others (Booster.AllreduceSum). Every worker
	// must make the same collective calls in the same order.
	Finish func(b *Booster) error
}

// ErrDisagree is returned (wrapped) by Train when the workers' Agree values differ.
var ErrDisagree = errors.New("the workers' values differ")

// XGBoost 1.7's collective::DataType and collective::Operation
// (src/collective/communicator.h), which XGCommunicatorAllreduce takes.
const (
	collInt32  = 2
	collDouble = 7
	collMax    = 0
	collMin    = 1
	collSum    = 2
)

func (c *Collective) config() ([]byte, error) {
	if c.TrackerHost == "" || c.TrackerPort <= 0 || c.TrackerPort > 65535 {
		return nil, fmt.Errorf("xgboost collective: tracker address %s:%d", c.TrackerHost, c.TrackerPort)
	}
	if c.WorldSize < 1 {
		return nil, fmt.Errorf("xgboost collective: world size %d", c.WorldSize)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	return json.Marshal(map[string]any{
		"xgboost_communicator":      "rabit",
		"rabit_tracker_uri":         c.TrackerHost,
		"rabit_tracker_port":        c.TrackerPort,
		"rabit_task_id":             c.TaskID,
		"rabit_world_size":          c.WorldSize,
		"rabit_timeout":             1,
		"rabit_timeout_sec":         int(timeout / time.Second),
		"rabit_enable_tcp_no_delay": 1,
		"DMLC_WORKER_CONNECT_RETRY": 3,
	})
}

// collectiveInit joins the collective on b's thread (XGBoost 1.7 keeps
// the communicator per thread, so training must run where it was set up).
func (b *Booster) collectiveInit(c *Collective) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	cs := C.CString(string(cfg))
	defer C.free(unsafe.Pointer(cs))
	if err := b.run("XGCommunicatorInit", func(C.BoosterHandle) C.int { return C.XGCommunicatorInit(cs) }); err != nil {
		return fmt.Errorf("xgboost collective: join through tracker %s:%d: %w", c.TrackerHost, c.TrackerPort, err)
	}
	var rank, world C.int
	b.run("XGCommunicatorGetRank", func(C.BoosterHandle) C.int {
		rank, world = C.XGCommunicatorGetRank(), C.XGCommunicatorGetWorldSize()
		return 0
	})
	if int(world) != c.WorldSize || int(rank) != c.Rank {
		b.collectiveFinalize()
		return fmt.Errorf("xgboost collective: the tracker made this worker rank %d of %d, want rank %d of %d", rank, world, c.Rank, c.WorldSize)
	}
	return nil
}

// collectiveAgree checks that every worker holds v: the element-wise
// maximum and minimum over the workers (each byte as an int32) are equal
// exactly when every worker's bytes are the same. Every worker gets the
// same answer, so all fail or none.
func (b *Booster) collectiveAgree(v []byte) error {
	n := len(v)
	buf := unsafe.Slice((*C.int32_t)(C.malloc(C.size_t(2*n)*C.size_t(unsafe.Sizeof(C.int32_t(0))))), 2*n)
	defer C.free(unsafe.Pointer(&buf[0]))
	for i, x := range v {
		buf[i], buf[n+i] = C.int32_t(x), C.int32_t(x)
	}
	for k, op := range []C.int{collMax, collMin} {
		part := unsafe.Pointer(&buf[k*n])
		if err := b.run("XGCommunicatorAllreduce", func(C.BoosterHandle) C.int {
			return C.XGCommunicatorAllreduce(part, C.size_t(n), collInt32, op)
		}); err != nil {
			return fmt.Errorf("xgboost collective: compare the workers' values: %w", err)
		}
	}
	for i := range n {
		if buf[i] != buf[n+i] {
			return fmt.Errorf("xgboost collective: %w", ErrDisagree)
		}
	}
	return nil
}

// collectiveFinalize leaves the collective (tells the tracker this worker
// is done) on b's thread.
func (b *Booster) collectiveFinalize() error {
	return b.run("XGCommunicatorFinalize", func(C.BoosterHandle) C.int { return C.XGCommunicatorFinalize() })
}

// AllreduceSum replaces v by its element-wise sum over the workers of the
// collective b trains in; every worker gets the same sums. It may be called
// only from Collective.Finish, by every worker with the same len(v).
// Sums of one worker's value and zeros are exact: workers gather values by
// each filling its own slots of a zeroed buffer.
func (b *Booster) AllreduceSum(v []float64) error {
	if !b.inCollective {
		return errors.New("xgboost collective: AllreduceSum outside a collective's Finish")
	}
	if len(v) == 0 {
		return nil
	}
	p := unsafe.Pointer(&v[0])
	if err := b.run("XGCommunicatorAllreduce", func(C.BoosterHandle) C.int {
		return C.XGCommunicatorAllreduce(p, C.size_t(len(v)), collDouble, collSum)
	}); err != nil {
		return fmt.Errorf("xgboost collective: sum over the workers: %w", err)
	}
	return nil
}
