package demo

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ppml/ppml/examples/data"
)

func TestAggregateDataset(t *testing.T) {
	a, err := Aggregate(bytes.NewReader(data.PatientsCSV), DefaultMinGroup)
	if err != nil {
		t.Fatal(err)
	}
	counts := countByDiagnosis(t)
	total := 0
	for _, n := range counts {
		total += n
	}
	if a.Rows != total || len(a.Groups) != len(counts) || a.Suppressed != 0 {
		t.Fatalf("rows %d groups %d suppressed %d; dataset %d rows %d diagnoses", a.Rows, len(a.Groups), a.Suppressed, total, len(counts))
	}
	for i, g := range a.Groups {
		if g.Visits != counts[g.Diagnosis] {
			t.Errorf("%s: %d visits, dataset %d", g.Diagnosis, g.Visits, counts[g.Diagnosis])
		}
		if i > 0 && a.Groups[i-1].Visits < g.Visits {
			t.Error("groups are not sorted by visits")
		}
		if g.MeanAge < 0 || g.MeanAge > 130 || g.MeanCost <= 0 {
			t.Errorf("%s: implausible means %+v", g.Diagnosis, g)
		}
	}
}

func TestAggregateSuppresses(t *testing.T) {
	in := "patient_id,birth_year,visit_date,diagnosis,cost_eur\n" +
		"a,1950,2026-01-01,flu,10\nb,1960,2026-01-02,flu,20\na,1950,2026-02-01,flu,30\nc,1970,2026-01-01,rare,5\n"
	a, err := Aggregate(strings.NewReader(in), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Groups) != 1 || a.Suppressed != 1 {
		t.Fatalf("%+v", a)
	}
	g := a.Groups[0]
	if g.Diagnosis != "flu" || g.Visits != 3 || g.Patients != 2 || g.MeanCost != 20 || g.MeanAge != (76+66+76)/3.0 {
		t.Fatalf("%+v", g)
	}
	var buf bytes.Buffer
	if err := a.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	if want := ResultHeader + "\nflu,3,2,72.7,20.00\n"; buf.String() != want {
		t.Fatalf("CSV %q, want %q", buf.String(), want)
	}
	if a, _ := Aggregate(strings.NewReader(in), 1); len(a.Groups) != 2 {
		t.Fatal("min group 1 does not report the single visit")
	}
}

func TestAggregateBadInput(t *testing.T) {
	head := "patient_id,birth_year,visit_date,diagnosis,cost_eur\n"
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"patient_id,birth_year\n", `no column "visit_date"`},
		{head + "a,19x0,2026-01-01,flu,1\n", "line 2, column birth_year"},
		{head + "a,1950,2026-13-01,flu,1\n", "line 2, column visit_date"},
		{head + "a,1950,1940-01-01,flu,1\n", "visit before the birth year"},
		{head + "a,1950,2026-01-01,flu,1\na,1950,2026-01-01,flu,NaN\n", "line 3, column cost_eur"},
		{head + "a,1950,2026-01-01,flu,-1\n", "column cost_eur"},
		{head + "a,1950,2026-01-01,,1\n", "column diagnosis"},
		{head + ",1950,2026-01-01,flu,1\n", "column patient_id"},
		{head + "a,1950,2026-01-01,flu\n", "wrong number of fields"},
		{head + "a,1950,\"2026-01-01,flu,1\n", "patients CSV"},
	} {
		_, err := Aggregate(strings.NewReader(c.in), 5)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := Aggregate(strings.NewReader(head), 0); err == nil {
		t.Error("min group 0 accepted")
	}
}

func TestAggregateCommandOutsideRun(t *testing.T) {
	t.Setenv("PPML_INPUT_PATIENTS", "")
	if err := AggregateCommand(nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "inside `ppml run`") {
		t.Fatalf("%v", err)
	}
	if err := AggregateCommand([]string{"--min-group=x"}, &bytes.Buffer{}); err == nil {
		t.Fatal("bad flag accepted")
	}
}

// FuzzAggregate: any input gives a result or an error, never a panic, and
// a result only reports groups of at least the minimum size.
func FuzzAggregate(f *testing.F) {
	f.Add(data.PatientsCSV, 5)
	f.Add([]byte("patient_id,birth_year,visit_date,diagnosis,cost_eur\na,1950,2026-01-01,flu,1\n"), 1)
	f.Add([]byte("diagnosis,cost_eur,visit_date,birth_year,patient_id\n\"x\ny\",1e3,2026-02-28,1999,\"p\"\"q\"\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, minGroup int) {
		a, err := Aggregate(bytes.NewReader(in), minGroup)
		if err != nil {
			return
		}
		n := 0
		for _, g := range a.Groups {
			if g.Visits < a.MinGroup || g.Patients > g.Visits || g.Patients < 1 {
				t.Fatalf("bad group %+v (min %d)", g, a.MinGroup)
			}
			n += g.Visits
		}
		if n > a.Rows {
			t.Fatalf("groups hold %d visits, %d rows read", n, a.Rows)
		}
		var buf bytes.Buffer
		if err := a.WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
	})
}
