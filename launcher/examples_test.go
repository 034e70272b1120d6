package launcher_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
)

// copyExample copies examples/NAME into a temporary directory, generates
// owner.key there and encrypts the example's data file, as its README does.
func copyExample(t *testing.T, name, data string) (dir string, je *jobEnv) {
	t.Helper()
	src := filepath.Join("..", "examples", name)
	dir = t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	// The README shows the job's digest; it must be the real one.
	m, err := job.Load(filepath.Join(src, "job.yaml"), launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	if readme, _ := os.ReadFile(filepath.Join(src, "README.md")); !bytes.Contains(readme, []byte(m.DigestString())) {
		t.Errorf("%s/README.md does not show the job digest %s", name, m.DigestString())
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, e.Name()), string(b))
	}
	je = &jobEnv{dir: dir, keyPath: filepath.Join(dir, "owner.key"), outDir: filepath.Join(dir, "out"), start: time.Now()}
	je.key = newKey(t, je.keyPath).LocalKey
	plain, err := os.ReadFile(filepath.Join(dir, data))
	if err != nil {
		t.Fatal(err)
	}
	encryptTo(t, filepath.Join(dir, data+".ppml"), je.key, plain)
	// The plaintext sample is not secret, but the run must work without it.
	os.Remove(filepath.Join(dir, data))
	os.Mkdir(je.outDir, 0o755)
	return dir, je
}

func TestExamplePythonHello(t *testing.T) {
	needPython(t)
	t.Setenv("TMPDIR", t.TempDir())
	dir, je := copyExample(t, "python-hello", "names.txt")
	keys, _ := launcher.NewLocalKeys(je.keyPath)
	var stdout bytes.Buffer
	if _, err := runJob(context.Background(), filepath.Join(dir, "job.yaml"), launcher.Config{Keys: keys, Stdout: &stdout, Stderr: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "Hello World\ngreeted 3 names\n" {
		t.Fatalf("stdout %q", stdout.String())
	}
	got := decryptFrom(t, filepath.Join(je.outDir, "greeting.txt.ppml"), je.key)
	if want := "Hello World, Ada!\nHello World, Grace!\nHello World, Alan!\n"; string(got) != want {
		t.Fatalf("greeting %q", got)
	}
}

func TestExamplePythonNumpy(t *testing.T) {
	needPython(t)
	if exec.Command("/usr/bin/python3", "-c", "import numpy").Run() != nil {
		t.Skip("needs python3-numpy")
	}
	t.Setenv("TMPDIR", t.TempDir())
	// The expected statistics, computed here from the plaintext without numpy:
	// for P = A·Aᵀ, trace(P) = Σ a_ik², Σ P = Σ_k (Σ_i a_ik)², P_ij = row_i·row_j.
	f, err := os.Open(filepath.Join("..", "examples", "python-numpy", "matrix.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	a := make([][]int64, len(recs))
	for i, r := range recs {
		for _, s := range r {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			a[i] = append(a[i], v)
		}
	}
	var trace, sum, maxv int64
	maxv = -1 << 62
	colSums := make([]int64, len(a[0]))
	for i := range a {
		for j := range a {
			var dot int64
			for k := range a[i] {
				dot += a[i][k] * a[j][k]
			}
			if i == j {
				trace += dot
			}
			maxv = max(maxv, dot)
		}
		for k, v := range a[i] {
			colSums[k] += v
		}
	}
	for _, c := range colSums {
		sum += c * c
	}
	want := map[string]any{"shape": []any{float64(len(a)), float64(len(a))}, "trace": float64(trace), "sum": float64(sum), "max": float64(maxv)}

	dir, je := copyExample(t, "python-numpy", "matrix.csv")
	keys, _ := launcher.NewLocalKeys(je.keyPath)
	var stdout bytes.Buffer
	if _, err := runJob(context.Background(), filepath.Join(dir, "job.yaml"), launcher.Config{Keys: keys, Stdout: &stdout, Stderr: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stdout.Bytes(), []byte("numpy.dot: ")) {
		t.Fatalf("stdout %q", stdout.String())
	}
	var got map[string]any
	if err := json.Unmarshal(decryptFrom(t, filepath.Join(je.outDir, "stats.json.ppml"), je.key), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats %v, want %v", got, want)
	}
}
