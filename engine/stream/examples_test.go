package stream_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/ppml/ppml/engine/stream"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/stream/record"
)

const examplesDir = "../../examples/stream"

// example runs an example as its README does: keys, the stream key
// encrypted under the owner key, the data sealed into records, ppml run;
// it returns the decrypted outputs.
type example struct {
	dir, data, stream string
	partitions, lines int
	start             time.Time
	marker            string
}

var examples = []example{
	{"wordcount", "cc0-1.0.txt", "text", 1, 100, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "Statement of Purpose"},
	{"earthquakes", "earthquakes.jsonl", "quakes", 2, 20, time.Time{}, "Castaic"},
}

func (ex example) run(t *testing.T) map[string][]byte {
	src := filepath.Join(examplesDir, ex.dir)
	dir := t.TempDir()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	envelopetest.CopyFile(t, filepath.Join(src, "job.yaml"), filepath.Join(dir, "job.yaml"))
	owner, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keyfile.Generate(filepath.Join(dir, "stream.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	skb, err := os.ReadFile(filepath.Join(dir, "stream.key"))
	if err != nil {
		t.Fatal(err)
	}
	envelopetest.Encrypt(t, filepath.Join(dir, "stream.key.ppml"), owner.LocalKey, skb, envelope.TypeBytes)
	os.Remove(filepath.Join(dir, "stream.key"))
	plain, err := os.ReadFile(filepath.Join(src, ex.data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(plain, []byte(ex.marker)) {
		t.Fatalf("marker %q not in %s", ex.marker, ex.data)
	}
	w, err := record.NewWriter(ex.stream, sk.LocalKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs bytes.Buffer
	fw := record.NewFileWriter(&recs)
	if _, err := record.WriteLines(fw, w, bytes.NewReader(plain), record.LineOptions{Partitions: ex.partitions, PerRecord: ex.lines, Start: ex.start}); err != nil {
		t.Fatal(err)
	}
	fw.Flush()
	name := strings.TrimSuffix(ex.data, filepath.Ext(ex.data))
	if ex.dir == "wordcount" {
		name = "text"
	}
	if err := os.WriteFile(filepath.Join(dir, name+".records"), recs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := launcher.Load(filepath.Join(dir, "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := launcher.Run(context.Background(), launcher.Config{Manifest: m, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range res.Outputs {
		out[strings.TrimSuffix(filepath.Base(p), ".jsonl.ppml")] = envelopetest.Decrypt(t, p, owner.LocalKey)
	}
	for _, d := range []string{dir, tmp} {
		envelopetest.AssertNoMarker(t, d, []byte(ex.marker))
	}
	want, err := os.ReadFile(filepath.Join(src, "results.expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out["results"], want) {
		t.Errorf("results differ from results.expected.jsonl:\n%s", out["results"])
	}
	if len(out["dead_letters"]) != 0 {
		t.Errorf("dead letters: %s", out["dead_letters"])
	}
	return out
}

// TestWordCountExample runs the example and checks its counts against the
// sql engine's WordCount of the same text.
func TestWordCountExample(t *testing.T) {
	out := examples[0].run(t)
	f, err := os.Open("../../examples/sql/wordcount/wordcount.expected.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, r := range rows[1:] {
		want[r[0]] = r[1]
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out["results"])), "\n") {
		var r struct {
			Word  string
			Count json.Number
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		got[r.Word] = r.Count.String()
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d words, the sql WordCount has %d", len(got), len(want))
	}
}

// TestEarthquakesExample runs the example and checks every window against
// a plain computation over the events.
func TestEarthquakesExample(t *testing.T) {
	out := examples[1].run(t)
	if len(out["late"]) != 0 {
		t.Errorf("late records: %s", out["late"])
	}
	data, err := os.ReadFile(filepath.Join(examplesDir, "earthquakes", "earthquakes.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	type agg struct {
		n        int
		max, sum float64
		types    map[string]bool
	}
	wins := map[string]*agg{}
	const six = 6 * 3600 * 1000
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Time         int64
			Mag          float64
			MagType, Net string
			Type         string
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Type != "earthquake" {
			continue
		}
		start := e.Time - e.Time%six
		k := fmt.Sprintf("%d %s", start, e.Net)
		a := wins[k]
		if a == nil {
			a = &agg{max: math.Inf(-1), types: map[string]bool{}}
			wins[k] = a
		}
		a.n++
		a.sum += e.Mag
		a.max = math.Max(a.max, e.Mag)
		a.types[e.MagType] = true
	}
	var want []string
	for k, a := range wins {
		var start int64
		var net string
		fmt.Sscanf(k, "%d %s", &start, &net)
		want = append(want, fmt.Sprintf("%s %s %d %g %.6f %d", time.UnixMilli(start).UTC().Format(time.RFC3339), net, a.n, a.max, a.sum/float64(a.n), len(a.types)))
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out["results"])), "\n") {
		var r struct {
			WindowStart    string  `json:"window_start"`
			Net            string  `json:"net"`
			Quakes         int     `json:"quakes"`
			MaxMag         float64 `json:"max_mag"`
			MeanMag        float64 `json:"mean_mag"`
			MagnitudeTypes int     `json:"magnitude_types"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %d %g %.6f %d", r.WindowStart, r.Net, r.Quakes, r.MaxMag, r.MeanMag, r.MagnitudeTypes))
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("windows differ from a plain computation:\n got %d windows\nwant %d", len(got), len(want))
	}
}
