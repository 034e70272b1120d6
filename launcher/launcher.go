// Package launcher is the trusted launcher of the runtime, ppml-run (what
// `ppml run` runs): it reads a job manifest once, obtains every input key in
// one release, decrypts the inputs into memory (memfds), runs the job's
// engine, encrypts the outputs atomically under their keys, and clears the
// key material it holds.
//
// Order matters and is part of the contract: the manifest and its files are
// checked before any key is asked for (a bad manifest never reaches
// attestation: Load, then Run); the output keys are loaded before the
// inputs are decrypted; all input keys come in a single release, so one
// denied key means nothing is decrypted and nothing runs.
//
// # Engines
//
// The launcher is the host and engines are drivers, as in database/sql: the
// manifest's engine field picks an Engine registered with Register from the
// engine package's init, and the launcher imports no engine (a binary
// chooses its engines by the packages it links):
//
//	type engine struct{}
//
//	func (engine) Spec() job.Spec { return mlspec.Spec } // pure-Go parameters
//	func (engine) Run(ctx context.Context, j *launcher.Job) error {
//		p := j.Manifest.Parameters.(*mlspec.Params)
//		// read j.Inputs[i].Files[k].Mem (sealed plaintext memfds), fill
//		// j.Outputs[i].File; return nil to have them encrypted and written
//	}
//
//	func init() { launcher.Register(engine{}) }
//
// docs/engines.md has the whole contract. The launcher does everything
// around Run: checks the manifest, obtains
// every key in one release, decrypts the inputs into memfds, then encrypts
// the outputs atomically after Run returns nil (an error writes nothing).
// Parameters may implement RawInputs (inputs that are not envelopes, which
// the engine decrypts itself) and SecretFiles (envelope-encrypted key files
// released together with the input keys and handed over in Job.Secrets).
//
// # What "zeroize" means here
//
// The launcher clears every data key it receives (byte slices it owns) as
// soon as the inputs are decrypted; the output data keys are cleared by
// the envelope writer, or when Run returns if no writer took them. Go gives no stronger guarantee: the garbage
// collector may have copied a slice before it was cleared, AES key
// schedules inside crypto/cipher and HPKE private keys inside crypto/hpke
// are not reachable to clear, and envelope.LocalKey keeps its derived
// wrapping key unexported. Plaintext lives in memfds, which are freed when
// the last descriptor closes; they are never written to a file system.
package launcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/memfd"
)

// Config is one run.
type Config struct {
	// Manifest is the job, read and checked once (Load or Parse).
	Manifest *Manifest
	Keys     KeySource
	// Stdout and Stderr receive the program's output; nil discards.
	Stdout, Stderr io.Writer
	// Log receives the launcher's own progress lines; nil discards. They
	// name files, keys and digests, never content.
	Log io.Writer
	// Grace is the time a stopped job has to end: a program between SIGTERM
	// and SIGKILL, a LongRunning engine to drain.
	Grace time.Duration
	// TempRoot is where an engine makes its private directory ("" is
	// /dev/shm when available).
	TempRoot string
	// Stdin is the terminal input an engine may read (ppml sql's prompt).
	Stdin io.Reader
	// EngineOptions reach the engine as Job.Options.
	EngineOptions any
	// Attester produces evidence in this TEE for an engine that attests something of its
	// own (the serve engine's TLS key): Job.Attester. When nil and Keys is KMSKeys, its
	// Attester is used; nil otherwise (local keys without a TEE).
	Attester attest.Attester
	// Worker is this run's place in a distributed job (parameters implementing
	// Distributed with more than one worker); required for such a job, refused for
	// any other.
	Worker *Worker
}

// DefaultGrace is Config.Grace when it is not set.
const DefaultGrace = 5 * time.Second

// Result describes a finished run.
type Result struct {
	Name    string   `json:"name"`
	Digest  string   `json:"digest"`
	Outputs []string `json:"outputs,omitempty"` // written files
}

// Run runs the job. An engine's error is returned as it is (the exec
// engine's wraps the program's exit status, or its stop); no output is then
// written.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "ppml run: "+format+"\n", args...)
		}
	}
	if cfg.Manifest == nil || cfg.Manifest.Job == nil {
		return nil, errors.New("no job manifest")
	}
	lm, m := cfg.Manifest, cfg.Manifest.Job
	res := &Result{Name: m.Name, Digest: m.DigestString()}
	eng, err := lookupEngine(m.Engine)
	if err != nil {
		return res, err
	}
	logf("job %q (%s engine), digest %s", m.Name, m.Engine, res.Digest)
	if cfg.Keys == nil {
		return res, errors.New("no key source")
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	// A stop is a long-running job's normal end, whenever it comes: one
	// that comes while the keys are released and the inputs decrypted lets
	// that finish (within the grace period), and the engine then starts
	// stopped and drains at once, so the run ends as after any stop (exit
	// 0, outputs written) instead of failing half-started.
	setupCtx := ctx
	if _, ok := eng.(LongRunning); ok {
		var cancelSetup context.CancelFunc
		setupCtx, cancelSetup = graceAfterStop(ctx, grace)
		defer cancelSetup()
	}

	worker, err := checkWorker(m, cfg.Worker)
	if err != nil {
		return res, err
	}
	// Only worker 0 of a distributed job writes outputs: the others neither
	// ask for output keys nor get output memfds.
	wm := m
	if worker != nil && worker.Index != 0 {
		cp := *m
		cp.Outputs = nil
		wm = &cp
		logf("worker %d of %d: the job's outputs are written by worker 0", worker.Index, len(worker.Peers))
	}
	rawInputs := map[string]bool{}
	if ri, ok := m.Parameters.(RawInputs); ok {
		for _, n := range ri.RawInputs() {
			rawInputs[n] = true
		}
	}
	reqs, err := collect(m, rawInputs, worker)
	if err != nil {
		return res, err
	}
	nInputReqs := len(reqs)
	if sf, ok := m.Parameters.(SecretFiles); ok {
		for _, p := range sf.SecretFiles() {
			h, err := readHeader(p)
			if err != nil {
				return res, fmt.Errorf("key file: %w", err)
			}
			reqs = append(reqs, KeyRequest{Input: secretInput, File: p, Ref: h.KeyRef,
				Wrapped: h.WrappedKey, AAD: bytes.Clone(h.WrapAAD())})
		}
	}
	outKeys, err := loadOutputKeys(setupCtx, wm, cfg.Keys)
	if err != nil {
		return res, err
	}
	defer outKeys.zero() // released output keys no writer took

	var keys [][]byte
	switch {
	case len(outKeys.reqs) > 0:
		logf("asking for %d key(s) and %d output key(s)", len(reqs), len(outKeys.reqs))
		var ows []envelope.KeyWrapper
		keys, ows, err = cfg.Keys.(OutputKeySource).ReleaseWithOutputs(setupCtx, lm, reqs, outKeys.reqs)
		if err != nil {
			return res, err
		}
		if err := outKeys.setReleased(ows); err != nil || len(keys) != len(reqs) {
			Zero(keys)
			return res, fmt.Errorf("key source returned %d keys and %d output keys for %d and %d requests", len(keys), len(ows), len(reqs), len(outKeys.reqs))
		}
	case len(reqs) > 0:
		logf("asking for %d key(s)", len(reqs))
		keys, err = cfg.Keys.Release(setupCtx, lm, reqs)
		if err != nil {
			return res, err
		}
		if len(keys) != len(reqs) {
			Zero(keys)
			return res, fmt.Errorf("key source returned %d keys for %d requests", len(keys), len(reqs))
		}
	}
	secrets, err := decryptSecrets(reqs[nInputReqs:], keys[min(nInputReqs, len(keys)):])
	defer func() {
		for _, s := range secrets {
			clear(s)
		}
	}()
	if err != nil {
		Zero(keys)
		return res, err
	}
	inputs, closeInputs, err := decrypt(m, rawInputs, reqs[:nInputReqs], keys)
	Zero(keys)
	defer closeInputs()
	if err != nil {
		return res, err
	}
	if worker != nil {
		for i := range inputs {
			inputs[i].Listing = worker.listings[inputs[i].Name]
		}
	}

	outputs := make([]Output, len(wm.Outputs))
	for i, o := range wm.Outputs {
		f, err := memfd.New("output-" + o.Name)
		if err != nil {
			for _, done := range outputs[:i] {
				done.File.Close()
			}
			return res, err
		}
		outputs[i] = Output{Name: o.Name, File: f}
	}
	defer func() {
		for _, o := range outputs {
			o.File.Close()
		}
	}()

	j := &Job{Manifest: m, RawManifest: lm.Raw, Inputs: inputs, Outputs: outputs, Secrets: secrets,
		Stdin: cfg.Stdin, Stdout: orDiscard(cfg.Stdout), Stderr: orDiscard(cfg.Stderr),
		Options: cfg.EngineOptions, Grace: grace, TempRoot: cfg.TempRoot, Logf: logf, Attester: cfg.Attester, Worker: worker}
	if kk, ok := cfg.Keys.(*KMSKeys); ok {
		j.KeyService = kk.Client
		if j.Attester == nil {
			j.Attester = kk.Attester
		}
	}
	err = runEngine(ctx, eng, j)
	closeInputs()
	for _, s := range secrets {
		clear(s)
	}
	if err != nil {
		return res, err
	}
	if err := writeOutputs(wm, outputs, outKeys); err != nil {
		return res, err
	}
	for _, o := range wm.Outputs {
		res.Outputs = append(res.Outputs, o.Path)
		logf("wrote %s (encrypted under %s)", o.Path, o.Key)
	}
	return res, nil
}

// secretInput is the KeyRequest.Input of a key file named by the parameters.
const secretInput = "(key file)"

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// decryptSecrets decrypts the key files into memory.
func decryptSecrets(reqs []KeyRequest, keys [][]byte) (map[string][]byte, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	out := map[string][]byte{}
	for i, r := range reqs {
		f, err := memfd.Decrypt(r.File, releasedResolver{ref: r.Ref, wrapped: r.Wrapped, key: keys[i]})
		if err != nil {
			return out, fmt.Errorf("key file: decrypt: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f.OSFile(), maxSecretSize+1))
		f.Close()
		if err != nil {
			return out, fmt.Errorf("key file %s: %w", r.File, err)
		}
		if len(b) > maxSecretSize {
			clear(b)
			return out, fmt.Errorf("key file %s holds more than %d bytes: not a key", r.File, maxSecretSize)
		}
		out[r.File] = b
	}
	return out, nil
}

const maxSecretSize = 64 << 10

// checkWorker checks a run's place in a distributed job against the job:
// the worker it names, a copy of it, or nil for a job on one worker.
func checkWorker(m *job.Manifest, w *Worker) (*Worker, error) {
	n := 1
	if d, ok := m.Parameters.(Distributed); ok {
		n = d.JobWorkers()
	}
	switch {
	case n <= 1 && w != nil:
		return nil, fmt.Errorf("job %q runs on one worker: a worker index and peers are only for a job with more than one worker", m.Name)
	case n <= 1:
		return nil, nil
	case w == nil:
		return nil, fmt.Errorf("job %q runs on %d workers: give this worker's index and the addresses of all %d (ppml-run run --worker-index, --peers)", m.Name, n, n)
	case len(w.Peers) != n:
		return nil, fmt.Errorf("job %q runs on %d workers, and %d peer address(es) were given (--peers lists every worker's, this one's included)", m.Name, n, len(w.Peers))
	case w.Index < 0 || w.Index >= n:
		return nil, fmt.Errorf("worker index %d: job %q has workers 0 to %d", w.Index, m.Name, n-1)
	}
	for i, p := range w.Peers {
		if p == "" {
			return nil, fmt.Errorf("peer %d: empty address", i)
		}
	}
	cp := *w
	cp.Peers = append([]string(nil), w.Peers...)
	cp.listings = map[string][]byte{}
	return &cp, nil
}

// listing is the SHA-256 of an input as this worker sees it: every file's
// name below the input and its envelope's key reference and wrapped data
// key (random per file, so it tells files apart), in order. The workers of
// a distributed job compare it (Input.Listing).
func listing(root string, files []string) ([]byte, error) {
	h := sha256.New()
	for _, p := range files {
		hd, err := readHeader(p)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			rel = filepath.Base(p)
		}
		for _, b := range [][]byte{[]byte(filepath.ToSlash(rel)), []byte(hd.KeyRef.String()), hd.WrappedKey} {
			binary.Write(h, binary.BigEndian, uint64(len(b)))
			h.Write(b)
		}
	}
	return h.Sum(nil), nil
}

// collect reads the envelope header of every input file, in manifest order
// (directories walked in lexical order), and checks pinned keys. A worker
// of a distributed job takes only its files.
func collect(m *job.Manifest, rawInputs map[string]bool, w *Worker) ([]KeyRequest, error) {
	var reqs []KeyRequest
	for _, in := range m.Inputs {
		if rawInputs[in.Name] {
			continue
		}
		files, err := inputFiles(in.Path)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		if w != nil {
			if w.listings[in.Name], err = listing(in.Path, files); err != nil {
				return nil, fmt.Errorf("input %s: %w", in.Name, err)
			}
			if files, err = m.Parameters.(Distributed).WorkerInputFiles(in.Name, files, w.Index); err != nil {
				return nil, fmt.Errorf("input %s: worker %d of %d: %w", in.Name, w.Index, len(w.Peers), err)
			}
		}
		for _, p := range files {
			h, err := readHeader(p)
			if err != nil {
				return nil, fmt.Errorf("input %s: %w", in.Name, err)
			}
			if err := checkPin(in, h.KeyRef); err != nil {
				return nil, fmt.Errorf("input %s: %s: %w", in.Name, p, err)
			}
			reqs = append(reqs, KeyRequest{Input: in.Name, File: p, Pinned: in.Key, Ref: h.KeyRef,
				Wrapped: h.WrappedKey, AAD: bytes.Clone(h.WrapAAD())})
		}
	}
	return reqs, nil
}

// inputFiles lists an input: the file itself, or every regular file under a
// directory (sorted; symbolic links are not followed).
func inputFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		} else if !d.IsDir() {
			return fmt.Errorf("%s is not a regular file (an input directory holds encrypted files only)", p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func readHeader(path string) (*envelope.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := envelope.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// checkPin compares a file's key with the key its input pins. A kms:// pin
// without a version accepts any version of that key.
func checkPin(in job.Input, got envelope.KeyRef) error {
	if in.Key == nil {
		return nil
	}
	want := in.Key
	switch want.Scheme {
	case job.KeyFile:
		k, err := keyfile.LoadAny(want.AbsPath)
		if err != nil {
			return err
		}
		if got == k.Ref() {
			return nil
		}
		return fmt.Errorf("encrypted under %s, but the job pins %s (%s)", got.Describe(), want, k.Ref().Describe())
	case job.KeyKMS:
		w := want.Envelope
		if got.Scheme == envelope.SchemeKMS && got.Host == w.Host && got.Port == w.Port && got.Name == w.Name && (w.Version == 0 || w.Version == got.Version) {
			return nil
		}
	default:
		if got.String() == want.String() {
			return nil
		}
	}
	return fmt.Errorf("encrypted under %s, but the job pins %s", got.Describe(), want)
}

// releasedResolver hands the envelope reader the one released key of a file.
type releasedResolver struct {
	ref     envelope.KeyRef
	wrapped []byte
	key     []byte
}

func (r releasedResolver) UnwrapDataKey(ref envelope.KeyRef, wrapped, _ []byte) ([]byte, error) {
	if ref != r.ref || !bytes.Equal(wrapped, r.wrapped) {
		return nil, &envelope.WrongKeyError{Need: ref, Given: "the key released for " + r.ref.String()}
	}
	return bytes.Clone(r.key), nil // the reader clears its copy
}

// decrypt opens every input into a sealed memfd (raw inputs are only
// listed). The returned close function is idempotent.
func decrypt(m *job.Manifest, rawInputs map[string]bool, reqs []KeyRequest, keys [][]byte) ([]Input, func(), error) {
	var all []*memfd.File
	closed := false
	closeAll := func() {
		if closed {
			return
		}
		closed = true
		for _, f := range all {
			f.Close()
		}
	}
	var inputs []Input
	i := 0
	for _, in := range m.Inputs {
		fi, err := os.Stat(in.Path)
		if err != nil {
			return nil, closeAll, fmt.Errorf("input %s: %w", in.Name, err)
		}
		ei := Input{Name: in.Name, IsDir: fi.IsDir(), Raw: rawInputs[in.Name]}
		if ei.Raw {
			files, err := inputFiles(in.Path)
			if err != nil {
				return nil, closeAll, fmt.Errorf("input %s: %w", in.Name, err)
			}
			for _, p := range files {
				ei.Files = append(ei.Files, InputFile{Path: p, Rel: relName(in.Path, p, ei.IsDir)})
			}
			inputs = append(inputs, ei)
			continue
		}
		for ; i < len(reqs) && reqs[i].Input == in.Name; i++ {
			r := reqs[i]
			h, err := readHeader(r.File)
			if err != nil {
				return nil, closeAll, fmt.Errorf("input %s: %w", in.Name, err)
			}
			f, err := memfd.Decrypt(r.File, releasedResolver{ref: r.Ref, wrapped: r.Wrapped, key: keys[i]})
			if err != nil {
				return nil, closeAll, fmt.Errorf("input %s: decrypt: %w", in.Name, err)
			}
			all = append(all, f)
			ei.Files = append(ei.Files, InputFile{Path: r.File, Rel: relName(in.Path, r.File, ei.IsDir), ContentType: h.ContentType, Mem: f})
		}
		inputs = append(inputs, ei)
	}
	return inputs, closeAll, nil
}

func relName(dir, file string, isDir bool) string {
	if !isDir {
		return ""
	}
	rel, err := filepath.Rel(dir, file)
	if err != nil {
		return filepath.Base(file)
	}
	return filepath.ToSlash(strings.TrimSuffix(rel, ".ppml"))
}

// writeOutputs encrypts every output. All are written to temporary files
// first and renamed only when every one is complete, so a failure while
// encrypting leaves no output at all; a failure during the renames
// themselves can leave the earlier ones renamed. Every output records its
// length (a kms:// output's after its key was wrapped, see outputKeys).
func writeOutputs(m *job.Manifest, outs []Output, keys *outputKeys) error {
	writers := make([]*envelope.FileWriter, 0, len(outs))
	defer func() {
		for _, w := range writers {
			w.Abort()
		}
	}()
	for i, o := range m.Outputs {
		f := outs[i].File
		size, err := f.Size()
		if err != nil {
			return fmt.Errorf("output %s: %w", o.Name, err)
		}
		w, err := keys.create(i, o.Path, o.ContentType, size)
		if err != nil {
			return fmt.Errorf("output %s: %w", o.Name, err)
		}
		writers = append(writers, w)
		if _, err := io.Copy(w, io.NewSectionReader(f.OSFile(), 0, size)); err != nil {
			return fmt.Errorf("output %s: encrypt: %w", o.Name, err)
		}
	}
	for i, w := range writers {
		if err := w.Close(); err != nil {
			return fmt.Errorf("output %s: %w", m.Outputs[i].Name, err)
		}
	}
	return nil
}

// contentType maps a job's media type to the envelope's content type.
func contentType(media string) envelope.ContentType {
	t, _, err := mime.ParseMediaType(media)
	if err != nil {
		return envelope.TypeBytes
	}
	switch {
	case t == "text/csv":
		return envelope.TypeCSV
	case t == "application/json" || strings.HasSuffix(t, "+json"):
		return envelope.TypeJSON
	case t == "application/vnd.apache.parquet" || t == "application/x-parquet":
		return envelope.TypeParquet
	}
	return envelope.TypeBytes
}

// graceAfterStop is ctx's values with a cancellation that comes grace
// after ctx is done rather than at once.
func graceAfterStop(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return c, func() { stop(); cancel() }
}

// runEngine runs the engine; a LongRunning engine gets Job.Grace after a
// stop to drain, and a run that outlasts it fails.
func runEngine(ctx context.Context, eng Engine, j *Job) error {
	if _, ok := eng.(LongRunning); !ok {
		return eng.Run(ctx, j)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, j) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	j.Logf("stopping: %s engine draining (at most %s)", j.Manifest.Engine, j.Grace)
	t := time.NewTimer(j.Grace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%s engine: %w (%s)", j.Manifest.Engine, ErrDrainTimeout, j.Grace)
	}
}
