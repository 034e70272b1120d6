package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
)

// upperParams are the parameters of a test engine that upper-cases its
// input; it declares one raw input and one secret file.
type upperParams struct{ raw, secret string }

func (p *upperParams) Canonical() map[string]any {
	return map[string]any{"raw": p.raw, "secret": p.secret}
}
func (p *upperParams) RawInputs() []string   { return []string{p.raw} }
func (p *upperParams) SecretFiles() []string { return []string{p.secret} }
func (p *upperParams) CheckManifest(m *job.Manifest, _ *job.Checker) {
	p.secret = filepath.Join(m.Dir, p.secret)
}

// upperEngine is a test engine: its spec reads {raw, secret}, and Run
// upper-cases the decrypted inputs into the one output.
type upperEngine struct{}

func (upperEngine) Spec() job.Spec { return upperSpec{} }

type upperSpec struct{}

func (upperSpec) Name() string { return "launcher-test-upper" }
func (upperSpec) ParseParameters(n job.Node, _ bool, c *job.Checker) job.Parameters {
	fs, _ := n.CheckedFields(c, "raw", "secret")
	raw, _ := fs["raw"].Str()
	secret, _ := fs["secret"].Str()
	return &upperParams{raw: raw, secret: secret}
}

func (upperEngine) Run(_ context.Context, j *launcher.Job) error {
	p := j.Manifest.Parameters.(*upperParams)
	var b bytes.Buffer
	for _, in := range j.Inputs {
		if in.Raw {
			b.WriteString("raw " + in.Name + " " + filepath.Base(in.Files[0].Path) + "\n")
			continue
		}
		data, err := io.ReadAll(in.Files[0].Mem.OSFile())
		if err != nil {
			return err
		}
		b.WriteString(strings.ToUpper(string(data)))
	}
	b.WriteString("secret " + string(j.Secrets[p.secret]) + "\n")
	_, err := j.Outputs[0].File.OSFile().Write(b.Bytes())
	return err
}

func init() { launcher.Register(upperEngine{}) }

// TestEngineSeam runs a registered engine: decrypted inputs, a raw input
// passed unopened, a secret file released with the input keys in one
// release, and the output encrypted.
func TestEngineSeam(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t, filepath.Join(dir, "owner.key"))
	encryptTo(t, filepath.Join(dir, "in.txt.ppml"), k.LocalKey, []byte("hello\n"))
	encryptTo(t, filepath.Join(dir, "s.ppml"), k.LocalKey, []byte("s3cret"))
	writeFile(t, filepath.Join(dir, "raw.bin"), "not an envelope")
	writeFile(t, filepath.Join(dir, "job.yaml"), `name: seam
engine: launcher-test-upper
inputs: {in: in.txt.ppml, r: raw.bin}
outputs: {o: {path: o.txt.ppml, key: file:owner.key}}
parameters: {raw: r, secret: s.ppml}
`)
	local, _ := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	rk := &countingKeys{KeySource: local}
	if _, err := runJob(context.Background(), filepath.Join(dir, "job.yaml"), launcher.Config{Keys: rk}); err != nil {
		t.Fatal(err)
	}
	if got := string(decryptFrom(t, filepath.Join(dir, "o.txt.ppml"), k.LocalKey)); got != "HELLO\nraw r raw.bin\nsecret s3cret\n" {
		t.Fatalf("output %q", got)
	}
	if rk.calls != 1 || len(rk.reqs) != 2 {
		t.Fatalf("%d releases, requests %+v", rk.calls, rk.reqs)
	}
}

type countingKeys struct {
	launcher.KeySource
	calls int
	reqs  []launcher.KeyRequest
}

func (c *countingKeys) Release(ctx context.Context, m *launcher.Manifest, reqs []launcher.KeyRequest) ([][]byte, error) {
	c.calls++
	c.reqs = reqs
	return c.KeySource.Release(ctx, m, reqs)
}

// A manifest for an engine this runtime was built without fails at its
// engine field, naming the engines built in, before any key is asked for.
func TestEngineNotBuiltIn(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "job.yaml"), "name: j\nengine: dl\nparameters: {model: m}\n")
	_, err := launcher.Load(filepath.Join(dir, "job.yaml"))
	var je *job.Error
	if !errors.As(err, &je) || !strings.Contains(err.Error(), "line 2: engine: engine dl is not built into this runtime (built in: exec, launcher-test-drain, launcher-test-upper)") {
		t.Fatalf("error %v", err)
	}
	if got := strings.Join(launcher.Engines(), ","); got != "exec,launcher-test-drain,launcher-test-upper" {
		t.Errorf("engines %s", got)
	}
}

// drainEngine is a LongRunning test engine: it runs until stopped, then
// takes Params.drain to finish and writes how it ended.
type drainEngine struct{}

type drainParams struct{ drain time.Duration }

func (p *drainParams) Canonical() map[string]any { return map[string]any{"drain": p.drain.String()} }

type drainSpec struct{}

func (drainSpec) Name() string { return "launcher-test-drain" }
func (drainSpec) ParseParameters(n job.Node, _ bool, c *job.Checker) job.Parameters {
	fs, _ := n.CheckedFields(c, "drain")
	s, _ := fs["drain"].Str()
	d, err := time.ParseDuration(s)
	if err != nil {
		c.Failf(fs["drain"], "%v", err)
	}
	return &drainParams{drain: d}
}

func (drainEngine) Spec() job.Spec { return drainSpec{} }
func (drainEngine) LongRunning()   {}
func (drainEngine) Run(ctx context.Context, j *launcher.Job) error {
	<-ctx.Done()
	time.Sleep(j.Manifest.Parameters.(*drainParams).drain)
	_, err := j.Outputs[0].File.OSFile().WriteString("drained\n")
	return err
}

func init() { launcher.Register(drainEngine{}) }

// ctxKeys is a key source that, like the key service's client, fails
// when its context is done.
type ctxKeys struct{ launcher.KeySource }

func (k ctxKeys) Release(ctx context.Context, m *launcher.Manifest, reqs []launcher.KeyRequest) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return k.KeySource.Release(ctx, m, reqs)
}

func (k ctxKeys) OutputWrapper(ctx context.Context, ref job.KeyRef) (envelope.KeyWrapper, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return k.KeySource.OutputWrapper(ctx, ref)
}

// A long-running engine ends when it is stopped: a drain within the grace
// period is a successful run whose outputs are written; a drain that
// outlasts it fails and writes nothing.
func TestLongRunningDrain(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t, filepath.Join(dir, "owner.key"))
	keys, _ := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	run := func(drain string) error {
		writeFile(t, filepath.Join(dir, "job.yaml"), "name: serve\nengine: launcher-test-drain\noutputs: {o: {path: o.txt.ppml, key: file:owner.key}}\nparameters: {drain: "+drain+"}\n")
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := runJob(ctx, filepath.Join(dir, "job.yaml"), launcher.Config{Keys: keys, Grace: time.Second})
		return err
	}
	if err := run("10ms"); err != nil {
		t.Fatalf("clean drain: %v", err)
	}
	if got := string(decryptFrom(t, filepath.Join(dir, "o.txt.ppml"), k.LocalKey)); got != "drained\n" {
		t.Fatalf("output %q", got)
	}
	os.Remove(filepath.Join(dir, "o.txt.ppml"))

	// Stopped before it started (a SIGTERM while the keys are released):
	// the job still starts, stopped, and drains; the run succeeds.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := runJob(ctx, filepath.Join(dir, "job.yaml"), launcher.Config{Keys: ctxKeys{keys}, Grace: time.Second}); err != nil {
		t.Fatalf("stopped before the start: %v", err)
	}
	if got := string(decryptFrom(t, filepath.Join(dir, "o.txt.ppml"), k.LocalKey)); got != "drained\n" {
		t.Fatalf("stopped before the start: output %q", got)
	}
	os.Remove(filepath.Join(dir, "o.txt.ppml"))
	if err := run("5s"); !errors.Is(err, launcher.ErrDrainTimeout) {
		t.Fatalf("slow drain: %v, want ErrDrainTimeout", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o.txt.ppml")); !os.IsNotExist(err) {
		t.Fatalf("a drain past the grace period wrote its output (%v)", err)
	}
}
