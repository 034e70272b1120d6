package launcher

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/memfd"
)

// Engine runs one kind of job (the manifest's engine field) on inputs the
// launcher has already decrypted. It fills the output memfds; the launcher
// encrypts them only when Run returns nil, so an engine that fails leaves
// no output. An engine must not write plaintext anywhere but the output
// memfds (and, when the job asks for it, Job.Stdout).
type Engine interface {
	Run(ctx context.Context, j *Job) error
}

// EngineFunc adapts a function to Engine.
type EngineFunc func(ctx context.Context, j *Job) error

// Run implements Engine.
func (f EngineFunc) Run(ctx context.Context, j *Job) error { return f(ctx, j) }

// Job is what an engine gets: the validated manifest (its Parameters are
// the engine's own type, registered with job.RegisterEngine), the inputs
// and outputs in manifest order, and the caller's terminal.
type Job struct {
	Manifest *job.Manifest
	Inputs   []Input
	Outputs  []Output
	// Secrets holds the decrypted content of the key files the parameters
	// named through SecretFiles, by absolute path. The launcher clears it
	// after Run returns; copy nothing out of it that outlives Run.
	Secrets map[string][]byte
	Stdin   io.Reader // nil reads nothing
	Stdout  io.Writer // never nil (io.Discard)
	Stderr  io.Writer // never nil (io.Discard)
	// Options are Config.EngineOptions: presentation choices of the caller
	// that are not part of the job's identity (e.g. how ppml sql prints).
	Options  any
	Grace    time.Duration
	TempRoot string
	// Logf writes a launcher progress line (names and sizes, never content).
	Logf func(format string, args ...any)
}

// Input is one manifest input.
type Input struct {
	Name  string
	IsDir bool
	Files []InputFile // one for a file; every file, sorted, for a directory
	// Raw is set for the inputs the parameters declared raw (RawInputs):
	// their files are not envelopes and were not opened; Mem is nil and the
	// engine reads Path itself (e.g. Parquet with modular encryption).
	Raw bool
}

// InputFile is one file of an input.
type InputFile struct {
	Path        string               // the file on disk (absolute)
	Rel         string               // in a directory input: its path below the directory, without ".ppml"
	ContentType envelope.ContentType // from the envelope header; 0 for raw inputs
	Mem         *memfd.File          // the sealed plaintext; nil for raw inputs
}

// Output is one manifest output: an empty memfd the engine fills.
type Output struct {
	Name string
	File *memfd.File
}

// RawInputs may be implemented by an engine's job.Parameters: the named
// inputs are not ppml envelopes, so the launcher neither reads their headers
// nor asks keys for them; the engine decrypts them (with Job.Secrets).
type RawInputs interface {
	RawInputs() []string
}

// SecretFiles may be implemented by an engine's job.Parameters: envelope
// files holding key material the engine needs (absolute paths, e.g. Parquet
// footer and column keys). Their keys are requested in the same single
// release as the input keys (a denied one stops the job before anything is
// decrypted), and their plaintext is handed over in Job.Secrets.
type SecretFiles interface {
	SecretFiles() []string
}

var (
	enginesMu sync.RWMutex
	engines   = map[string]Engine{}
)

// RegisterEngine makes an engine launchable under a manifest engine name.
// Call it from the engine package's init; it panics on a duplicate, a
// programming error caught at start-up. The exec engine is built in.
func RegisterEngine(name string, e Engine) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[name]; dup {
		panic(fmt.Sprintf("launcher: engine %q registered twice", name))
	}
	engines[name] = e
}

func lookupEngine(name string) (Engine, error) {
	enginesMu.RLock()
	defer enginesMu.RUnlock()
	if e, ok := engines[name]; ok {
		return e, nil
	}
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("engine %q cannot be launched by this build of ppml run (launchable: %s)", name, strings.Join(names, ", "))
}
