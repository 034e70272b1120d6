package envelope

import (
	"sync"
	"sync/atomic"
)

// Positional encryption and decryption (a regular file as input) run
// segments on several goroutines that each read a segment with one ReadAt
// and seal or open it in place; the output goes through one lane (see
// runWritten), a positional write per segment for a file and a write in
// order for a stream. The caller's goroutine is one of the workers.

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

func clampWorkers(workers int, n uint64) int {
	if workers < 1 {
		workers = sealWorkers()
	}
	if uint64(workers) > n {
		workers = int(max(n, 1))
	}
	return workers
}

// runWritten produces every segment i in [0, n) on workers goroutines and
// writes each through one output lane: produce(w, buf, i) reads and seals
// or opens segment i in buf (one of a fixed pool of buffers, reused, so the
// steady state neither allocates nor faults in fresh pages) and returns the
// bytes to write; write(i, out) writes them. Only one goroutine writes at a
// time, and it is whichever worker finds the lane free with segments ready:
// it writes them while any are ready (in segment order when ordered),
// returning each buffer to the pool as soon as it is written, and goes
// back to producing. No goroutine is dedicated to writing and none waits for
// another's write while there is a segment it could produce: on a tmpfs a
// write holds the file's lock, so writers on several goroutines would queue
// for it with a core idle, while here the writes run back to back on
// whichever core is free and the other core seals.
//
// After a failure no new segment is started and the error returned is that
// of the lowest-numbered failing segment (produce or write); as indices are
// handed out in order and a started segment is always finished, it is the
// first failure in file order. When ordered, every segment before it has
// been written and none after it; when not, segments after it may have
// been written and the caller must discard the output.
func runWritten(n uint64, workers, segBuf int, ordered bool,
	produce func(w int, buf []byte, i uint64) ([]byte, error),
	write func(i uint64, out []byte) error) error {
	if n == 0 {
		return nil
	}
	workers = clampWorkers(workers, n)
	type ready struct {
		i   uint64
		buf []byte
		out []byte
	}
	var (
		mu       sync.Mutex
		cond     = sync.Cond{L: &mu}
		free     = make([][]byte, 0, workers+2)
		pending  = make([]ready, 0, workers+2) // produced, not yet written
		all      [][]byte
		next     uint64 // next index to produce
		emit     uint64 // ordered: next index to write
		inflight int
		writing  bool
		bad      = n // lowest failing index
		err      error
	)
	// Two buffers more than workers: one being written while every worker
	// produces, and one ready behind it.
	for range workers + min(workers, 2) {
		b := getBuffer(segBuf)
		free = append(free, b)
		all = append(all, b)
	}
	fail := func(i uint64, e error) { // mu held
		if i < bad {
			bad, err = i, e
		}
	}
	// take removes and returns a writable segment, if any: the lowest
	// pending one (the next in order when ordered, and none after a
	// failure of an ordered output before it, or of any other). mu held.
	take := func() (ready, bool) {
		k := -1
		for j := range pending {
			if k < 0 || pending[j].i < pending[k].i {
				k = j
			}
		}
		if k < 0 || ordered && (pending[k].i != emit || emit >= bad) || !ordered && err != nil {
			return ready{}, false
		}
		r := pending[k]
		pending[k] = pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		return r, true
	}
	work := func(w int) {
		mu.Lock()
		defer mu.Unlock()
		for {
			if !writing {
				// Hold the lane while segments are ready; each buffer goes
				// back to the pool as soon as its segment is written, so
				// producers never wait for a whole batch.
				for r, ok := take(); ok; r, ok = take() {
					writing = true
					mu.Unlock()
					werr := write(r.i, r.out)
					mu.Lock()
					free = append(free, r.buf)
					if werr != nil {
						fail(r.i, werr)
					} else if ordered {
						emit++
					}
					cond.Broadcast()
				}
				if writing {
					writing = false
					cond.Broadcast()
					continue
				}
			}
			if err == nil && next < n && len(free) > 0 {
				i := next
				next++
				buf := free[len(free)-1]
				free = free[:len(free)-1]
				inflight++
				mu.Unlock()
				out, perr := produce(w, buf, i)
				mu.Lock()
				inflight--
				if perr != nil {
					fail(i, perr)
					free = append(free, buf)
				} else {
					pending = append(pending, ready{i, buf, out})
				}
				cond.Broadcast()
				continue
			}
			if (err != nil || next >= n) && inflight == 0 && !writing {
				return // nothing left that could become writable
			}
			cond.Wait()
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
	for _, b := range all {
		putBuffer(b) // cleared: plaintext of segments opened, or not sealed
	}
	return err
}

// bufferPool keeps full-size segment buffers of the default segment size
// between calls (a tree of files, a benchmark's rounds): a fresh buffer's
// pages fault in one by one on first use, a reused one's are mapped.
var bufferPool sync.Pool // *[]byte, DefaultSegmentSize+TagSize long

func getBuffer(n int) []byte {
	if n == DefaultSegmentSize+TagSize {
		if p, ok := bufferPool.Get().(*[]byte); ok {
			return *p
		}
	}
	return make([]byte, n)
}

// putBuffer clears b and keeps it for reuse if it has the default size.
func putBuffer(b []byte) {
	clear(b)
	if len(b) == DefaultSegmentSize+TagSize {
		bufferPool.Put(&b)
	}
}
