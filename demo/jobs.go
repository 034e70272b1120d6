package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Job is one demo job. The demo approves every job in its key policy; the
// exec job runs in step 4 and is checked in step 6, the sql and ml jobs
// have a step each (Own); the modified-job step changes the first job.
type Job struct {
	Name string
	// File is the manifest's file name in the working directory.
	File string
	// Manifest renders the manifest for this run.
	Manifest func(je JobEnv) ([]byte, error)
	// Expect computes the expected plaintext result from the owner's
	// plaintext dataset (nil: the result is only shown).
	Expect func(dataset []byte) ([]byte, error)
	// Verify compares the decrypted result with Expect's (nil: byte for byte).
	Verify func(got, want []byte) error
	// Modify changes one byte of the manifest for the modified-job step
	// (first job only).
	Modify func(manifest []byte) ([]byte, string, error)
	// Own: the job runs and is checked in a step of its own (the engine
	// steps) instead of steps 4 and 6.
	Own bool
	// Dataset is the encrypted input the job's own step writes (empty: the
	// patients dataset of step 3).
	Dataset string

	path     string
	manifest []byte
	digest   string
	want     []byte
	outputs  []string
}

// JobEnv is what a manifest refers to.
type JobEnv struct {
	Executable string // the ppml binary, absolute
	ExeSHA256  string // its SHA-256, hex
	InputKey   string // kms://127.0.0.1:PORT/KEY
	OutputKey  string // kms://127.0.0.1:PORT/RESULTKEY
}

func (e *env) jobEnv() JobEnv {
	return JobEnv{Executable: e.exe, ExeSHA256: e.exeSHA256, InputKey: e.keyRef.String(), OutputKey: e.resultRef.String()}
}

func jobs() []*Job {
	return []*Job{execJob(), sqlJob(), mlJob(), dlJob()}
}

// minGroupArg is the argument the modified job changes by one byte.
const minGroupArg = "--min-group="

// execJob is the exec engine's demo job: ppml itself, re-invoked as
// `ppml demo aggregate`, counts visits per diagnosis. The program file is
// pinned by SHA-256 under parameters.files, so the job identity covers the
// program's content and not only its path.
func execJob() *Job {
	return &Job{
		Name: "patients-by-diagnosis",
		File: "job.yaml",
		Manifest: func(je JobEnv) ([]byte, error) {
			q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a JSON string is a YAML double-quoted scalar
			var b strings.Builder
			fmt.Fprintf(&b, `# The ppml demo job: visits per diagnosis over the encrypted patients dataset.
# Its digest (ppml job digest --manifest job.yaml) is what the owner's policy allows.
name: patients-by-diagnosis
engine: exec
inputs:
  %s:
    path: patients.csv.ppml
    key: %s
outputs:
  %s:
    path: out/summary.csv.ppml
    key: %s
    content_type: text/csv
parameters:
  command:
    - %s
    - demo
    - aggregate
    - %s%d
  files:
    - path: %s
      sha256: %s
resources:
  memory: 256MiB
  threads: 1
`, InputName, je.InputKey, OutputName, je.OutputKey, q(je.Executable), minGroupArg, DefaultMinGroup, q(je.Executable), je.ExeSHA256)
			return []byte(b.String()), nil
		},
		Expect: func(dataset []byte) ([]byte, error) {
			a, err := Aggregate(bytes.NewReader(dataset), DefaultMinGroup)
			if err != nil {
				return nil, err
			}
			var buf bytes.Buffer
			err = a.WriteCSV(&buf)
			return buf.Bytes(), err
		},
		Modify: func(m []byte) ([]byte, string, error) {
			from := []byte(fmt.Sprintf("%s%d", minGroupArg, DefaultMinGroup))
			if bytes.Count(m, from) != 1 {
				return nil, "", fmt.Errorf("the manifest does not hold %s exactly once", from)
			}
			to := []byte(minGroupArg + "1")
			return bytes.Replace(m, from, to, 1), fmt.Sprintf("%s → %s", from, to), nil
		},
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
