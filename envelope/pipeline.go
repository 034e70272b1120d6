package envelope

import (
	"io"
	"runtime"
	"sync"
)

// The writer seals segments on several goroutines when a file spans more
// than one segment: the caller fills segment i+1 while workers seal earlier
// ones and a single goroutine writes them out in order. Buffers circulate
// through a fixed pool, so the steady state allocates nothing.

type sealJob struct {
	buf     []byte // segSize+TagSize
	n       int
	counter uint64
	last    bool
	out     []byte
	done    chan struct{}
}

type sealPipeline struct {
	free  chan *sealJob
	work  chan *sealJob
	order chan *sealJob
	wg    sync.WaitGroup // workers and the output goroutine

	mu  sync.Mutex
	err error // first output error
}

// sealWorkers is how many goroutines seal: all CPUs, at most 4.
func sealWorkers() int { return min(runtime.GOMAXPROCS(0), 4) }

func (w *Writer) startPipeline(workers int) {
	jobs := workers + 2
	p := &sealPipeline{
		free:  make(chan *sealJob, jobs),
		work:  make(chan *sealJob, jobs),
		order: make(chan *sealJob, jobs),
	}
	// The segment being filled becomes the first job's buffer.
	p.free <- &sealJob{buf: w.seg, done: make(chan struct{}, 1)}
	for i := 1; i < jobs; i++ {
		p.free <- &sealJob{buf: make([]byte, w.segSize+TagSize), done: make(chan struct{}, 1)}
	}
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var nonce [12]byte
			copy(nonce[:], w.nonce[:NoncePrefixSize])
			for j := range p.work {
				setNonce(&nonce, j.counter, j.last)
				j.out = w.aead.Seal(j.buf[:0], nonce[:], j.buf[:j.n], nil)
				j.done <- struct{}{}
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for j := range p.order {
			<-j.done
			if p.firstErr() == nil {
				if _, err := w.dst.Write(j.out); err != nil {
					p.setErr(err, j.counter)
				}
			}
			p.free <- j
		}
	}()
	w.pipe = p
	w.job = <-p.free
	w.seg = w.job.buf
}

func (p *sealPipeline) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *sealPipeline) setErr(err error, counter uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = &segmentWriteError{counter, err}
	}
}

type segmentWriteError struct {
	counter uint64
	err     error
}

func (e *segmentWriteError) Error() string {
	return "write segment " + itoa(e.counter) + ": " + e.err.Error()
}
func (e *segmentWriteError) Unwrap() error { return e.err }

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// dispatch hands the filled segment to the pipeline and takes a fresh buffer.
func (w *Writer) dispatch(last bool) error {
	p := w.pipe
	if err := p.firstErr(); err != nil {
		w.err = err
		return err
	}
	j := w.job
	j.n, j.counter, j.last = w.n, w.counter, last
	p.order <- j
	p.work <- j
	w.counter++
	w.n = 0
	if last {
		return nil
	}
	w.job = <-p.free
	w.seg = w.job.buf
	return nil
}

// stopPipeline waits for every dispatched segment to be written.
func (w *Writer) stopPipeline() error {
	p := w.pipe
	if p == nil {
		return nil
	}
	w.pipe = nil
	close(p.work)
	close(p.order)
	p.wg.Wait()
	return p.firstErr()
}

// The reader's WriteTo opens segments on several goroutines: the caller
// reads ciphertext in order and writes plaintext in order, workers only
// authenticate and decrypt. A segment's plaintext is written only after it
// and every segment before it authenticated.

type openJob struct {
	ct     []byte // segSize+TagSize+1
	pt     []byte // segSize
	segLen int
	index  uint64
	last   bool
	out    []byte
	err    error
	done   chan struct{}
}

func (r *Reader) writeToParallel(w io.Writer) (int64, error) {
	workers := r.workers
	jobs := make([]*openJob, workers+2)
	for i := range jobs {
		jobs[i] = &openJob{ct: make([]byte, r.segSize+TagSize+1), pt: make([]byte, r.segSize), done: make(chan struct{}, 1)}
	}
	jobs[0].ct, jobs[0].pt = r.ct, r.pt // reuse the reader's buffers
	work := make(chan *openJob, len(jobs))
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := new([12]byte)
			for j := range work {
				ct := j.ct[:j.segLen]
				out, err := r.op.open(nonce, j.pt[:0], ct, j.index, j.last)
				if err != nil {
					err = r.op.diagnose(nonce, j.pt, ct, j.index, j.last)
				}
				j.out, j.err = out, err
				j.done <- struct{}{}
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	var total int64
	inflight := make([]*openJob, 0, len(jobs)) // FIFO of dispatched jobs
	free := jobs
	reading := true
	for reading || len(inflight) > 0 {
		// Keep every buffer busy while there is input.
		for reading && len(free) > 0 {
			j := free[len(free)-1]
			free = free[:len(free)-1]
			j.index = r.counter
			segLen, last, err := r.readSegment(j.ct, j.pt)
			if err != nil {
				// Segments before this one may still be in flight; report
				// the first failure in file order.
				r.err = err
				reading = false
				free = append(free, j)
				break
			}
			j.segLen, j.last = segLen, last
			work <- j
			inflight = append(inflight, j)
			if last {
				reading = false
			}
		}
		if len(inflight) == 0 {
			break
		}
		j := inflight[0]
		inflight = append(inflight[:0], inflight[1:]...) // shift: keeps the capacity
		<-j.done
		if j.err != nil {
			r.err = j.err
			// Wait for the rest so no worker still uses a buffer.
			for _, k := range inflight {
				<-k.done
			}
			return total, r.err
		}
		if err := r.accept(j.index, len(j.out), j.last); err != nil {
			r.err = err
			for _, k := range inflight {
				<-k.done
			}
			return total, err
		}
		n, err := w.Write(j.out)
		total += int64(n)
		if err != nil {
			for _, k := range inflight {
				<-k.done
			}
			return total, err
		}
		free = append(free, j)
	}
	if r.err != nil {
		return total, r.err
	}
	return total, nil
}
