package rabit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pipeConn is a net.Conn reading from fixed bytes and discarding writes.
type pipeConn struct{ r io.Reader }

func (p *pipeConn) Read(b []byte) (int, error)       { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (p *pipeConn) Close() error                     { return nil }
func (p *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (p *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (p *pipeConn) SetDeadline(time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(time.Time) error { return nil }

func ints(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// FuzzLinkSetup feeds arbitrary tracker and worker bytes to the relay's
// parser of the tracker protocol: it must fail with an error or succeed,
// never panic or allocate without bound.
func FuzzLinkSetup(f *testing.F) {
	// rank 1 of 3: parent 0, world 3, 1 neighbour (0), ring prev 0, next 2;
	// then one peer to connect to (host, port, rank 0).
	tracker := append(ints(1, 0, 3, 1, 0, 0, 2, 1, 0), ints(9)...)
	tracker = append(tracker, "127.0.0.1"...)
	tracker = append(tracker, ints(9091, 0)...)
	worker := ints(0, 0, 9100)
	f.Add(tracker, worker)
	r := &Relay{Index: 1, Peers: []string{"a:1", "b:1", "c:1"}, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no tunnels in the fuzzer")
	}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.peerLns = map[int]net.Listener{}
	r.conns = map[net.Conn]struct{}{}
	f.Cleanup(r.Close)
	f.Fuzz(func(t *testing.T, tb, wb []byte) {
		x := &conn{&pipeConn{bytes.NewReader(wb)}, "XGBoost worker"}
		tr := &conn{&pipeConn{bytes.NewReader(tb)}, "tracker"}
		r.linkSetup(x, tr)
		handshake(&conn{&pipeConn{bytes.NewReader(wb)}, "XGBoost worker"}, &conn{&pipeConn{bytes.NewReader(tb)}, "tracker"})
	})
}
