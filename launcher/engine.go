package launcher

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/memfd"
)

// Engine runs one kind of job (the manifest's engine field) on inputs the
// launcher has already decrypted. An engine package registers one from its
// init with Register; the launcher imports no engine.
type Engine interface {
	// Spec reads and validates the engine's manifest parameters. It is the
	// engine's pure-Go spec package (engine/<name>/<name>spec), the same the
	// key service and the CLI use to compute job digests, so a manifest
	// means the same job everywhere.
	Spec() job.Spec
	// Run runs the job. It fills the output memfds; the launcher encrypts
	// them only when Run returns nil, so an engine that fails leaves no
	// output. An engine must not write plaintext anywhere but the output
	// memfds (and, when the job asks for it, Job.Stdout), and must not
	// spill to disk. When ctx is cancelled (the run was stopped) a batch
	// engine abandons the job and returns an error.
	Run(ctx context.Context, j *Job) error
}

// LongRunning is an optional ability of an Engine whose jobs run until they
// are stopped (a model server, a stream processor) rather than until their
// input is consumed. For such an engine the cancellation of Run's context
// is the normal end of the job, not a failure: the engine drains — stops
// taking new work, finishes what it took, writes its last outputs (a final
// checkpoint, a summary) — and returns nil, and the launcher encrypts and
// writes the outputs as after any successful run.
//
// The launcher bounds the drain: if Run has not returned Job.Grace after
// the stop, the run fails with ErrDrainTimeout and no output is written
// (the engine's goroutines end with the process).
type LongRunning interface {
	Engine
	// LongRunning marks the engine; it is never called.
	LongRunning()
}

// ErrDrainTimeout is returned (wrapped) when a LongRunning engine did not
// finish draining within the grace period after a stop.
var ErrDrainTimeout = fmt.Errorf("engine did not drain within the grace period")

// Job is what an engine gets: the validated manifest (its Parameters are
// the value the engine's Spec returned), the inputs and outputs in manifest
// order, and the caller's terminal.
type Job struct {
	Manifest *job.Manifest
	// RawManifest is the manifest's bytes as read once and attested: what an
	// engine that attests on its own (a worker's certificate) sends to the
	// key service, which recomputes the job digest from them.
	RawManifest []byte
	Inputs      []Input
	Outputs     []Output
	// Secrets holds the decrypted content of the key files the parameters
	// named through SecretFiles, by absolute path. The launcher clears it
	// after Run returns; copy nothing out of it that outlives Run.
	Secrets map[string][]byte
	Stdin   io.Reader // nil reads nothing
	Stdout  io.Writer // never nil (io.Discard)
	Stderr  io.Writer // never nil (io.Discard)
	// Options are Config.EngineOptions: presentation choices of the caller
	// that are not part of the job's identity (e.g. how ppml sql prints).
	Options any
	// Grace is how long a stopped job has to end: a program between SIGTERM
	// and SIGKILL, a LongRunning engine to drain.
	Grace time.Duration
	// TempRoot is where an engine that needs a private directory makes it
	// ("" is /dev/shm when available); it must be a memory file system.
	TempRoot string
	// Attester produces evidence in this TEE (Config.Attester), for an engine that binds
	// something of its own into evidence — the serve engine's TLS key. nil when the run has
	// no TEE: such an engine refuses to start.
	Attester attest.Attester
	// KeyService is the key service the keys came from (its client holds the runner's
	// token), for an engine that asks it for more than keys: the serve engine's server
	// certificate from the deployment CA, distributed workers' certificates. nil with
	// local keys.
	KeyService *client.Client
	// Logf writes a launcher progress line (names and sizes, never content).
	Logf func(format string, args ...any)
	// Worker is this run's place in a distributed job (Config.Worker); nil
	// for a job on one worker. Inputs then hold this worker's files only,
	// and Outputs are empty on every worker but worker 0.
	Worker *Worker
}

// Worker places a run in a distributed job: which worker it is and where
// the others are. It comes from the orchestrator (ppml-run run
// --worker-index, --peers), not from the manifest, so it is not part of
// the job's identity and is not trusted: workers recognise each other by
// attested certificates naming the job digest, never by address, and the
// rank each is given is checked by the collective (docs/cluster.md).
type Worker struct {
	// Index is this worker's index (its rank), from 0.
	Index int
	// Peers are the tunnel addresses of every worker of the job, by index;
	// as many as the job has workers.
	Peers []string
	// Listen is where this worker's tunnel server listens ("" is
	// Peers[Index]; in a pod, e.g. ":7070" while Peers name the pods).
	Listen string
	// Tracker is, on worker 0, the loopback address of a collective
	// tracker already running beside it ("" starts one).
	Tracker string
	// JoinTimeout bounds how long a worker waits for the others to join
	// (0: the engine's default): a worker that failed before joining fails
	// the others within it, naming what they waited for.
	JoinTimeout time.Duration

	listings map[string][]byte // by input: Input.Listing
}

// Distributed may be implemented by an engine's job.Parameters: a job that
// runs on several workers at once, each a ppml-run given the same manifest
// and its place in the job (Config.Worker). Each worker decrypts only the
// input files WorkerInputFiles gives it, and only worker 0 writes the
// job's outputs (the others have none: Job.Outputs is empty).
type Distributed interface {
	// JobWorkers is the number of workers the job runs on; 1 runs as any
	// other job.
	JobWorkers() int
	// WorkerInputFiles chooses, from the files of input name (sorted; one
	// for a file input), those worker index decrypts.
	WorkerInputFiles(input string, files []string, index int) ([]string, error)
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
	// Listing is set on a worker of a distributed job: the SHA-256 of the
	// whole input as this worker listed it (every file's name, key reference
	// and wrapped data key, in order), before its block of files was taken.
	// The workers compare it, so that none trains on another view of the
	// input than the others (the host could show each worker different
	// files).
	Listing []byte
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

// Register makes an engine launchable under its spec's name. Call it from
// the engine package's init; it panics on a duplicate or an invalid spec,
// programming errors caught at start-up.
func Register(e Engine) {
	sp := e.Spec()
	if err := job.CheckSpec(sp); err != nil {
		panic("launcher: " + err.Error())
	}
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[sp.Name()]; dup {
		panic(fmt.Sprintf("launcher: engine %q registered twice", sp.Name()))
	}
	engines[sp.Name()] = e
}

// Engines lists the names of the registered engines, sorted: the engines
// built into this runtime.
func Engines() []string {
	enginesMu.RLock()
	defer enginesMu.RUnlock()
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Specs is the job.Specs of the registered engines: what this runtime can
// parse and run. A manifest for another engine fails at its engine field,
// naming the engines built in.
func Specs() job.Specs { return registered{} }

type registered struct{}

func (registered) Spec(name string) (job.Spec, error) {
	e, err := lookupEngine(name)
	if err != nil {
		return nil, err
	}
	return e.Spec(), nil
}

func (registered) Names() []string { return Engines() }

func lookupEngine(name string) (Engine, error) {
	enginesMu.RLock()
	e, ok := engines[name]
	enginesMu.RUnlock()
	if ok {
		return e, nil
	}
	built := strings.Join(Engines(), ", ")
	if built == "" {
		built = "none"
	}
	hint := ""
	if name == "dl" {
		// make build's ppml-run never has it (docs/dl.md): say where it is.
		hint = "; dl jobs run in ppml-run-dl, the runtime with libtorch"
	}
	return nil, fmt.Errorf("engine %s is not built into this runtime (built in: %s)%s", quoteName(name), built, hint)
}

// quoteName prints a manifest's engine value for a message: bare when it is
// a plain name, quoted (and cut) otherwise.
func quoteName(s string) string {
	plain := s != "" && len(s) <= 64
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if plain {
		return s
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}
