package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/examples/data"
)

// canary is the row the demo plants in the plaintext dataset: its id, name
// and diagnosis are fresh random strings, so finding one anywhere means
// plaintext leaked (and no other process can have written them). Its
// diagnosis has one visit, so the job's minimum group size suppresses it.
type canary struct {
	id, name, diagnosis string
	// fixed are strings of the bundled datasets that only their plaintext
	// holds (names, ids, header lines, whole rows): scanned in the working
	// directory.
	fixed []string
}

func newCanary() (canary, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return canary{}, err
	}
	h := strings.ToUpper(hex.EncodeToString(b))
	c := canary{id: "CANARY" + h[:8], name: "Canary " + h[8:16], diagnosis: "canary-" + strings.ToLower(h[16:])}
	rows, err := csv.NewReader(bytes.NewReader(data.PatientsCSV)).ReadAll()
	if err != nil || len(rows) < 2 {
		return canary{}, errors.New("demo: the bundled patients.csv does not parse")
	}
	c.fixed = append(c.fixed, strings.Join(rows[0], ","))
	seen := map[string]bool{}
	for _, r := range rows[1:] {
		for _, f := range r[:2] { // patient_id, name
			if !seen[f] {
				seen[f] = true
				c.fixed = append(c.fixed, f)
			}
		}
	}
	// The training data: its header and its first two rows.
	lines := bytes.SplitN(BreastCancerCSV, []byte("\n"), 4)
	if len(lines) < 4 {
		return canary{}, errors.New("demo: the bundled breast_cancer.csv is too short")
	}
	for _, l := range lines[:3] {
		c.fixed = append(c.fixed, string(bytes.TrimRight(l, "\r")))
	}
	return c, nil
}

// plant returns a copy of the dataset with the canary row appended.
func (c canary) plant(csvData []byte) []byte {
	out := make([]byte, 0, len(csvData)+128)
	out = append(out, csvData...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, fmt.Sprintf("%s,%s,1970,2026-07-01,Z00.0,%s,1.00\n", c.id, c.name, c.diagnosis)...)
}

// markers are the canary's strings.
func (c canary) markers() []string { return []string{c.id, c.name, c.diagnosis} }

// find returns the first canary string in b, or "".
func (c canary) find(b []byte) string {
	for _, m := range c.markers() {
		if bytes.Contains(b, []byte(m)) {
			return m
		}
	}
	return ""
}

// findAll returns the first canary or dataset string in b, or "".
func (c canary) findAll(b []byte) string {
	if m := c.find(b); m != "" {
		return m
	}
	for _, m := range c.fixed {
		if bytes.Contains(b, []byte(m)) {
			return m
		}
	}
	return ""
}

// ScanReport is the final check of the working directory.
type ScanReport struct {
	Files     []ScannedFile `json:"files"`
	Markers   int           `json:"markers"` // strings looked for
	Leftovers []string      `json:"leftovers,omitempty"`
	Removed   bool          `json:"removed"`
}

// ScannedFile is one file of the working directory and what it is.
type ScannedFile struct {
	Path  string `json:"path"`
	Kind  string `json:"kind"`
	Bytes int64  `json:"bytes"`
}

// Kinds of files the working directory may hold.
const (
	KindCiphertext = "ciphertext (ppml envelope)"
	KindKey        = "demo key material"
	KindPublic     = "public (certificate, public key, seal state, state witness)"
	KindStore      = "key service database (encrypted store)"
	KindManifest   = "job manifest (no data)"
)

// expected names every file the demo writes and what it is; anything else
// fails the scan.
var expected = map[string]string{
	"kms/root.key": KindKey, "kms/tls.key": KindKey, "kms/tls.crt": KindPublic, "kms/seal.json": KindPublic,
	"kms/ppml.db": KindStore, "kms/state-witness.json": KindPublic, "sim/platform.key": KindKey, "sim/signer.key": KindKey, "sim/platform.pub": KindPublic,
	"job.yaml": KindManifest, "job-modified.yaml": KindManifest,
	"patients.csv.ppml": KindCiphertext, "out/summary.csv.ppml": KindCiphertext,
	"sql-job.yaml": KindManifest, "out/diagnoses.csv.ppml": KindCiphertext,
	"train-job.yaml": KindManifest, "breast_cancer.csv.ppml": KindCiphertext, "out/tumour.model.ppml": KindCiphertext,
	"dl-job.yaml": KindManifest, dlModel: KindCiphertext,
}

// The last step.
func (e *env) finalScan(ctx context.Context, st *Step) error {
	var problems []string
	if e.stopSrv != nil {
		if err := e.stopSrv(); err != nil && !errors.Is(err, context.Canceled) {
			problems = append(problems, "stop the key service: "+err.Error())
		} else {
			st.detail("key service stopped, database closed")
		}
	}
	rep := &ScanReport{Markers: len(e.canary.markers()) + len(e.canary.fixed)}
	e.sum.Scan = rep
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(e.dir, p)
		rel = filepath.ToSlash(rel)
		kind, ok := expected[rel]
		fi, ierr := d.Info()
		if ierr != nil {
			return ierr
		}
		if !ok || !fi.Mode().IsRegular() {
			problems = append(problems, fmt.Sprintf("unexpected file %s", rel))
			kind = "unexpected"
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if kind == KindCiphertext {
			if _, err := envelope.ReadHeader(bytes.NewReader(b)); err != nil {
				problems = append(problems, fmt.Sprintf("%s is not a ppml envelope: %v", rel, err))
			}
		}
		if m := e.canary.findAll(b); m != "" {
			problems = append(problems, fmt.Sprintf("%s contains the plaintext marker %q", rel, m))
		}
		rep.Files = append(rep.Files, ScannedFile{Path: rel, Kind: kind, Bytes: fi.Size()})
		return nil
	})
	if err != nil {
		problems = append(problems, "scan: "+err.Error())
	}
	counts := map[string]int{}
	for _, f := range rep.Files {
		counts[f.Kind]++
	}
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	st.detail("%s: %d files — %s", e.rel(e.dir), len(rep.Files), strings.Join(kinds, ", "))
	st.detail("none of %d marker strings (the canary, every patient name and id, the CSV headers, rows of the training data) is readable in any of them", rep.Markers)

	// Shared temporary directories: anything new that holds the canary is
	// plaintext the run left behind (the launcher's private directories
	// are gone; inputs and outputs lived in memfds, never on a file system).
	rep.Leftovers = e.leftovers()
	for _, l := range rep.Leftovers {
		problems = append(problems, "left behind with plaintext: "+l)
	}
	st.detail("no new entry in %s holds the canary", strings.Join(sharedTempDirs(), " or "))

	if e.cfg.KeepDir == "" {
		if err := os.RemoveAll(e.dir); err != nil {
			problems = append(problems, "remove the working directory: "+err.Error())
		} else if _, err := os.Stat(e.dir); !errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, "the working directory still exists")
		} else {
			rep.Removed = true
			st.detail("removed %s", e.dir)
		}
	} else {
		st.detail("kept %s for inspection (--keep); remove it when done", e.dir)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func sharedTempDirs() []string {
	dirs := []string{os.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && os.TempDir() != "/dev/shm" {
		dirs = append(dirs, "/dev/shm")
	}
	return dirs
}

func sharedTempEntries() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, d := range sharedTempDirs() {
		out[d] = map[string]bool{}
		ents, _ := os.ReadDir(d)
		for _, en := range ents {
			out[d][en.Name()] = true
		}
	}
	return out
}

// scanLimit bounds how much of a shared temporary directory is read.
const scanLimit = 64 << 20

// leftovers scans entries of the shared temporary directories that appeared
// during the demo (other than the working directory) for the canary.
func (e *env) leftovers() []string {
	var found []string
	budget := int64(scanLimit)
	for _, d := range sharedTempDirs() {
		ents, _ := os.ReadDir(d)
		for _, en := range ents {
			p := filepath.Join(d, en.Name())
			if e.before[d][en.Name()] || p == e.dir {
				continue
			}
			filepath.WalkDir(p, func(q string, de fs.DirEntry, err error) error {
				if err != nil || !de.Type().IsRegular() || budget <= 0 {
					return nil
				}
				f, err := os.Open(q)
				if err != nil {
					return nil
				}
				defer f.Close()
				b, _ := io.ReadAll(io.LimitReader(f, budget))
				budget -= int64(len(b))
				if m := e.canary.find(b); m != "" {
					found = append(found, fmt.Sprintf("%s (holds %q)", q, m))
				}
				return nil
			})
		}
	}
	return found
}
