package kserve

import (
	"io"
	"sync"
)

// buffer is a pooled byte buffer for request bodies and responses: a REST infer request
// otherwise allocates both afresh.
type buffer struct {
	b    []byte
	kept bool
}

// maxPooled bounds the buffers kept for reuse: a rare large request must not pin its
// memory in the pool.
const maxPooled = 64 << 10

var buffers = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4096)} }}

func getBuffer() *buffer { return buffers.Get().(*buffer) }

// keep takes the buffer out of reuse: something still points into it.
func (b *buffer) keep() { b.kept = true }

// put returns the buffer to the pool unless it was kept or has grown large.
func (b *buffer) put() {
	if b.kept || cap(b.b) > maxPooled {
		return
	}
	b.b = b.b[:0]
	buffers.Put(b)
}

// readFrom reads r to its end into b, replacing its contents. size is the length the
// client announced (-1: unknown); it sizes the buffer up front only when small, since a
// client can announce a length it never sends (the reader enforces the body limit).
func (b *buffer) readFrom(r io.Reader, size int64) error {
	b.b = b.b[:0]
	if size > 0 && size <= maxPooled && int(size)+1 > cap(b.b) {
		b.b = make([]byte, 0, int(size)+1) // +1: room to see the end without growing
	}
	for {
		if len(b.b) == cap(b.b) {
			b.b = append(b.b, 0)[:len(b.b)]
		}
		n, err := r.Read(b.b[len(b.b):cap(b.b)])
		b.b = b.b[:len(b.b)+n]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
