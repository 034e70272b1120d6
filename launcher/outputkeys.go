package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
)

// OutputKeyRequest asks the key source for a fresh data key for an output:
// the output's kms:// key and the fixed part of the output envelope's
// header, which the wrapping binds.
type OutputKeyRequest struct {
	Output string
	Ref    envelope.KeyRef
	AAD    []byte
}

// OutputKeySource is a KeySource that can also issue output data keys, in
// the same attested release as the input keys (the key service). wrappers[i]
// encrypts the envelope of outs[i] and nothing else.
type OutputKeySource interface {
	KeySource
	ReleaseWithOutputs(ctx context.Context, manifest []byte, reqs []KeyRequest, outs []OutputKeyRequest) (keys [][]byte, wrappers []envelope.KeyWrapper, err error)
}

// An output under a key-service key needs its data key wrapped with the
// envelope header's fixed part as associated data, and that fixed part
// (random salt and nonce prefix included) exists only inside
// envelope.NewWriter, which asks its KeyWrapper for the key synchronously.
// The key, though, must come from the single release that happens before
// the job runs. So each such output's writer is started before the
// release, on a goroutine whose KeyWrapper hands the fixed part out and
// waits for the release's answer; the header goes to memory and the body
// follows into the output file once the job has succeeded. The length is
// recorded as unknown: it is not known before the job runs.
type pendingOutput struct {
	index  int // in the manifest's outputs
	dst    *deferredDst
	aad    []byte
	answer chan envelope.KeyWrapper // nil: the release failed
	done   chan pendingResult
}

// preparedWriter is the writer of a key-service output, its header in dst.
type preparedWriter struct {
	w   *envelope.Writer
	dst *deferredDst
}

type pendingResult struct {
	w   *envelope.Writer
	err error
}

type waitingWrapper struct {
	aad    chan<- []byte
	answer <-chan envelope.KeyWrapper
}

var errNoOutputKey = errors.New("no output key: the release failed")

func (ww waitingWrapper) NewDataKey(aad []byte) ([]byte, []byte, envelope.KeyRef, error) {
	ww.aad <- bytes.Clone(aad)
	kw := <-ww.answer
	if kw == nil {
		return nil, nil, envelope.KeyRef{}, errNoOutputKey
	}
	return kw.NewDataKey(aad)
}

// startPending starts the writer of output i and returns once it has the
// header's fixed part.
func startPending(i int, o job.Output) (*pendingOutput, error) {
	p := &pendingOutput{index: i, dst: &deferredDst{}, answer: make(chan envelope.KeyWrapper, 1), done: make(chan pendingResult, 1)}
	aadc := make(chan []byte, 1)
	go func() {
		w, err := envelope.NewWriter(p.dst, waitingWrapper{aad: aadc, answer: p.answer}, &envelope.Options{ContentType: contentType(o.ContentType)})
		p.done <- pendingResult{w, err}
	}()
	select {
	case p.aad = <-aadc:
		return p, nil
	case r := <-p.done:
		if r.err == nil {
			return nil, errors.New("envelope writer did not ask for a data key")
		}
		return nil, r.err
	}
}

// finish answers the writer with kw (nil: the release failed) and returns it.
func (p *pendingOutput) finish(kw envelope.KeyWrapper) (*envelope.Writer, error) {
	p.answer <- kw
	r := <-p.done
	return r.w, r.err
}

// cancelPending releases the goroutines of writers that got no key.
func cancelPending(ps []*pendingOutput) {
	for _, p := range ps {
		if p != nil {
			p.finish(nil)
		}
	}
}

// deferredDst holds what a writer writes (the header) in memory until the
// output file exists, then forwards to it.
type deferredDst struct {
	buf bytes.Buffer
	w   io.Writer
}

func (d *deferredDst) Write(p []byte) (int, error) {
	if d.w == nil {
		return d.buf.Write(p)
	}
	return d.w.Write(p)
}

func (d *deferredDst) attach(w io.Writer) error {
	d.w = w
	_, err := w.Write(d.buf.Bytes())
	d.buf.Reset()
	return err
}

// outputFile is an output being written: an envelope.FileWriter, or a
// writer started before the release over an atomic file.
type outputFile interface {
	io.Writer
	Close() error // finish the envelope and commit the file
	Abort() error
}

type preparedFile struct {
	w      *envelope.Writer
	af     *atomicfile.File
	closed bool
}

func openPrepared(path string, w *envelope.Writer, dst *deferredDst) (*preparedFile, error) {
	af, err := atomicfile.Create(path, atomicfile.Options{Perm: 0o600, Overwrite: true})
	if err != nil {
		return nil, err
	}
	if err := dst.attach(af); err != nil {
		af.Abort()
		return nil, fmt.Errorf("write envelope header: %w", err)
	}
	return &preparedFile{w: w, af: af}, nil
}

func (f *preparedFile) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f *preparedFile) Close() error {
	f.closed = true
	if err := f.w.Close(); err != nil {
		f.af.Abort()
		return err
	}
	return f.af.Commit()
}

func (f *preparedFile) Abort() error {
	if !f.closed {
		f.closed = true
		f.w.Close() // stops its sealing goroutines; the file is discarded
	}
	return f.af.Abort()
}
