package sqldb

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the examples' expected outputs")

const examplesDir = "../../../examples/sql"

type example struct {
	dir     string
	inputs  []exampleInput
	threads int
	queries []string // X.sql, written to X.expected.csv
}

type exampleInput struct {
	table, file string
	format      Format
}

var examples = []example{
	{dir: "spark-basic", inputs: []exampleInput{{"people", "people.json", JSON}}, queries: []string{"show", "select", "filter", "groupby", "teenagers"}},
	{dir: "wordcount", inputs: []exampleInput{{"text", "cc0-1.0.txt", Text}}, queries: []string{"wordcount"}},
	{dir: "pi", threads: 2, queries: []string{"pi"}},
	{dir: "orca-data", inputs: []exampleInput{{"weather", "seattle-weather-hourly-normals.csv", CSV}}, queries: []string{"prepare"}},
}

// runExample runs all queries of ex as one plan, from memfd inputs, and
// returns each output.
func runExample(t *testing.T, ex example) map[string][]byte {
	t.Helper()
	dir := filepath.Join(examplesDir, ex.dir)
	var ins []Input
	for _, in := range ex.inputs {
		ins = append(ins, Input{Name: in.table, Format: in.format, Files: []File{memInputFile(t, filepath.Join(dir, in.file))}})
	}
	plan := &Plan{}
	for _, q := range ex.queries {
		text, err := os.ReadFile(filepath.Join(dir, q+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		plan.Outputs = append(plan.Outputs, Output{Name: q, Query: string(text), Format: CSV})
	}
	e := openEngine(t, Config{Inputs: ins, Threads: max(ex.threads, 1), OutputSlots: len(plan.Outputs)})
	outs := map[string]*bytes.Buffer{}
	err := e.Run(context.Background(), plan, func(name string) (io.Writer, error) {
		outs[name] = &bytes.Buffer{}
		return outs[name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res := map[string][]byte{}
	for k, v := range outs {
		res[k] = v.Bytes()
	}
	return res
}

func TestExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			got := runExample(t, ex)
			for _, q := range ex.queries {
				path := filepath.Join(examplesDir, ex.dir, q+".expected.csv")
				if *update {
					if err := os.WriteFile(path, got[q], 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got[q], want) {
					t.Errorf("%s/%s: output differs from %s\ngot:\n%s\nwant:\n%s", ex.dir, q, path, got[q], want)
				}
			}
		})
	}
}

// The expected files are checked against facts known without DuckDB, so a
// wrong engine cannot bless its own output with -update.
func TestExamplesIndependently(t *testing.T) {
	dir := examplesDir
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Spark's documented answers for people.json.
	spark := map[string]string{
		"show":      "name,age\nMichael,\nAndy,30\nJustin,19\n",
		"select":    "name,(age + 1)\nMichael,\nAndy,31\nJustin,20\n",
		"filter":    "name,age\nAndy,30\n",
		"groupby":   "age,count\n,1\n19,1\n30,1\n",
		"teenagers": "name\nJustin\n",
	}
	for q, want := range spark {
		if got := read("spark-basic/" + q + ".expected.csv"); got != want {
			t.Errorf("spark-basic %s = %q, want %q", q, got, want)
		}
	}

	// WordCount recomputed in Go.
	text := strings.ToLower(read("wordcount/cc0-1.0.txt"))
	counts := map[string]int{}
	for _, w := range regexp.MustCompile(`[^a-z0-9']+`).Split(text, -1) {
		if w != "" {
			counts[w]++
		}
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	var b strings.Builder
	b.WriteString("word,count\n")
	for _, w := range words {
		field := w
		if strings.ContainsAny(w, `",`) {
			field = strconv.Quote(w)
		}
		b.WriteString(field + "," + strconv.Itoa(counts[w]) + "\n")
	}
	if got := read("wordcount/wordcount.expected.csv"); got != b.String() {
		t.Errorf("wordcount differs from the Go count:\n%s", firstDiff(got, b.String()))
	}

	// Pi within the Monte Carlo error of a million darts.
	pi := read("pi/pi.expected.csv")
	m := regexp.MustCompile(`^result\nPi is roughly (3\.\d+)\n$`).FindStringSubmatch(pi)
	if m == nil {
		t.Fatalf("pi output %q", pi)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 3.13 || v > 3.15 {
		t.Errorf("pi = %v", v)
	}

	// Orca data: hours per (month, awake) recounted from the raw CSV.
	r := csv.NewReader(strings.NewReader(read("orca-data/seattle-weather-hourly-normals.csv")))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	hours := map[string]int{}
	for _, rec := range recs[1:] {
		if rec[1] == "" || rec[2] == "" || rec[3] == "" {
			continue
		}
		month, _ := strconv.Atoi(rec[0][5:7])
		hour, _ := strconv.Atoi(rec[0][11:13])
		awake := 0
		if hour >= 7 && hour <= 22 {
			awake = 1
		}
		hours[strconv.Itoa(month)+","+strconv.Itoa(awake)]++
	}
	out, err := csv.NewReader(strings.NewReader(read("orca-data/prepare.expected.csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(out)-1 != len(hours) {
		t.Errorf("orca-data: %d groups, want %d", len(out)-1, len(hours))
	}
	for _, rec := range out[1:] {
		if want := strconv.Itoa(hours[rec[0]+","+rec[1]]); rec[2] != want {
			t.Errorf("orca-data month %s awake %s: %s hours, want %s", rec[0], rec[1], rec[2], want)
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ": " + strconv.Quote(al[i]) + " vs " + strconv.Quote(bl[i])
		}
	}
	return "lengths differ"
}
