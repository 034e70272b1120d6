package launcher

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/job"
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

type upperJobEngine struct{}

func (upperJobEngine) Name() string { return "launcher-test-upper" }
func (upperJobEngine) ParseParameters(n job.Node, _ bool, c *job.Checker) job.Parameters {
	fs, _ := n.CheckedFields(c, "raw", "secret")
	raw, _ := fs["raw"].Str()
	secret, _ := fs["secret"].Str()
	return &upperParams{raw: raw, secret: secret}
}

func init() {
	job.RegisterEngine(upperJobEngine{})
	RegisterEngine("launcher-test-upper", EngineFunc(func(_ context.Context, j *Job) error {
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
	}))
}

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
	local, _ := NewLocalKeys(filepath.Join(dir, "owner.key"))
	rk := &countingKeys{KeySource: local}
	if _, err := Run(context.Background(), Config{Manifest: filepath.Join(dir, "job.yaml"), Keys: rk}); err != nil {
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
	KeySource
	calls int
	reqs  []KeyRequest
}

func (c *countingKeys) Release(ctx context.Context, m []byte, reqs []KeyRequest) ([][]byte, error) {
	c.calls++
	c.reqs = reqs
	return c.KeySource.Release(ctx, m, reqs)
}
