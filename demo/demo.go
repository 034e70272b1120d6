// Package demo is `ppml demo`: the whole chain on one machine in under a
// minute, with the real components — the key service over TLS, a key policy
// pinning this binary and the demo job, an encrypted dataset, the trusted
// launcher in the simulated TEE, the audit log verified offline, the owner
// decrypting the result, a modified job refused — and a final check that
// nothing readable was left behind. Every step says in one sentence what it
// shows and ends with ✓ or ✗.
//
// The jobs run in ppml-run, the runtime binary (found like `ppml run` finds
// it: $PPML_RUN, beside ppml, on PATH), started as a process of its own:
// the key policy pins that binary's measurement, as an owner's would.
//
// The TEE is the simulated one (attest/sim): it protects nothing and is
// labelled insecure everywhere. Its platform key is made in the demo's
// temporary directory, never the user's own simulation directory.
//
// The sql, ml and dl engines have a step each: a GROUP BY over the same
// encrypted dataset, an XGBoost training on an embedded public dataset
// (jobs.go, engines.go), and a small neural network on libtorch trained on
// the same encrypted table (dl.go).
package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/examples/data"
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/internal/handover"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
	"github.com/ppml/ppml/kms/local"
)

// Config configures a demo run.
type Config struct {
	// Out receives the human-readable walk-through; nil prints nothing.
	Out io.Writer
	// KeepDir, when set, is the working directory (created; it must be
	// empty or absent), kept afterwards for inspection. Otherwise a
	// temporary directory is used and removed.
	KeepDir string
	// Executable is the ppml binary the job runs as its program (`EXE demo
	// aggregate`); empty means this process's own executable. Tests set
	// nothing: their binary answers `demo aggregate` from TestMain.
	Executable string
	// Runtime is the ppml-run binary that runs the jobs and that the key
	// policy pins; empty means the one `ppml run` would use
	// (internal/handover: $PPML_RUN, beside ppml, on PATH).
	Runtime string
}

// Step is one step's outcome.
type Step struct {
	N          int               `json:"step"`
	Title      string            `json:"title"`
	OK         bool              `json:"ok"`
	Skipped    bool              `json:"skipped,omitempty"`
	Error      string            `json:"error,omitempty"`
	Details    []string          `json:"details,omitempty"`
	Facts      map[string]string `json:"facts,omitempty"`
	DurationMS float64           `json:"duration_ms"`
}

// Summary is the outcome of the whole demo (`ppml demo --json`).
type Summary struct {
	OK      bool    `json:"ok"`
	Steps   []Step  `json:"steps"`
	WorkDir string  `json:"work_dir,omitempty"` // only when kept
	Seconds float64 `json:"seconds"`
	// Server is the key service's URL while the demo ran.
	Server string `json:"server,omitempty"`
	// Runtime is the ppml-run binary that ran the jobs; Measurement its
	// SHA-384, the simulated measurement the policy pins.
	Runtime     string `json:"runtime,omitempty"`
	Measurement string `json:"measurement,omitempty"`
	// JobDigest is the approved job; ModifiedDigest the refused one.
	JobDigest      string `json:"job_digest,omitempty"`
	ModifiedDigest string `json:"modified_job_digest,omitempty"`
	// Release is the audit entry of the allowed release, Denial that of
	// the refused one.
	Release *audit.Entry `json:"release,omitempty"`
	Denial  *audit.Entry `json:"denial,omitempty"`
	// OutputDenial is the refused job's denial on the results key.
	OutputDenial *audit.Entry `json:"output_denial,omitempty"`
	// Refusal is what the launcher reported for the modified job.
	Refusal *Denial `json:"refusal,omitempty"`
	// OutputKeys are the output_key audit entries of the four demo jobs
	// (exec, SQL, training): the data key of each job's output, issued
	// under ResultKeyName inside the job's attested release.
	OutputKeys []*audit.Entry `json:"output_keys,omitempty"`
	// Decrypts are the decrypt audit entries of the owner unwrapping those
	// outputs' data keys at the key service, one per output.
	Decrypts []*audit.Entry `json:"decrypts,omitempty"`
	// Result is the decrypted result of the demo job (aggregates only).
	Result string `json:"result,omitempty"`
	// SQL is the SQL step's job and decrypted result (aggregates only).
	SQL *SQLStep `json:"sql,omitempty"`
	// Train is the training step's job and the decrypted model's
	// description and test metrics.
	Train *TrainStep `json:"train,omitempty"`
	// DL is the deep-learning step's job and the decrypted network's
	// description, test metrics and the owner's own scoring.
	DL *DLStep `json:"dl,omitempty"`
	// Scan is the final check of the working directory.
	Scan *ScanReport `json:"scan,omitempty"`
}

// Names the demo gives its parties and keys: the owner's data is
// encrypted under KeyName, every job output under ResultKeyName.
const (
	OwnerTenant   = "hospital"
	RunnerTenant  = "analytics-runner"
	KeyName       = "hospital/patients"
	ResultKeyName = "hospital/results"
)

// env is the state the steps share.
type env struct {
	cfg     Config
	out     io.Writer
	sum     *Summary
	dir     string // working directory
	kmsDir  string
	simDir  string
	exe     string
	runtime string // ppml-run
	// runtimeDL is ppml-run-dl, where dl jobs run (runtime when there is none).
	runtimeDL     string
	measurementDL [48]byte
	started       time.Time

	srv      *kms.Server
	stopSrv  func() error
	url      string
	fp       string
	port     int
	auditPub *ecdsa.PublicKey

	admin, owner, runner *client.Client
	runnerToken          string // for ppml-run, through its environment
	ownerTokenID         string
	runnerTokenID        string
	keyRef               envelope.KeyRef
	resultRef            envelope.KeyRef
	measurement          [48]byte
	exeSHA256            string

	jobs     []*Job
	canary   canary
	before   map[string]map[string]bool // entries of shared temp dirs before the demo
	modified *modifiedRun
}

type modifiedRun struct {
	manifest string
	digest   string
}

// Run runs the demo. The error is non-nil only when the demo could not be
// set up at all; a failed step is reported in the summary (OK false).
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	e := &env{cfg: cfg, out: cfg.Out, sum: &Summary{}, started: time.Now()}
	if e.out == nil {
		e.out = io.Discard
	}
	e.exe = cfg.Executable
	if e.exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("demo: find this program: %w", err)
		}
		e.exe = exe
	}
	if abs, err := filepath.Abs(e.exe); err == nil {
		e.exe = filepath.Clean(abs)
	}
	e.runtime = cfg.Runtime
	if e.runtime == "" {
		rt, err := handover.Find(handover.Runtime)
		if err != nil {
			return nil, fmt.Errorf("demo: the jobs run in the runtime: %w", err)
		}
		e.runtime = rt
	}
	if abs, err := filepath.Abs(e.runtime); err == nil {
		e.runtime = filepath.Clean(abs)
	}
	e.sum.Runtime = e.runtime
	// dl jobs run in ppml-run-dl, the runtime with libtorch, as `ppml run` hands them over;
	// without one (a test's runtime with every engine) they run in the same runtime.
	e.runtimeDL = e.runtime
	if cfg.Runtime == "" {
		if rt, err := handover.Find(handover.RuntimeDL); err == nil {
			if abs, err := filepath.Abs(rt); err == nil {
				e.runtimeDL = filepath.Clean(abs)
			}
		}
	}
	e.before = sharedTempEntries()
	if err := e.makeDir(); err != nil {
		return nil, err
	}
	defer e.cleanup()
	var err error
	if e.canary, err = newCanary(); err != nil {
		return nil, err
	}
	e.jobs = jobs()

	fmt.Fprintln(e.out, "ppml demo: the whole chain on this machine, in the SIMULATED TEE (insecure: it shows the protocol, it protects nothing).")
	steps := []struct {
		title string
		fn    func(context.Context, *Step) error
	}{
		{"Start the real key service on 127.0.0.1 (TLS 1.3, file seal, a temporary data directory), trusting this machine's simulated TEE through a temporary platform key — never your own simulation keys.", e.startServer},
		{"As administrator create the data owner (tenant + token) and a job runner; as the owner create two keys, hospital/patients for the data and hospital/results for every job output, each with a policy that releases it only to the simulated TEE running this exact ppml-run runtime binary (SHA-384 measurement) and these exact demo jobs (digests of the exec, SQL, training and deep-learning jobs) — a separate results key, because a careful owner can later let a downstream job read the aggregates without letting it read the patient records.", e.setupOwner},
		{"The owner encrypts the bundled synthetic dataset patients.csv, with one planted canary row, under the key-service key; the plaintext never touches the disk.", e.encrypt},
		{"Run the exec demo job in the simulated TEE through the real launcher: attest, receive the data key sealed to the TEE, decrypt into memory, run `ppml demo aggregate` (visits per diagnosis, groups under 5 suppressed), and encrypt the output under the owner's key-service key hospital/results, whose fresh data key comes sealed to the TEE in the same attested release.", e.runJobs},
		{"Verify the audit log as an outsider would: fetch the export and a signed tree head, verify every entry, the Merkle tree and every signature offline with audit.VerifyExport, and prove the inclusion of the job's release entry and of its output_key entry.", e.verifyAudit},
		{"The owner decrypts the result through the key service (it unwraps the output's data key under hospital/results with the owner's token — the runner could not — and the decrypt is audited) and reads it; it matches the aggregate of the plaintext.", e.decryptResult},
		{"Run a SQL job (sql engine) over the same encrypted dataset in the simulated TEE — visits per diagnosis, GROUP BY … HAVING count(*) >= 5 — whose digest both key policies also allow; the owner decrypts its output through the key service and it matches the aggregate computed in Go from the plaintext.", e.sqlStep},
		{"Train a model on encrypted data (ml engine): the owner encrypts the bundled public breast cancer dataset under the same key, an XGBoost job (one thread) trains a classifier in the simulated TEE, and the owner decrypts the encrypted model through the key service; it records the approved job's digest and its test metrics.", e.trainStep},
		{"Train a neural network on the same encrypted data (dl engine, libtorch): a small MLP job (one thread, a second or so) trains in the simulated TEE on the encrypted breast cancer table and writes a TorchScript model encrypted under hospital/results; the owner decrypts it through the key service, reads it as data only, checks the recorded job digest and test metrics, and runs its forward pass in plain Go on the plaintext.", e.dlStep},
		{"A modified job — one byte of the manifest changed (--min-group=5 → --min-group=1, which would expose single patients) — is refused on rule job_digest for both the data key and the results key, never runs, gets no key at all, and the refusal is on the audit log.", e.modifiedJob},
	}
	failed := false
	for i, s := range steps {
		st := Step{N: i + 1, Title: s.title}
		if failed || ctx.Err() != nil {
			st.Skipped = true
			st.Error = "skipped: an earlier step failed"
			if ctx.Err() != nil {
				st.Error = "skipped: " + context.Cause(ctx).Error()
			}
			e.sum.Steps = append(e.sum.Steps, st)
			fmt.Fprintf(e.out, "\n%d. %s\n   - skipped\n", st.N, st.Title)
			continue
		}
		if !e.runStep(ctx, &st, s.fn) {
			failed = true
		}
	}
	// The last step always runs: it stops the server and cleans up.
	st := Step{N: len(steps) + 1, Title: "Leave nothing behind: stop the key service, check that the working directory holds only ciphertext and the demo's own key material and that no planted marker is readable in it or in the shared temporary directories, then remove it."}
	if !e.runStep(ctx, &st, e.finalScan) {
		failed = true
	}
	e.sum.OK = !failed
	e.sum.Seconds = time.Since(e.started).Seconds()
	if e.sum.OK {
		fmt.Fprintf(e.out, "\nppml demo: all %d steps passed in %.1f s.\n", len(e.sum.Steps), e.sum.Seconds)
	} else if ctx.Err() != nil {
		fmt.Fprintf(e.out, "\nppml demo: interrupted (%v) after %d of %d steps; cleaned up.\n", context.Cause(ctx), e.passed(), len(e.sum.Steps))
	} else {
		fmt.Fprintf(e.out, "\nppml demo: FAILED (%d of %d steps passed).\n", e.passed(), len(e.sum.Steps))
	}
	return e.sum, nil
}

func (e *env) passed() int {
	n := 0
	for _, s := range e.sum.Steps {
		if s.OK {
			n++
		}
	}
	return n
}

func (e *env) runStep(ctx context.Context, st *Step, fn func(context.Context, *Step) error) bool {
	fmt.Fprintf(e.out, "\n%d. %s\n", st.N, st.Title)
	t0 := time.Now()
	err := fn(ctx, st)
	st.DurationMS = float64(time.Since(t0).Microseconds()) / 1000
	// Details and errors quote the runtime's log and the key service's
	// answers: printed through TermSafe so they cannot act on the terminal.
	for _, d := range st.Details {
		fmt.Fprintf(e.out, "   %s\n", command.TermSafe(d, "\t"))
	}
	if err != nil {
		st.Error = err.Error()
		fmt.Fprintf(e.out, "   ✗ %s\n", indent(command.TermSafe(st.Error, "\n\t")))
	} else {
		st.OK = true
		fmt.Fprintf(e.out, "   ✓ step %d passed (%.0f ms)\n", st.N, st.DurationMS)
	}
	e.sum.Steps = append(e.sum.Steps, *st)
	return st.OK
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n     ") }

func (st *Step) detail(format string, args ...any) {
	st.Details = append(st.Details, fmt.Sprintf(format, args...))
}

func (st *Step) fact(k, v string) {
	if st.Facts == nil {
		st.Facts = map[string]string{}
	}
	st.Facts[k] = v
}

func (e *env) makeDir() error {
	if e.cfg.KeepDir == "" {
		d, err := os.MkdirTemp("", "ppml-demo-")
		if err != nil {
			return fmt.Errorf("demo: working directory: %w", err)
		}
		e.dir = d
	} else {
		abs, err := filepath.Abs(e.cfg.KeepDir)
		if err != nil {
			return fmt.Errorf("demo: --keep %s: %w", e.cfg.KeepDir, err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return fmt.Errorf("demo: --keep: %w", err)
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			return fmt.Errorf("demo: --keep: %w", err)
		}
		if len(ents) > 0 {
			return fmt.Errorf("demo: --keep %s: the directory is not empty (give a new or empty directory)", e.cfg.KeepDir)
		}
		e.dir = abs
		e.sum.WorkDir = abs
	}
	e.kmsDir = filepath.Join(e.dir, "kms")
	e.simDir = filepath.Join(e.dir, "sim")
	for _, d := range []string{e.kmsDir, e.simDir, filepath.Join(e.dir, "out")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// cleanup stops the server if a step did not, and removes the working
// directory unless it is kept. It runs on every path out of Run.
func (e *env) cleanup() {
	if e.stopSrv != nil {
		e.stopSrv()
	}
	if e.cfg.KeepDir == "" && e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// Step 1.
func (e *env) startServer(ctx context.Context, st *Step) error {
	// The simulated platform key the "TEE" signs evidence with, made in the
	// demo's own directory; the server trusts exactly this key. The admin
	// token issued at first start comes through the bootstrap callback;
	// the text the server would print is discarded.
	simTEE, err := local.NewSim(e.simDir, e.exe)
	if err != nil {
		return err
	}
	srv, err := local.Start(local.Options{Sim: simTEE, Config: kms.Config{
		DataDir: e.kmsDir, Seal: "file", Out: io.Discard, Logger: slog.New(slog.DiscardHandler),
	}})
	if err != nil {
		return fmt.Errorf("start key service: %w", err)
	}
	e.srv = srv.Server
	e.stopSrv = srv.Stop
	e.port = srv.Port
	e.url = srv.URL
	e.fp = srv.Fingerprint
	e.sum.Server = e.url
	e.auditPub = srv.AuditPublicKey()
	adminToken := srv.AdminToken()

	if adminToken == "" {
		return errors.New("the key service issued no admin bootstrap token")
	}
	if e.admin, err = e.client(adminToken); err != nil {
		return err
	}
	// The server is up when it answers over TLS with the pinned certificate.
	status, err := e.admin.Status(ctx)
	if err != nil {
		return fmt.Errorf("key service does not answer: %w", err)
	}
	if status.Sealed {
		return errors.New("key service started sealed")
	}
	kid := sim.KeyID(simTEE.PublicKey)
	st.detail("key service at %s (TLS 1.3, certificate pinned by SHA-256 %s…), seal %s, data in %s", e.url, e.fp[:16], status.Seal, e.rel(e.kmsDir))
	st.detail("trusts the simulated TEE platform key %x… made in %s (PPML_SIM_DIR for this run only)", kid[:8], e.rel(e.simDir))
	st.fact("server", e.url)
	st.fact("tls_fingerprint", e.fp)
	st.fact("sim_platform_key_id", hex.EncodeToString(kid[:]))
	return nil
}

func (e *env) client(token string) (*client.Client, error) {
	return client.New(e.url, token, client.Options{Fingerprint: e.fp, Timeout: 20 * time.Second})
}

// rel shows a path inside the working directory relative to it.
func (e *env) rel(p string) string {
	if r, err := filepath.Rel(e.dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.Join("$WORK", r)
	}
	return p
}

// Step 2.
func (e *env) setupOwner(ctx context.Context, st *Step) error {
	for _, t := range []struct{ name, role string }{{OwnerTenant, api.RoleOwner}, {RunnerTenant, api.RoleRunner}} {
		if _, err := e.admin.CreateTenant(ctx, t.name, t.role); err != nil {
			return fmt.Errorf("create tenant %s: %w", t.name, err)
		}
	}
	ot, err := e.admin.CreateToken(ctx, OwnerTenant, "ppml demo owner")
	if err != nil {
		return fmt.Errorf("owner token: %w", err)
	}
	rt, err := e.admin.CreateToken(ctx, RunnerTenant, "ppml demo runner")
	if err != nil {
		return fmt.Errorf("runner token: %w", err)
	}
	e.ownerTokenID, e.runnerTokenID, e.runnerToken = ot.ID, rt.ID, rt.Token
	if e.owner, err = e.client(ot.Token); err != nil {
		return err
	}
	if e.runner, err = e.client(rt.Token); err != nil {
		return err
	}
	st.detail("tenant %s (owner, token %s) and tenant %s (runner, token %s); tokens are shown once and kept in memory only", OwnerTenant, ot.ID, RunnerTenant, rt.ID)

	e.keyRef = envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: "127.0.0.1", Port: e.port, Name: KeyName}
	e.resultRef = envelope.KeyRef{Scheme: envelope.SchemeKMS, Host: "127.0.0.1", Port: e.port, Name: ResultKeyName}

	// What the policy pins: the runtime binary and the demo jobs.
	if e.measurement, err = sim.Measure(e.runtime); err != nil {
		return err
	}
	e.sum.Measurement = hex.EncodeToString(e.measurement[:])
	measurements := []string{e.sum.Measurement}
	e.measurementDL = e.measurement
	if e.runtimeDL != e.runtime {
		if e.measurementDL, err = sim.Measure(e.runtimeDL); err != nil {
			return err
		}
		measurements = append(measurements, hex.EncodeToString(e.measurementDL[:]))
	}
	if e.exeSHA256, err = fileSHA256(e.exe); err != nil {
		return fmt.Errorf("pin the job's program: %w", err)
	}
	var digests []string
	for _, j := range e.jobs {
		m, err := j.Manifest(e.jobEnv())
		if err != nil {
			return fmt.Errorf("job %s: %w", j.Name, err)
		}
		j.path = filepath.Join(e.dir, j.File)
		if err := os.WriteFile(j.path, m, 0o644); err != nil {
			return err
		}
		pm, err := job.Parse(m, e.dir, specs.All)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.Name, err)
		}
		j.manifest, j.digest = m, pm.DigestString()
		digests = append(digests, j.digest)
		st.detail("job %s (%s engine) in %s: digest %s", j.Name, pm.Engine, e.rel(j.path), j.digest)
	}
	e.sum.JobDigest = e.jobs[0].digest
	doc, err := json.Marshal(map[string]any{
		"version":   1,
		"jobs":      digests,
		"platforms": map[string]any{"sim": map[string]any{"measurements": measurements}},
	})
	if err != nil {
		return err
	}
	// The same policy on both keys: these jobs, in this TEE, may read the
	// data and write results. Another job could later be allowed on the
	// results key alone.
	for _, ref := range []envelope.KeyRef{e.keyRef, e.resultRef} {
		k, err := e.owner.CreateKey(ctx, ref.Name)
		if err != nil {
			return fmt.Errorf("create key %s: %w", ref.Name, err)
		}
		p, err := e.owner.SetPolicy(ctx, ref.Name, doc)
		if err != nil {
			return fmt.Errorf("set policy of %s: %w", ref.Name, err)
		}
		if _, ok := p.Platforms[attest.PlatformSim]; !ok || len(p.Jobs) != len(digests) {
			return fmt.Errorf("the server stored another policy for %s than the one set", ref.Name)
		}
		st.detail("key %s (version %d) with policy: platform sim, measurement %s…, jobs %s", ref, k.Version, e.sum.Measurement[:24], strings.Join(short(digests), ", "))
	}
	st.detail("%s encrypts the data, %s every job output: the owner holds both, the runner neither", KeyName, ResultKeyName)
	st.fact("key", e.keyRef.String())
	st.fact("result_key", e.resultRef.String())
	st.fact("measurement", e.sum.Measurement)
	st.fact("job_digest", e.sum.JobDigest)
	return nil
}

func short(ds []string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		if len(d) > 23 {
			d = d[:23] + "…"
		}
		out[i] = d
	}
	return out
}

// Step 3.
func (e *env) encrypt(ctx context.Context, st *Step) error {
	plain := e.canary.plant(data.PatientsCSV)
	defer clear(plain)
	// What the job should compute, from the owner's plaintext, to compare
	// with the decrypted result in step 6.
	for _, j := range e.jobs {
		if j.Expect != nil {
			want, err := j.Expect(plain)
			if err != nil {
				return fmt.Errorf("job %s: expected result: %w", j.Name, err)
			}
			j.want = want
		}
	}
	path := filepath.Join(e.dir, "patients.csv.ppml")
	n, err := e.encryptFile(ctx, plain, path)
	if err != nil {
		return err
	}
	rows := bytes.Count(data.PatientsCSV, []byte("\n")) - 1
	st.detail("%d visit rows + 1 canary row (%d B of CSV, canary patient %s) → %s (%d B), data key wrapped by %s", rows, len(plain), e.canary.id, e.rel(path), n, e.keyRef)
	st.detail("no patient name, id or the canary is readable in the encrypted file")
	st.fact("encrypted", path)
	return nil
}

// encryptFile encrypts a CSV held in memory to path under the key-service
// key, and checks that no marker is readable in the result.
func (e *env) encryptFile(ctx context.Context, plain []byte, path string) (int, error) {
	kw := &client.EnvelopeKey{Client: e.owner, Ref: e.keyRef, Ctx: ctx}
	w, err := envelope.CreateFile(path, kw, &envelope.Options{ContentType: envelope.TypeCSV, Size: int64(len(plain)), SizeKnown: true}, false)
	if err != nil {
		return 0, fmt.Errorf("encrypt: %w", err)
	}
	defer w.Abort()
	if _, err := w.Write(plain); err != nil {
		return 0, fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("encrypt: %w", err)
	}
	ct, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if m := e.canary.findAll(ct); m != "" {
		return 0, fmt.Errorf("the encrypted file %s contains the plaintext marker %q", e.rel(path), m)
	}
	return len(ct), nil
}

// Step 4.
func (e *env) runJobs(ctx context.Context, st *Step) error {
	for _, j := range e.jobs {
		if j.Own {
			continue
		}
		run, err := e.launch(ctx, j.path)
		for _, l := range run.log {
			st.detail("%s", l)
		}
		if err != nil {
			return fmt.Errorf("job %s: %w", j.Name, err)
		}
		if run.res.Digest != j.digest {
			return fmt.Errorf("job %s: the launcher ran digest %s, the owner approved %s", j.Name, run.res.Digest, j.digest)
		}
		if len(run.res.Outputs) == 0 {
			return fmt.Errorf("job %s: no output written", j.Name)
		}
		j.outputs = run.res.Outputs
		if run.token == 0 {
			return fmt.Errorf("job %s: the key service returned no attestation token", j.Name)
		}
		st.detail("the key service returned a signed attestation token (ES256, %d B) naming the job and the measurement", run.token)
		ok, err := e.outputKeyEntry(ctx, j)
		if err != nil {
			return err
		}
		st.detail("audit entry #%d: output_key %s@%d issued to token %s for this job's output, in the same release", ok.Index, ok.Key, ok.KeyVersion, ok.Actor)
	}
	return nil
}

// outputKeyEntry checks that the owner's audit trail of the results key
// holds the output_key entry of job j's release and records it.
func (e *env) outputKeyEntry(ctx context.Context, j *Job) (*audit.Entry, error) {
	ok, err := e.findEntry(ctx, ResultKeyName, audit.TypeOutputKey, j.digest)
	if err != nil {
		return nil, err
	}
	if ok.Decision != audit.Allow || ok.Actor != e.runnerTokenID || ok.Tenant != OwnerTenant || !bytes.Equal(ok.Measurement, e.measurementOf(j)) {
		return nil, fmt.Errorf("output_key entry %d for job %s: decision %s, actor %s, tenant %s, measurement %s", ok.Index, j.Name, ok.Decision, ok.Actor, ok.Tenant, ok.Measurement)
	}
	e.sum.OutputKeys = append(e.sum.OutputKeys, ok)
	return ok, nil
}

type launchRun struct {
	res     *runResult
	log     []string
	program string
	token   int // size of the attestation token the runtime received
}

// runResult is what `ppml-run run --json` prints when the run ends.
type runResult struct {
	Name     string   `json:"name"`
	Digest   string   `json:"digest"`
	Outputs  []string `json:"outputs"`
	ExitCode int      `json:"exit_code"`
	Error    string   `json:"error"`
	Denials  []Denial `json:"denials"`
	// TokenBytes is the size of the attestation token the key service
	// returned; the token stays in the runtime.
	TokenBytes int `json:"attestation_token_bytes"`
}

// Denial names a refused key and the rule that refused it, as the runtime
// reports it.
type Denial = api.Denial

// deniedError is a run the key service refused.
type deniedError struct{ denials []Denial }

func (d *deniedError) Error() string { return api.DenialsText(d.denials) }

// launch runs one manifest in the runtime, as the job runner would: ppml-run
// run in the simulated TEE with the runner's token (in its environment, not
// its arguments), the key service's certificate pinned.
func (e *env) launch(ctx context.Context, manifest string) (*launchRun, error) {
	return e.launchIn(ctx, e.runtime, manifest)
}

// runtimeOf is the runtime that runs a job, and measurementOf its measurement: dl jobs run in
// ppml-run-dl.
func (e *env) runtimeOf(j *Job) string {
	if j.Name == dlJobName {
		return e.runtimeDL
	}
	return e.runtime
}

func (e *env) measurementOf(j *Job) []byte {
	if j.Name == dlJobName {
		return e.measurementDL[:]
	}
	return e.measurement[:]
}

// launchIn runs a manifest in the given runtime binary (ppml-run, or ppml-run-dl for dl jobs).
func (e *env) launchIn(ctx context.Context, runtime, manifest string) (*launchRun, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, runtime, "run", "--manifest", manifest, "--tee", "sim", "--grace", "2s", "--json")
	cmd.Env = append(os.Environ(), "PPML_SERVER="+e.url, "PPML_TOKEN="+e.runnerToken,
		"PPML_SERVER_FINGERPRINT="+e.fp, "PPML_SIM_DIR="+e.simDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	prog, res, perr := splitResult(stdout.Bytes())
	run := &launchRun{res: res, program: string(prog), token: res.TokenBytes}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		l = strings.ReplaceAll(l, e.dir+string(filepath.Separator), "$WORK/")
		switch {
		case l == "":
		case strings.HasPrefix(l, "ppml run: the key service returned a signed attestation token"):
			// the step says so itself, from the result object
		case strings.HasPrefix(l, "ppml run: "):
			run.log = append(run.log, "launcher: "+strings.TrimPrefix(l, "ppml run: "))
		case strings.HasPrefix(l, "ppml-run: "), strings.HasPrefix(l, "  key "):
			run.log = append(run.log, "launcher: "+strings.TrimPrefix(l, "ppml-run: ")) // its error
		default:
			run.log = append(run.log, "program:  "+l) // the program's stderr
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(string(prog)), "\n") {
		if l != "" {
			run.log = append(run.log, "program:  "+l)
		}
	}
	if m := e.canary.find(stdout.Bytes()); m != "" {
		return run, fmt.Errorf("the program printed the plaintext marker %q", m)
	}
	if m := e.canary.find(stderr.Bytes()); m != "" {
		return run, fmt.Errorf("the runtime printed the plaintext marker %q on stderr", m)
	}
	switch {
	case perr != nil:
		return run, fmt.Errorf("%s: %v (%v; stderr: %s)", runtime, perr, runErr, strings.TrimSpace(stderr.String()))
	case len(res.Denials) > 0:
		return run, &deniedError{denials: res.Denials}
	case res.ExitCode != 0 || runErr != nil:
		return run, fmt.Errorf("ppml-run exit %d: %s", res.ExitCode, res.Error)
	}
	return run, nil
}

// splitResult cuts `ppml-run run --json` output into the program's own
// output and the result object the runtime prints last.
func splitResult(out []byte) ([]byte, *runResult, error) {
	for i := bytes.LastIndex(out, []byte("{\n")); i >= 0; i = bytes.LastIndex(out[:i], []byte("{\n")) {
		if i > 0 && out[i-1] != '\n' {
			continue
		}
		var r runResult
		dec := json.NewDecoder(bytes.NewReader(out[i:]))
		if dec.Decode(&r) == nil && !dec.More() {
			return out[:i], &r, nil
		}
	}
	return out, &runResult{}, errors.New("no result object on the runtime's standard output")
}

// Step 5.
func (e *env) verifyAudit(ctx context.Context, st *Step) error {
	// The tree-head key from the server, compared with the one the demo
	// holds from the server process itself (a trusted channel).
	pemb, err := e.admin.AuditPublicKey(ctx)
	if err != nil {
		return err
	}
	pub, err := audit.ParsePublicKey(pemb)
	if err != nil {
		return err
	}
	if ep, ok := pub.(*ecdsa.PublicKey); !ok || !ep.Equal(e.auditPub) {
		return errors.New("the audit public key the server serves is not the server's tree-head key")
	}
	rel, err := e.findEntry(ctx, KeyName, audit.TypeRelease, e.jobs[0].digest)
	if err != nil {
		return err
	}
	outKey, err := e.findEntry(ctx, ResultKeyName, audit.TypeOutputKey, e.jobs[0].digest)
	if err != nil {
		return err
	}
	okEntry, okHead, err := e.owner.AuditReceipt(ctx, outKey.Index, e.auditPub)
	if err != nil {
		return fmt.Errorf("inclusion proof of entry %d: %w", outKey.Index, err)
	}
	if okEntry.Type != audit.TypeOutputKey || okEntry.Key != ResultKeyName || okEntry.Decision != audit.Allow || okEntry.JobDigest.String() != entryDigest(e.jobs[0].digest) {
		return fmt.Errorf("entry %d is %s %s of %s, want an allowed output_key of %s for the job", okEntry.Index, okEntry.Decision, okEntry.Type, okEntry.Key, ResultKeyName)
	}
	entry, head, err := e.owner.AuditReceipt(ctx, rel.Index, e.auditPub)
	if err != nil {
		return fmt.Errorf("inclusion proof of entry %d: %w", rel.Index, err)
	}
	proofLen := inclusionHashes(rel.Index, head.Size)
	export, err := e.admin.AuditExport(ctx)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	res, err := audit.VerifyExport(bytes.NewReader(export), audit.VerifyOptions{PublicKey: e.auditPub, Trusted: []*audit.TreeHead{head}})
	if err != nil {
		return fmt.Errorf("offline verification: %w", err)
	}
	switch {
	case entry.Decision != audit.Allow || entry.Key != KeyName:
		return fmt.Errorf("entry %d is %s of %s, want an allowed release of %s", entry.Index, entry.Decision, entry.Key, KeyName)
	case entry.Actor != e.runnerTokenID:
		return fmt.Errorf("entry %d names actor %s, want the runner's token %s", entry.Index, entry.Actor, e.runnerTokenID)
	case !bytes.Equal(entry.Measurement, e.measurement[:]):
		return fmt.Errorf("entry %d names measurement %s, want %s", entry.Index, entry.Measurement, e.sum.Measurement)
	case "sha256:"+entry.JobDigest.String() != e.jobs[0].digest:
		return fmt.Errorf("entry %d names job %s, want %s", entry.Index, entry.JobDigest, e.jobs[0].digest)
	case entry.Platform != "sim" || !entry.Insecure:
		return fmt.Errorf("entry %d: platform %s insecure=%v, want sim marked insecure", entry.Index, entry.Platform, entry.Insecure)
	}
	e.sum.Release = entry
	st.detail("export: %d entries; every entry, the hash chain, the Merkle tree and every signed tree head verify offline (ECDSA P-256 key %s…)", res.Entries, hex.EncodeToString(res.TreeHead.KeyID)[:16])
	st.detail("release entry #%d at %s: key %s@%d released to token %s (tenant %s), platform %s INSECURE, measurement %s…, job sha256:%s…",
		entry.Index, entry.Time.Format(time.RFC3339), entry.Key, entry.KeyVersion, entry.Actor, RunnerTenant, entry.Platform, entry.Measurement.String()[:24], entry.JobDigest.String()[:16])
	st.detail("inclusion proof: entry #%d is in the signed tree head of %d entries (root %s…) via %d hashes, and the export extends that head", entry.Index, head.Size, head.RootHash.String()[:16], proofLen)
	st.detail("output_key entry #%d: a fresh data key under %s@%d for the job's output, in the same release — proven included in the signed tree head of %d entries via %d hashes",
		okEntry.Index, okEntry.Key, okEntry.KeyVersion, okHead.Size, inclusionHashes(okEntry.Index, okHead.Size))
	st.fact("release_entry", fmt.Sprint(entry.Index))
	st.fact("output_key_entry", fmt.Sprint(okEntry.Index))
	st.fact("tree_size", fmt.Sprint(head.Size))
	st.fact("root_hash", head.RootHash.String())
	return nil
}

// entryDigest is a job digest as an audit entry shows it (hex, no prefix).
func entryDigest(jd string) string { return strings.TrimPrefix(jd, "sha256:") }

// findEntry returns the newest entry of type t for the owner's key with
// job digest jd.
func (e *env) findEntry(ctx context.Context, key string, t audit.Type, jd string) (*audit.Entry, error) {
	es, err := e.owner.AuditList(ctx, key, 0, 1000)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Type == t && "sha256:"+es[i].JobDigest.String() == jd {
			return &es[i], nil
		}
	}
	return nil, fmt.Errorf("the audit trail of %s has no %s entry for job %s (%d entries)", key, t, jd, len(es))
}

// inclusionHashes is the number of hashes in the RFC 6962 inclusion proof
// of leaf m in a tree of n leaves (the client verifies the proof and
// returns only the entry and the head).
func inclusionHashes(m, n uint64) int {
	if n <= 1 {
		return 0
	}
	k := uint64(1)
	for k<<1 < n {
		k <<= 1
	}
	if m < k {
		return 1 + inclusionHashes(m, k)
	}
	return 1 + inclusionHashes(m-k, n-k)
}
