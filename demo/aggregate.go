package demo

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ppml/ppml/job"
)

// The demo job's program is ppml itself, re-invoked as the hidden command
// `ppml demo aggregate`: the demo then needs nothing but the ppml binary
// (no Python on a fresh machine), and the program the job runs is the
// binary the policy measured.

// AggregateCommand is `ppml demo aggregate [--min-group=N]`, run by the
// launcher inside the TEE: it reads the patients CSV from PPML_INPUT_PATIENTS
// and writes visits per diagnosis to PPML_OUTPUT_SUMMARY. It prints counts
// only (its standard output leaves the TEE in clear).
func AggregateCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ppml demo aggregate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	minGroup := fs.Int("min-group", DefaultMinGroup, "suppress diagnoses with fewer visits than this")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("demo aggregate: %w", err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("demo aggregate: unexpected argument %q", fs.Arg(0))
	}
	in, out := os.Getenv(job.InputEnv(InputName)), os.Getenv(job.OutputEnv(OutputName))
	if in == "" || out == "" {
		return fmt.Errorf("demo aggregate: %s and %s must be set (this command runs inside `ppml run`)", job.InputEnv(InputName), job.OutputEnv(OutputName))
	}
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("demo aggregate: input: %w", err)
	}
	defer f.Close()
	a, err := Aggregate(f, *minGroup)
	if err != nil {
		return fmt.Errorf("demo aggregate: %w", err)
	}
	w, err := os.OpenFile(out, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("demo aggregate: output: %w", err)
	}
	if err := a.WriteCSV(w); err != nil {
		w.Close()
		return fmt.Errorf("demo aggregate: output: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("demo aggregate: output: %w", err)
	}
	fmt.Fprintf(stdout, "aggregated %d visits: %d diagnoses reported, %d suppressed (fewer than %d visits)\n", a.Rows, len(a.Groups), a.Suppressed, a.MinGroup)
	return nil
}

// Names of the demo job's input and output.
const (
	InputName  = "patients"
	OutputName = "summary"
)

// DefaultMinGroup is the smallest group the demo job reports: smaller
// groups could single out a patient.
const DefaultMinGroup = 5

// Group is one reported diagnosis.
type Group struct {
	Diagnosis string  `json:"diagnosis"`
	Visits    int     `json:"visits"`
	Patients  int     `json:"patients"`
	MeanAge   float64 `json:"mean_age"` // age at the visit, in years (visit year - birth year)
	MeanCost  float64 `json:"mean_cost_eur"`
}

// Aggregation is the demo job's result.
type Aggregation struct {
	Rows       int     `json:"rows"`
	MinGroup   int     `json:"min_group"`
	Groups     []Group `json:"groups"`     // by visits, descending, then by name
	Suppressed int     `json:"suppressed"` // diagnoses with fewer than MinGroup visits
}

// ResultHeader is the first line of the result CSV.
const ResultHeader = "diagnosis,visits,patients,mean_age,mean_cost_eur"

// Limits on the input, so that a hostile file cannot exhaust memory through
// the group table.
const (
	maxDiagnosisLen = 256
	maxGroups       = 100000
)

// Aggregate reads the patients CSV (a header naming at least patient_id,
// birth_year, visit_date, diagnosis and cost_eur, in any order) and counts
// visits, distinct patients, mean age and mean cost per diagnosis. Errors
// name the line and column.
func Aggregate(r io.Reader, minGroup int) (*Aggregation, error) {
	if minGroup < 1 {
		return nil, fmt.Errorf("min-group %d: want at least 1", minGroup)
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("patients CSV is empty (want a header line)")
	}
	if err != nil {
		return nil, fmt.Errorf("patients CSV: %w", err)
	}
	cols := map[string]int{}
	for i, h := range head {
		cols[strings.TrimSpace(h)] = i
	}
	idx := map[string]int{}
	for _, want := range []string{"patient_id", "birth_year", "visit_date", "diagnosis", "cost_eur"} {
		i, ok := cols[want]
		if !ok {
			return nil, fmt.Errorf("patients CSV: header has no column %q", want)
		}
		idx[want] = i
	}
	type acc struct {
		visits   int
		patients map[string]bool
		ageSum   float64
		costSum  float64
	}
	groups := map[string]*acc{}
	a := &Aggregation{MinGroup: minGroup}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("patients CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		field := func(name string) string { return strings.TrimSpace(rec[idx[name]]) }
		bad := func(name, format string, args ...any) error {
			return fmt.Errorf("patients CSV line %d, column %s: %s", line, name, fmt.Sprintf(format, args...))
		}
		by, err := strconv.Atoi(field("birth_year"))
		if err != nil || by < 1800 || by > 3000 {
			return nil, bad("birth_year", "want a year between 1800 and 3000")
		}
		vd, err := time.Parse("2006-01-02", field("visit_date"))
		if err != nil {
			return nil, bad("visit_date", "want a date YYYY-MM-DD")
		}
		if vd.Year() < by {
			return nil, bad("visit_date", "visit before the birth year")
		}
		cost, err := strconv.ParseFloat(field("cost_eur"), 64)
		if err != nil || math.IsNaN(cost) || math.IsInf(cost, 0) || cost < 0 || cost > 1e12 {
			return nil, bad("cost_eur", "want an amount between 0 and 1e12")
		}
		d := field("diagnosis")
		if d == "" || len(d) > maxDiagnosisLen {
			return nil, bad("diagnosis", "want 1 to %d bytes", maxDiagnosisLen)
		}
		pid := field("patient_id")
		if pid == "" {
			return nil, bad("patient_id", "empty")
		}
		g := groups[d]
		if g == nil {
			if len(groups) >= maxGroups {
				return nil, bad("diagnosis", "more than %d distinct diagnoses", maxGroups)
			}
			g = &acc{patients: map[string]bool{}}
			groups[d] = g
		}
		g.visits++
		g.patients[pid] = true
		g.ageSum += float64(vd.Year() - by)
		g.costSum += cost
		a.Rows++
	}
	for d, g := range groups {
		if g.visits < minGroup {
			a.Suppressed++
			continue
		}
		a.Groups = append(a.Groups, Group{Diagnosis: d, Visits: g.visits, Patients: len(g.patients),
			MeanAge: g.ageSum / float64(g.visits), MeanCost: g.costSum / float64(g.visits)})
	}
	sort.Slice(a.Groups, func(i, j int) bool {
		gi, gj := a.Groups[i], a.Groups[j]
		if gi.Visits != gj.Visits {
			return gi.Visits > gj.Visits
		}
		return gi.Diagnosis < gj.Diagnosis
	})
	return a, nil
}

// WriteCSV writes the result: ResultHeader, then one line per group.
func (a *Aggregation) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(strings.Split(ResultHeader, ","))
	for _, g := range a.Groups {
		cw.Write([]string{g.Diagnosis, strconv.Itoa(g.Visits), strconv.Itoa(g.Patients),
			strconv.FormatFloat(g.MeanAge, 'f', 1, 64), strconv.FormatFloat(g.MeanCost, 'f', 2, 64)})
	}
	cw.Flush()
	return cw.Error()
}
