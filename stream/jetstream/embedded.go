package jetstream

import (
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded runs nats-server with JetStream inside this process: the
// single-binary default. Its files go to dir.
type Embedded struct {
	srv *server.Server
}

// MaxPayload is the largest message the embedded server accepts: a
// snapshot or a record of up to record.MaxRecordSize plus headers.
const MaxPayload = 9 << 20

// StartEmbedded starts the server: on a free port of 127.0.0.1 when listen
// is set (for workers in other processes), else for in-process
// connections only.
func StartEmbedded(dir string, listen bool) (*Embedded, error) {
	return startEmbedded(dir, server.RANDOM_PORT, !listen)
}

// StartEmbeddedPort starts the server on 127.0.0.1:port: a server started again on the
// same port and directory is the same broker, with its streams, consumers and buckets.
func StartEmbeddedPort(dir string, port int) (*Embedded, error) {
	return startEmbedded(dir, port, false)
}

func startEmbedded(dir string, port int, dontListen bool) (*Embedded, error) {
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, MaxPayload: MaxPayload,
		NoSigs: true, NoLog: true, JetStreamMaxMemory: 1 << 30, JetStreamMaxStore: 16 << 30}
	opts.DontListen = dontListen
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats-server did not start")
	}
	return &Embedded{srv: srv}, nil
}

// URL is the server's client URL.
func (e *Embedded) URL() string {
	if a, ok := e.srv.Addr().(*net.TCPAddr); ok {
		return fmt.Sprintf("nats://127.0.0.1:%d", a.Port)
	}
	return e.srv.ClientURL()
}

// Connect returns a connection inside this process.
func (e *Embedded) Connect() (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(e.srv), nats.MaxReconnects(-1))
}

// Shutdown stops the server.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
