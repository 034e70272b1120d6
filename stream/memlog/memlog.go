// Package memlog is an in-memory stream.Log: partitioned streams, task
// ownership shared by the sessions of one process, and atomic commits. The
// stream engine's bounded mode runs on it, and tests use it to check the
// engine's semantics without a broker.
package memlog

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ppml/ppml/stream"
)

// Log is an in-memory log. The zero value is not usable; call New.
type Log struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	streams map[string][][]entry
	ids     map[string]bool // output ids written
	state   map[string]map[stream.TaskID]saved
	members map[string][]*session // by group
	bounded bool
}

type entry struct{ value []byte }

type saved struct {
	snapshot []byte
	next     string
}

// New returns an empty log. A bounded log tells sessions, with
// Batch.EndOfInput, when a task has read everything there is: its input
// ends (the bounded mode's batch semantics).
func New(bounded bool) *Log {
	return &Log{changed: make(chan struct{}), streams: map[string][][]entry{}, ids: map[string]bool{},
		state: map[string]map[stream.TaskID]saved{}, members: map[string][]*session{}, bounded: bounded}
}

func (l *Log) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Create makes a stream with n partitions if it does not exist.
func (l *Log) Create(name string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.create(name, n)
}

func (l *Log) create(name string, n int) {
	if s, ok := l.streams[name]; ok && len(s) >= n {
		return
	}
	s := l.streams[name]
	for len(s) < n {
		s = append(s, nil)
	}
	l.streams[name] = s
}

// Append adds records to a partition.
func (l *Log) Append(name string, partition int, values ...[]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[name]
	if !ok || partition < 0 || partition >= len(s) {
		return fmt.Errorf("memlog: no partition %d of stream %s", partition, name)
	}
	for _, v := range values {
		s[partition] = append(s[partition], entry{value: append([]byte(nil), v...)})
	}
	l.notify()
	return nil
}

// Read returns the committed records of a partition.
func (l *Log) Read(name string, partition int) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[name]
	if partition >= len(s) {
		return nil
	}
	out := make([][]byte, len(s[partition]))
	for i, e := range s[partition] {
		out[i] = e.value
	}
	return out
}

// Partitions returns a stream's partition count (0: no such stream).
func (l *Log) Partitions(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.streams[name])
}

// Join implements stream.Log.
func (l *Log) Join(_ context.Context, t stream.Topology) (stream.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range append(append([]stream.StreamSpec(nil), t.Inputs...), t.Outputs...) {
		l.create(s.Name, s.Partitions)
	}
	s := &session{l: l, topo: t, owned: map[stream.TaskID]*cursor{}}
	for _, in := range t.Inputs {
		for p := 0; p < in.Partitions; p++ {
			s.all = append(s.all, stream.TaskID{Stream: in.Name, Partition: p})
		}
	}
	for _, o := range l.members[t.Group] {
		if o.topo.Worker == t.Worker {
			return nil, fmt.Errorf("memlog: worker %s is already a member of group %s", t.Worker, t.Group)
		}
	}
	l.members[t.Group] = append(l.members[t.Group], s)
	if l.state[t.Group] == nil {
		l.state[t.Group] = map[stream.TaskID]saved{}
	}
	l.notify()
	return s, nil
}

type session struct {
	l      *Log
	topo   stream.Topology
	all    []stream.TaskID
	owned  map[stream.TaskID]*cursor
	closed bool
}

type cursor struct {
	next  int // index of the next record to deliver
	ended bool
}

// desired is this session's share: tasks dealt round-robin over the
// members sorted by name, and only those no other member still holds.
func (s *session) desired() map[stream.TaskID]bool {
	ms := s.l.members[s.topo.Group]
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.topo.Worker
	}
	sort.Strings(names)
	me := sort.SearchStrings(names, s.topo.Worker)
	out := map[stream.TaskID]bool{}
	for i, t := range s.all {
		if i%len(names) == me {
			out[t] = true
		}
	}
	return out
}

func (s *session) heldByOther(t stream.TaskID) bool {
	for _, m := range s.l.members[s.topo.Group] {
		if m != s && m.owned[t] != nil {
			return true
		}
	}
	return false
}

func (s *session) Poll(ctx context.Context, max time.Duration) (*stream.Batch, error) {
	deadline := time.Now().Add(max)
	for {
		s.l.mu.Lock()
		if s.closed {
			s.l.mu.Unlock()
			return nil, fmt.Errorf("memlog: session closed")
		}
		b := &stream.Batch{}
		want := s.desired()
		for t := range s.owned {
			if !want[t] {
				delete(s.owned, t)
				b.Revoked = append(b.Revoked, t)
				s.l.notify()
			}
		}
		for _, t := range s.all {
			if want[t] && s.owned[t] == nil && !s.heldByOther(t) {
				sv := s.l.state[s.topo.Group][t]
				c := &cursor{}
				if sv.next != "" {
					c.next, _ = strconv.Atoi(sv.next)
				}
				s.owned[t] = c
				b.Assigned = append(b.Assigned, stream.Assignment{Task: t, Snapshot: sv.snapshot, Resume: sv.next})
			}
		}
		for _, t := range s.all {
			c := s.owned[t]
			if c == nil {
				continue
			}
			part := s.l.streams[t.Stream][t.Partition]
			for n := 0; c.next < len(part) && n < 1000; n++ {
				b.Records = append(b.Records, stream.Record{Task: t, Value: part[c.next].value, Next: strconv.Itoa(c.next + 1)})
				c.next++
			}
			if s.l.bounded && c.next == len(part) && !c.ended && t.Stream == s.all[0].Stream {
				c.ended = true
				b.EndOfInput = append(b.EndOfInput, t)
			}
		}
		ch := s.l.changed
		s.l.mu.Unlock()
		if len(b.Assigned)+len(b.Revoked)+len(b.Records)+len(b.EndOfInput) > 0 {
			return b, nil
		}
		d := time.Until(deadline)
		if d <= 0 {
			return b, nil
		}
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return b, nil
		}
		t.Stop()
	}
}

func (s *session) Commit(_ context.Context, tasks []stream.TaskCommit) error {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memlog: session closed")
	}
	for _, tc := range tasks {
		if s.owned[tc.Task] == nil {
			s.owned = map[stream.TaskID]*cursor{} // re-assign from committed state
			return fmt.Errorf("memlog: task %s: %w", tc.Task, stream.ErrFenced)
		}
	}
	// Commits are atomic here, so a correct engine never writes an output
	// id twice; a repeat is a bug that logs relying on ids (JetStream)
	// would silently drop: fail loudly.
	for _, tc := range tasks {
		for _, o := range tc.Outputs {
			if o.ID != "" && s.l.ids[o.ID] {
				return fmt.Errorf("memlog: output id %q written twice", o.ID)
			}
		}
	}
	for _, tc := range tasks {
		for _, o := range tc.Outputs {
			if o.ID != "" {
				s.l.ids[o.ID] = true
			}
			part := s.l.streams[o.Stream]
			if o.Partition < 0 || o.Partition >= len(part) {
				return fmt.Errorf("memlog: no partition %d of stream %s", o.Partition, o.Stream)
			}
			part[o.Partition] = append(part[o.Partition], entry{value: o.Value})
		}
		s.l.state[s.topo.Group][tc.Task] = saved{snapshot: tc.Snapshot, next: tc.Next}
	}
	s.l.notify()
	return nil
}

func (s *session) Close(context.Context) error {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ms := s.l.members[s.topo.Group]
	for i, m := range ms {
		if m == s {
			s.l.members[s.topo.Group] = append(ms[:i:i], ms[i+1:]...)
			break
		}
	}
	s.owned = nil
	s.l.notify()
	return nil
}

// Kill removes a worker from its group as if its process died: its tasks
// become free for others, and nothing it did since its last commit
// survives. Its session fails from then on.
func (l *Log) Kill(group, worker string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.members[group]
	for i, m := range ms {
		if m.topo.Worker == worker {
			m.closed = true
			m.owned = nil
			l.members[group] = append(ms[:i:i], ms[i+1:]...)
			break
		}
	}
	l.notify()
}

// Members returns the number of members of a group.
func (l *Log) Members(group string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.members[group])
}
