package tpch

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/internal/shareddata"
)

func TestParseAnswer(t *testing.T) {
	a, err := ParseAnswer(strings.NewReader("avg_yearly\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Rows) != 1 || a.Rows[0][0] != "" {
		t.Fatalf("NULL row: %+v", a)
	}
	a, err = ParseAnswer(strings.NewReader("a|b\nx |1.50\n"))
	if err != nil || a.Rows[0][0] != "x " {
		t.Fatalf("text is not verbatim: %+v %v", a, err)
	}
	for name, bad := range map[string]string{
		"empty":        "",
		"no newline":   "a|b\n1|2",
		"cr":           "a|b\r\n1|2\r\n",
		"field count":  "a|b\n1\n",
		"empty header": "a||b\n1|2|3\n",
		"blank header": "\n",
	} {
		if _, err := ParseAnswer(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseAllPublishedAnswers(t *testing.T) {
	dir := shareddata.Require(t, "tpch", "answers")
	files, err := filepath.Glob(filepath.Join(dir, "*", "q*.csv"))
	if err != nil || len(files) != 66 {
		t.Fatalf("want 66 answer files, got %d (%v)", len(files), err)
	}
	for _, p := range files {
		if _, err := ReadAnswerFile(p); err != nil {
			t.Error(err)
		}
	}
	if _, err := ReadAnswerFile(filepath.Join(dir, "missing.csv")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestCompare(t *testing.T) {
	want := &Answer{Columns: []string{"k", "sum_qty", "avg", "name", "n"}, Rows: [][]string{{"1", "380456", "0.05008133906964238", "x ", ""}}}
	got := &Result{
		Columns: want.Columns,
		Kinds:   []Kind{KindExact, KindExact, KindApprox, KindText, KindExact},
		Rows:    [][]Cell{{{Text: "1"}, {Text: "380456.00"}, {Text: "0.050081339069642385"}, {Text: "x "}, {Null: true}}},
	}
	if err := Compare(want, got, CompareOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(r []Cell){
		"decimal off by a cent": func(r []Cell) { r[1].Text = "380456.01" },
		"double off":            func(r []Cell) { r[2].Text = "0.0501" },
		"text trimmed":          func(r []Cell) { r[3].Text = "x" },
		"NULL vs value":         func(r []Cell) { r[4] = Cell{Text: "0"} },
		"value vs NULL":         func(r []Cell) { r[0] = Cell{Null: true} },
	} {
		row := append([]Cell(nil), got.Rows[0]...)
		mutate(row)
		bad := *got
		bad.Rows = [][]Cell{row}
		if err := Compare(want, &bad, CompareOptions{}); err == nil {
			t.Errorf("%s: no difference reported", name)
		}
	}
	short := *got
	short.Rows = nil
	if err := Compare(want, &short, CompareOptions{}); err == nil {
		t.Error("missing row not reported")
	}
}

func TestQueriesAndDDL(t *testing.T) {
	for n := 1; n <= NumQueries; n++ {
		q, err := Query(n)
		if err != nil || !strings.Contains(strings.ToUpper(q), "SELECT") {
			t.Errorf("query %d: %v", n, err)
		}
	}
	for _, n := range []int{0, 23} {
		if _, err := Query(n); err == nil {
			t.Errorf("query %d accepted", n)
		}
	}
	ddl := DDL()
	for _, s := range []string{"CREATE TABLE lineitem (", "l_quantity DECIMAL(15,2) NOT NULL", "n_nationkey INTEGER NOT NULL", "o_orderdate DATE NOT NULL"} {
		if !strings.Contains(ddl, s) {
			t.Errorf("DDL lacks %q", s)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add("l_returnflag|sum_qty\nA|380456\nN|8971\n")
	f.Add("avg_yearly\n\n")
	f.Add("a|b\n|\n")
	f.Fuzz(func(t *testing.T, text string) {
		a, err := ParseAnswer(strings.NewReader(text))
		if err != nil {
			return
		}
		for i, r := range a.Rows {
			if len(r) != len(a.Columns) {
				t.Fatalf("row %d has %d fields, header %d", i, len(r), len(a.Columns))
			}
		}
		// Comparing an answer with itself as text always matches.
		res := &Result{Columns: a.Columns, Kinds: make([]Kind, len(a.Columns))}
		for _, r := range a.Rows {
			row := make([]Cell, len(r))
			for i, v := range r {
				row[i] = Cell{Text: v}
			}
			res.Rows = append(res.Rows, row)
		}
		if err := Compare(a, res, CompareOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
