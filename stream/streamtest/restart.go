package streamtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/stream"
)

// Restartable is a broker that can go away and come back on the same
// address with the data it had (a broker restart, not a new broker).
type Restartable interface {
	Broker
	// Stop takes the broker down; connections to it fail.
	Stop(t testing.TB)
	// Restart brings it back on the same address with its data.
	Restart(t testing.TB)
}

// RunBrokerGoesAway runs one worker (in this process, through
// be.Connect) on b, takes the broker down mid-stream — with records read
// and not yet committed — for outage, brings it back and feeds the rest:
// when the stream ends, the output is exactly that of an uninterrupted run,
// and the worker never stopped. It returns the worker's log lines that
// report the outage (a failed read or checkpoint): a client that
// reconnects by itself (NATS) may hide a short one from the worker.
func RunBrokerGoesAway(t *testing.T, be Backend, b Restartable, outage time.Duration) (reported []string) {
	return runBrokerAway(t, be, b, outage, false)
}

// RunBrokerRestartsIdle is RunBrokerGoesAway with the worker idle when
// the broker goes: everything fed so far committed, nothing in flight. A
// worker that learns of the outage only from its reads (nothing to
// commit fails) must still read what comes after it.
func RunBrokerRestartsIdle(t *testing.T, be Backend, b Restartable, outage time.Duration) (reported []string) {
	return runBrokerAway(t, be, b, outage, true)
}

func runBrokerAway(t *testing.T, be Backend, b Restartable, outage time.Duration, idle bool) (reported []string) {
	data := Workload(150)
	want := Reference(t, data)
	b.Create(t, "events", Partitions)
	log, release, err := be.Connect(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var mu sync.Mutex
	var logs []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	src, sink, state := Keys()
	go func() {
		_, err := stream.Run(ctx, stream.Config{Plan: Plan(), Log: log, Worker: "w1",
			Keys: stream.Keys{Source: src, Sink: sink, State: state}, CheckpointInterval: 50 * time.Millisecond,
			Logf: func(f string, a ...any) {
				mu.Lock()
				logs = append(logs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(f, a...))
				mu.Unlock()
			}})
		done <- err
	}()
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("worker log:\n%s", strings.Join(logs, "\n"))
			mu.Unlock()
		}
	}()
	running := func() {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("the worker ended: %v", err)
		default:
		}
	}
	f := &feeder{b: b, data: data}
	f.feed(t, 0.3)
	deadline := time.Now().Add(30 * time.Second)
	for !committed(t, b) {
		if time.Now().After(deadline) {
			t.Fatal("the worker committed nothing in 30s")
		}
		running()
		time.Sleep(20 * time.Millisecond)
	}
	if idle {
		f.feed(t, 0.5)
		// Ten checkpoint intervals: the worker has committed what it
		// read and waits on an empty log.
		time.Sleep(500 * time.Millisecond)
	} else {
		f.feed(t, 0.5) // in flight when the broker goes
	}
	b.Stop(t)
	for down := time.Now(); time.Since(down) < outage; {
		running()
		time.Sleep(20 * time.Millisecond)
	}
	b.Restart(t)
	f.feed(t, 1)
	deadline = time.Now().Add(60 * time.Second)
	var got Output
	for got = ReadOutput(t, b); !got.Ended; got = ReadOutput(t, b) {
		if time.Now().After(deadline) {
			t.Fatal("no complete output 60s after the broker came back")
		}
		running()
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	Compare(t, got, want)
	mu.Lock()
	defer mu.Unlock()
	for _, l := range logs {
		if strings.Contains(l, " failed: ") {
			reported = append(reported, l)
		}
	}
	return reported
}

// committed reports whether the worker committed something: the shuffle
// stream is not empty.
func committed(t testing.TB, b Broker) bool {
	for p := 0; p < Plan().SinkPartitions(); p++ {
		if len(b.Read(t, Plan().ShuffleStream(), p)) > 0 {
			return true
		}
	}
	return false
}
