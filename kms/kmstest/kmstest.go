// Package kmstest starts a real key service on 127.0.0.1 for a test and
// stops it in the test's cleanup: the thin testing wrapper of package
// kms/local, which programs (ppml demo, ppml bench release) use directly.
//
//	srv := kmstest.New(t, kmstest.Options{Sim: sim})
//	alice, _, err := srv.Party(ctx, "alice", api.RoleOwner)
package kmstest

import "github.com/ppml/ppml/kms/local"

// Options, Server and Sim are those of package local.
type (
	Options = local.Options
	Server  = local.Server
	Sim     = local.Sim
)

// NewSim makes a simulated TEE (local.NewSim).
func NewSim(dir, executable string) (*Sim, error) { return local.NewSim(dir, executable) }

// Start starts a server that the caller stops (local.Start).
func Start(o Options) (*Server, error) { return local.Start(o) }

// TB is the part of testing.TB that New uses.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
	TempDir() string
}

// New starts a server for a test, in the test's temporary directory unless
// o.Config.DataDir is set, and stops it in the test's cleanup; a failure to
// start fails the test.
func New(t TB, o Options) *Server {
	t.Helper()
	if o.Config.DataDir == "" {
		o.Config.DataDir = t.TempDir()
	}
	s, err := local.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}
