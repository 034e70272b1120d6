package streamtest

import (
	"testing"
	"time"
)

// records per source partition: enough for many checkpoints, few enough
// for a lean suite.
const perPartition = 400

// feeder appends the workload in slices, as producers would.
type feeder struct {
	b    Broker
	data [][][]byte
	next int
}

func (f *feeder) feed(t testing.TB, upTo float64) {
	n := int(float64(len(f.data[0])) * upTo)
	for ; f.next < n; f.next += 20 {
		end := min(f.next+20, n)
		for p, recs := range f.data {
			f.b.Append(t, "events", p, recs[f.next:end]...)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.next = n
}

// waitOutput waits until every result partition has its end record.
func waitOutput(t testing.TB, b Broker, limit time.Duration, workers ...*Worker) Output {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out := ReadOutput(t, b)
		if out.Ended {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete output after %v", limit)
		}
		for _, w := range workers {
			w.Running()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitProgress waits until a worker committed something: the shuffle
// stream is not empty.
func waitProgress(t testing.TB, b Broker, workers ...*Worker) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for p := 0; p < Plan().SinkPartitions(); p++ {
			if len(b.Read(t, Plan().ShuffleStream(), p)) > 0 {
				return
			}
		}
		for _, w := range workers {
			w.Running()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no worker committed anything in 30s")
}

// RunKill kills a worker with SIGKILL mid-stream and restarts it: when
// the stream ends, the output is exactly that of an uninterrupted run.
func RunKill(t *testing.T, be Backend) {
	data := Workload(perPartition)
	want := Reference(t, data)
	b := be.Start(t)
	b.Create(t, "events", Partitions)
	f := &feeder{b: b, data: data}
	w := StartWorker(t, "w1", b)
	f.feed(t, 0.3)
	waitProgress(t, b, w)
	f.feed(t, 0.5)
	w.Kill()
	f.feed(t, 0.7)
	w = StartWorker(t, "w1", b)
	f.feed(t, 1)
	got := waitOutput(t, b, 2*time.Minute, w)
	w.Stop()
	Compare(t, got, want)
}

// RunScaleOut runs two workers, adds a third (the tasks rebalance), kills
// one with SIGKILL (its tasks move when the log notices) and stops another
// (it hands its tasks over): the output is that of one uninterrupted worker.
func RunScaleOut(t *testing.T, be Backend) {
	data := Workload(perPartition)
	want := Reference(t, data)
	b := be.Start(t)
	b.Create(t, "events", Partitions)
	f := &feeder{b: b, data: data}
	w1 := StartWorker(t, "w1", b)
	w2 := StartWorker(t, "w2", b)
	f.feed(t, 0.2)
	waitProgress(t, b, w1, w2)
	limit := 30*time.Second + be.Dead
	w1.WaitLog("assigned", 1, limit)
	w2.WaitLog("assigned", 1, limit)
	w3 := StartWorker(t, "w3", b)
	w3.WaitLog("assigned", 1, limit) // the tasks rebalanced
	f.feed(t, 0.4)
	n1, n3 := w1.Count("assigned"), w3.Count("assigned")
	w2.Kill()
	f.feed(t, 0.6)
	deadline := time.Now().Add(limit)
	for w1.Count("assigned") == n1 && w3.Count("assigned") == n3 { // w2's tasks moved
		if time.Now().After(deadline) {
			t.Fatal("the killed worker's tasks did not move")
		}
		w1.Running()
		w3.Running()
		time.Sleep(20 * time.Millisecond)
	}
	f.feed(t, 0.8)
	n1 = w1.Count("assigned")
	w3.Stop()
	w1.WaitLog("assigned", n1+1, limit) // w3's tasks came to w1
	f.feed(t, 1)
	got := waitOutput(t, b, 2*time.Minute, w1)
	w1.Stop()
	Compare(t, got, want)
}
