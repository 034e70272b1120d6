package dcap

import (
	"bytes"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/ccel"
	"github.com/ppml/ppml/attest/dcap/abi"
)

// eventLogClaims parses a TDX event log that came with a verified quote and
// replays it against the quoted RTMRs. An RTMR that replays is vouched for
// by the quote, and so are the digests of its events; an RTMR that does not
// (extended at run time without a log entry, or a log that lies about it)
// is reported as such and none of its events are listed.
func eventLogClaims(q *abi.Quote, log []byte) (*attest.EventLog, error) {
	if q.TD == nil {
		return nil, attest.Fail("event_log", "an event log came with an SGX quote: event logs apply to TDX only")
	}
	l, err := ccel.Parse(log)
	if err != nil {
		return nil, attest.Fail("event_log", "%v", err)
	}
	mr := l.Replay()
	out := &attest.EventLog{ReplayedRTMRs: []int{}, Events: []attest.LogEvent{}}
	var replayed [ccel.RTMRs]bool
	for i := range ccel.RTMRs {
		replayed[i] = bytes.Equal(mr[i][:], q.TD.RTMR[i])
		if replayed[i] {
			out.ReplayedRTMRs = append(out.ReplayedRTMRs, i)
		} else {
			out.UnreplayedRTMRs = append(out.UnreplayedRTMRs, i)
		}
	}
	for i := range l.Events {
		e := &l.Events[i]
		r, ok := e.RTMR()
		if !ok || !replayed[r] {
			continue
		}
		out.Events = append(out.Events, attest.LogEvent{RTMR: r, Type: ccel.TypeName(e.Type),
			Digest: attest.Hex(bytes.Clone(e.SHA384())), Description: e.Describe(), DataDigest: e.DataIsDigested()})
	}
	return out, nil
}
