package stream

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Log is the durable, partitioned log a pipeline runs on: Kafka, NATS
// JetStream, Redis Streams (packages stream/kafka, stream/jetstream,
// stream/redisstream), or memory (stream/memlog). The engine never knows
// which one it has.
type Log interface {
	// Join makes this worker a member of the group that runs the
	// topology; the log decides which tasks the worker owns.
	Join(ctx context.Context, t Topology) (Session, error)
}

// Topology is what a worker tells the log when it joins.
type Topology struct {
	Group   string       // the pipeline's name: consumer group, leases and state
	Worker  string       // this worker's name; stable across restarts of the same worker
	Inputs  []StreamSpec // streams whose partitions are tasks
	Outputs []StreamSpec // streams the tasks write; created when missing
}

// TaskID is one partition of an input stream; its state and position move
// between workers together.
type TaskID struct {
	Stream    string
	Partition int
}

func (t TaskID) String() string { return fmt.Sprintf("%s/%d", t.Stream, t.Partition) }

// Session is one worker's membership. Poll and Commit are called from one
// goroutine.
type Session interface {
	// Poll waits up to max for records of the tasks the worker owns.
	// A task appears in Assigned (with its last committed snapshot) before
	// its first record, and again after it was revoked or a commit failed.
	// Revoked tasks were taken away: the engine discards what it did for
	// them since their last commit. Records of one task come in log order.
	Poll(ctx context.Context, max time.Duration) (*Batch, error)
	// Commit makes the outputs, snapshots and positions of the given tasks
	// durable: on logs with transactions (Kafka, Redis MULTI/EXEC) all of
	// them at once; on JetStream per task, with outputs de-duplicated by
	// id so a task that repeats its work after a failure writes nothing
	// twice. After an error the session re-assigns every task it still
	// owns from its committed state, and the engine discards its own.
	Commit(ctx context.Context, tasks []TaskCommit) error
	// Close leaves the group, handing the worker's tasks to the others.
	// Work not committed is lost (and will be redone by the next owner).
	Close(ctx context.Context) error
}

// Batch is the result of a Poll.
type Batch struct {
	Assigned []Assignment
	Revoked  []TaskID
	Records  []Record
	// CommitNow asks for a checkpoint soon: the log waits for one (a
	// rebalance held back until the work polled so far is committed).
	CommitNow bool
	// EndOfInput lists source tasks that read everything a bounded log
	// holds (the batch mode's files): their input ends as if every writer
	// had written its end record.
	EndOfInput []TaskID
}

// Assignment hands a task to the worker.
type Assignment struct {
	Task TaskID
	// Snapshot is the task's last committed (sealed) snapshot; nil when
	// the task has none yet.
	Snapshot []byte
	// Resume is the position the log resumes the task at; it must match
	// the position inside the snapshot ("" for a task never committed).
	Resume string
}

// Record is one message of a task's input.
type Record struct {
	Task  TaskID
	Value []byte
	// Next is the position right after this record, in the log's own
	// notation (an offset, a stream sequence, an entry id).
	Next string
}

// TaskCommit is one task's share of a checkpoint.
type TaskCommit struct {
	Task     TaskID
	Snapshot []byte // sealed
	Next     string // position after the last record the snapshot covers
	Outputs  []Output
}

// Output is one record written by a task.
type Output struct {
	Stream    string
	Partition int
	Value     []byte
	// ID is unique and deterministic: the same logical output has the same
	// id when a task repeats its work, so logs without transactions drop
	// the repeat (JetStream's Nats-Msg-Id).
	ID string
}

// ErrFenced is returned by Commit when another worker took over one of
// the tasks: the worker's uncommitted work for it must go.
var ErrFenced = errors.New("task taken over by another worker")
