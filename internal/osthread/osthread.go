// Package osthread runs functions on one dedicated, locked OS thread.
//
// C libraries that keep state per thread (XGBoost's learner caches, OpenMP's thread count,
// libtorch's grad mode) need every call of one object to run on the same thread. A Thread is a
// goroutine locked to its own OS thread that runs what it is given, in order; Close ends the
// goroutine while it is still locked, so Go ends the OS thread instead of handing it to other
// goroutines, and whatever the library kept in thread-local storage goes with it.
package osthread

import "runtime"

// Thread runs functions on one OS thread. Do may be called from any goroutine; calls are
// serialized.
type Thread struct{ reqs chan func() }

// New starts a thread.
func New() *Thread {
	t := &Thread{reqs: make(chan func())}
	go func() {
		// Never unlocked: when the loop ends the goroutine exits locked and the OS thread ends.
		runtime.LockOSThread()
		for f := range t.reqs {
			f()
		}
	}()
	return t
}

// Do runs f on the thread and waits for it.
func (t *Thread) Do(f func()) {
	done := make(chan struct{})
	t.reqs <- func() { f(); close(done) }
	<-done
}

// Close ends the thread after the calls already queued. Do must not be called after Close.
func (t *Thread) Close() { close(t.reqs) }
