package parquetcrypt

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// RecordOptions tune NewRecordReader.
type RecordOptions struct {
	// BatchSize is the number of rows per record batch (default 64Ki).
	BatchSize int64
	// Mem allocates the Arrow buffers (default memory.DefaultAllocator).
	Mem memory.Allocator
	// Columns selects leaf columns by index (nil: all).
	Columns []int
}

// NewRecordReader returns Arrow record batches for the whole file. Each row
// group is decrypted into an in-memory plaintext Parquet file that arrow-go
// then decodes, so at most one row group's plaintext is held at a time.
func (f *File) NewRecordReader(ctx context.Context, opts RecordOptions) (array.RecordReader, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 64 << 10
	}
	if opts.Mem == nil {
		opts.Mem = memory.DefaultAllocator
	}
	rr := &recordReader{ctx: ctx, f: f, opts: opts, refs: 1}
	// The schema comes from a plaintext file with no row groups: same
	// footer, so the same Arrow schema as every row group will have.
	var buf bytes.Buffer
	if _, err := f.writePlain(ctx, &buf, nil); err != nil {
		return nil, err
	}
	fr, err := rr.open(buf.Bytes())
	if err != nil {
		return nil, err
	}
	err = arrowSafely("arrow schema", func() error {
		empty, err := fr.GetRecordReader(ctx, opts.Columns, nil)
		if err != nil {
			return err
		}
		rr.schema = empty.Schema()
		empty.Release()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rr, nil
}

type recordReader struct {
	ctx    context.Context
	f      *File
	opts   RecordOptions
	schema *arrow.Schema
	refs   int64

	next int // next row group
	cur  pqarrow.RecordReader
	rec  arrow.RecordBatch
	err  error
}

// arrowSafely runs arrow-go on decrypted bytes and turns its panics into
// errors. The bytes were authenticated under GCM, but CTR pages are not
// authenticated and a writer may be buggy or hostile; arrow-go panics on some
// malformed input.
func arrowSafely(what string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: arrow-go failed on malformed data: %v", what, p)
		}
	}()
	return fn()
}

func (r *recordReader) open(plain []byte) (fr *pqarrow.FileReader, err error) {
	err = arrowSafely("read decrypted parquet", func() error {
		fr, err = r.openUnsafe(plain)
		return err
	})
	return fr, err
}

func (r *recordReader) openUnsafe(plain []byte) (*pqarrow.FileReader, error) {
	pf, err := file.NewParquetReader(bytes.NewReader(plain))
	if err != nil {
		return nil, fmt.Errorf("read decrypted parquet: %w", err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: r.opts.BatchSize}, r.opts.Mem)
	if err != nil {
		return nil, fmt.Errorf("read decrypted parquet: %w", err)
	}
	return fr, nil
}

func (r *recordReader) Retain() { atomic.AddInt64(&r.refs, 1) }

func (r *recordReader) Release() {
	if atomic.AddInt64(&r.refs, -1) == 0 {
		r.closeCurrent()
	}
}

func (r *recordReader) closeCurrent() {
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

func (r *recordReader) Schema() *arrow.Schema { return r.schema }
func (r *recordReader) Err() error            { return r.err }

func (r *recordReader) RecordBatch() arrow.RecordBatch { return r.rec }

// Record is the deprecated name of RecordBatch.
func (r *recordReader) Record() arrow.RecordBatch { return r.rec }

func (r *recordReader) Next() (ok bool) {
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
	if r.err != nil {
		return false
	}
	// See arrowSafely.
	defer func() {
		if p := recover(); p != nil {
			r.err = fmt.Errorf("decode decrypted row group %d: %v", r.next-1, p)
			ok = false
		}
	}()
	for {
		if r.cur != nil {
			if r.cur.Next() {
				r.rec = r.cur.RecordBatch()
				r.rec.Retain()
				return true
			}
			if err := r.cur.Err(); err != nil {
				r.err = fmt.Errorf("decode decrypted row group %d: %w", r.next-1, err)
				return false
			}
			r.cur.Release()
			r.cur = nil
		}
		if r.next >= r.f.NumRowGroups() {
			return false
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			return false
		}
		var buf bytes.Buffer
		if _, err := r.f.WriteRowGroup(r.ctx, &buf, r.next); err != nil {
			r.err = err
			return false
		}
		r.next++
		fr, err := r.open(buf.Bytes())
		if err != nil {
			r.err = err
			return false
		}
		if r.cur, err = fr.GetRecordReader(r.ctx, r.opts.Columns, nil); err != nil { // panics: see the deferred recover
			r.err = fmt.Errorf("decode decrypted row group %d: %w", r.next-1, err)
			return false
		}
	}
}
