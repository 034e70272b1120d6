package model

import (
	"context"
	"fmt"
	"time"

	"github.com/ppml/ppml/serve/tensor"
)

// BatchOptions configure dynamic batching: requests waiting for the same model version are
// joined along the batch dimension, up to MaxBatch rows, and run as one call.
type BatchOptions struct {
	// MaxBatch is the most rows one model call gets (≤ 1: no batching). A request larger
	// than MaxBatch runs alone.
	MaxBatch int
	// MaxDelay is how long a batch that is not full waits for more requests after its first
	// one arrived. Zero joins only requests that are already waiting (no added latency).
	MaxDelay time.Duration
	// Workers is the number of model calls in flight at once (default 1).
	Workers int
	// Observe, if set, is told the rows of every batch run.
	Observe func(rows int)
}

type result struct {
	out []tensor.Tensor
	err error
}

type request struct {
	ctx  context.Context
	in   []tensor.Tensor
	rows int
	done chan result
}

type batcher struct {
	m    Model
	opt  BatchOptions
	q    chan *request
	stop chan struct{}
	quit chan struct{}
}

func newBatcher(m Model, opt BatchOptions) *batcher {
	if opt.Workers < 1 {
		opt.Workers = 1
	}
	b := &batcher{m: m, opt: opt, q: make(chan *request, 4*opt.MaxBatch), stop: make(chan struct{}), quit: make(chan struct{})}
	done := make(chan struct{}, opt.Workers)
	for range opt.Workers {
		go func() { b.run(); done <- struct{}{} }()
	}
	go func() {
		for range opt.Workers {
			<-done
		}
		close(b.quit)
	}()
	return b
}

// close stops the workers after the batches they are running.
func (b *batcher) close() {
	close(b.stop)
	<-b.quit
}

func (b *batcher) do(ctx context.Context, in []tensor.Tensor) ([]tensor.Tensor, error) {
	rows := int(in[0].Shape[0])
	if rows >= b.opt.MaxBatch {
		if b.opt.Observe != nil {
			b.opt.Observe(rows)
		}
		return b.m.Predict(ctx, in)
	}
	r := &request{ctx: ctx, in: in, rows: rows, done: make(chan result, 1)}
	select {
	case b.q <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, Unavailable("the server is shutting down")
	}
	select {
	case res := <-r.done:
		return res.out, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) run() {
	var carry *request
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.q:
			case <-b.stop:
				return
			}
		}
		batch := []*request{first}
		rows := first.rows
		var timer <-chan time.Time
		var t *time.Timer
		if b.opt.MaxDelay > 0 {
			t = time.NewTimer(b.opt.MaxDelay)
			timer = t.C
		}
	gather:
		for rows < b.opt.MaxBatch {
			select {
			case r := <-b.q:
				if rows+r.rows > b.opt.MaxBatch {
					carry = r
					break gather
				}
				batch = append(batch, r)
				rows += r.rows
			default:
				if timer == nil {
					break gather
				}
				select {
				case r := <-b.q:
					if rows+r.rows > b.opt.MaxBatch {
						carry = r
						break gather
					}
					batch = append(batch, r)
					rows += r.rows
				case <-timer:
					break gather
				case <-b.stop:
					break gather
				}
			}
		}
		if t != nil {
			t.Stop()
		}
		b.runBatch(batch)
	}
}

// runBatch joins the live requests of a batch, runs the model once and hands each request
// its rows of every output.
func (b *batcher) runBatch(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if r.ctx.Err() == nil {
			live = append(live, r)
		} else {
			r.done <- result{err: r.ctx.Err()}
		}
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		r := live[0]
		if b.opt.Observe != nil {
			b.opt.Observe(r.rows)
		}
		out, err := b.m.Predict(r.ctx, r.in)
		r.done <- result{out, err}
		return
	}
	fail := func(err error) {
		for _, r := range live {
			r.done <- result{err: err}
		}
	}
	in := make([]tensor.Tensor, len(live[0].in))
	total := 0
	for _, r := range live {
		total += r.rows
	}
	for i := range in {
		parts := make([]tensor.Tensor, len(live))
		for j, r := range live {
			parts[j] = r.in[i]
		}
		t, err := tensor.Concat(parts)
		if err != nil {
			// Requests with the same metadata but different row shapes (a -1 past the batch
			// dimension): run them one by one instead.
			for _, r := range live {
				out, err := b.m.Predict(r.ctx, r.in)
				r.done <- result{out, err}
			}
			return
		}
		in[i] = t
	}
	if b.opt.Observe != nil {
		b.opt.Observe(total)
	}
	// The batch runs under no single request's context: one client going away must not
	// cancel the others.
	out, err := b.m.Predict(context.Background(), in)
	if err != nil {
		fail(err)
		return
	}
	for _, o := range out {
		if len(o.Shape) == 0 || int(o.Shape[0]) != total {
			fail(fmt.Errorf("model returned output %q with shape %v for a batch of %d rows", o.Name, o.Shape, total))
			return
		}
	}
	lo := 0
	for _, r := range live {
		mine := make([]tensor.Tensor, len(out))
		for i := range out {
			mine[i] = out[i].Rows(lo, lo+r.rows)
		}
		lo += r.rows
		r.done <- result{out: mine}
	}
}
