package rabit

import "time"

// SetTimeouts shortens the tracker's read timeout and the relay's wait for
// the tracker's answer for a test; the returned function restores them.
func SetTimeouts(trackerRead, trackerAnswer time.Duration) func() {
	r, a := trackerReadTimeout, trackerAnswerTimeout
	trackerReadTimeout, trackerAnswerTimeout = trackerRead, trackerAnswer
	return func() { trackerReadTimeout, trackerAnswerTimeout = r, a }
}
