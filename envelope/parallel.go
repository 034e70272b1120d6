package envelope

import (
	"sync"
	"sync/atomic"
)

// Positional (file-to-file) encryption and decryption run segments on
// several goroutines that each read, seal or open, and write their own
// segments with ReadAt/WriteAt: one read and one write system call per
// segment, no goroutine hand-off per segment when the output is positional,
// and a single hand-off (the turn to write) when it is a stream. The caller's
// goroutine is one of the workers.

// runUnordered calls fn(w, i) for every segment i in [0, n) on workers
// goroutines (w is the worker's index, for its own buffers). Indices come
// from an atomic counter, so a worker slowed down by other processes does
// not hold the others up. After a failure no new segment is started; the
// error returned is that of the lowest-numbered failing segment, and since
// indices are handed out in order and a started segment is always finished,
// every segment before it was processed: it is the first failure in file
// order.
func runUnordered(n uint64, workers int, fn func(w int, i uint64) error) error {
	workers = clampWorkers(workers, n)
	var (
		next uint64
		stop atomic.Bool
		mu   sync.Mutex
		bad  = n // index of the lowest failing segment
		err  error
	)
	work := func(w int) {
		for !stop.Load() {
			i := atomic.AddUint64(&next, 1) - 1
			if i >= n {
				return
			}
			if e := fn(w, i); e != nil {
				mu.Lock()
				if i < bad {
					bad, err = i, e
				}
				mu.Unlock()
				stop.Store(true)
				return
			}
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
	return err
}

// runOrdered computes segment i on worker i mod workers (compute(w, i)), and
// then runs emit(w, i) in segment order: a worker waits for its turn, emits,
// and passes the turn on, so while one worker writes the others compute.
// A segment that fails to compute is reported when its turn comes: every
// segment before it has been emitted, none after it. The first error in
// segment order is returned.
func runOrdered(n uint64, workers int, compute, emit func(w int, i uint64) error) error {
	workers = clampWorkers(workers, n)
	if workers == 1 {
		for i := uint64(0); i < n; i++ {
			if err := compute(0, i); err != nil {
				return err
			}
			if err := emit(0, i); err != nil {
				return err
			}
		}
		return nil
	}
	turn := make([]chan struct{}, workers)
	for w := range turn {
		turn[w] = make(chan struct{}, 1)
	}
	turn[0] <- struct{}{}
	stop := make(chan struct{})
	var first error // written only by the worker holding the turn, before close(stop)
	work := func(w int) {
		for i := uint64(w); i < n; i += uint64(workers) {
			select {
			case <-stop:
				return
			default:
			}
			err := compute(w, i)
			select {
			case <-turn[w]:
			case <-stop:
				return
			}
			if err == nil {
				err = emit(w, i)
			}
			if err != nil {
				first = err
				close(stop)
				return
			}
			turn[(w+1)%workers] <- struct{}{}
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
	return first
}

func clampWorkers(workers int, n uint64) int {
	if workers < 1 {
		workers = sealWorkers()
	}
	if uint64(workers) > n {
		workers = int(max(n, 1))
	}
	return workers
}
