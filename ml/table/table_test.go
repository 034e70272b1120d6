package table

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/ppml/ppml/ml/dataset"
)

func TestReadCSVBoston(t *testing.T) {
	f, err := os.Open(dataset.Require(t, dataset.Boston))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ReadCSV(f, Selection{Label: "medv"})
	if err != nil {
		t.Fatal(err)
	}
	if d.X.NumRows() != 506 || len(d.X.Names) != 13 || len(d.Y) != 506 {
		t.Fatalf("shape %d×%d, %d labels; want 506×13, 506", d.X.NumRows(), len(d.X.Names), len(d.Y))
	}
	// First data row of the file: 0.00632,18.00,...,4.98,24.00.
	crim, _ := d.X.Column("crim")
	lstat, _ := d.X.Column("lstat")
	if crim[0] != 0.00632 || lstat[0] != 4.98 || d.Y[0] != 24 {
		t.Fatalf("row 1: crim %v lstat %v medv %v", crim[0], lstat[0], d.Y[0])
	}
}

func TestReadCSVSelectionAndMissing(t *testing.T) {
	in := "id,a,b,y\nx1,1,2,3\nx2,,NaN,4\nx3,nan, 5 ,6\n"
	d, err := ReadCSV(strings.NewReader(in), Selection{Features: []string{"b", "a"}, Label: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.X.Names, ",") != "b,a" {
		t.Fatalf("names %v", d.X.Names)
	}
	a, _ := d.X.Column("a")
	b, _ := d.X.Column("b")
	if a[0] != 1 || !math.IsNaN(a[1]) || !math.IsNaN(a[2]) || b[0] != 2 || !math.IsNaN(b[1]) || b[2] != 5 {
		t.Fatalf("a %v b %v", a, b)
	}
	if err := d.X.CheckComplete(); err == nil || !strings.Contains(err.Error(), `column "b", row 2`) {
		t.Fatalf("CheckComplete: %v", err)
	}
	x32 := d.X.RowMajor32()
	if x32[0] != 2 || x32[1] != 1 || !math.IsNaN(float64(x32[2])) || x32[4] != 5 || !math.IsNaN(float64(x32[5])) {
		t.Fatalf("row-major %v", x32)
	}
	if _, err := d.X.Select("a", "zz", "qq"); err == nil || !strings.Contains(err.Error(), `"zz", "qq"`) {
		t.Fatalf("Select missing: %v", err)
	}
}

func TestReadCSVErrors(t *testing.T) {
	cases := []struct {
		name, in string
		sel      Selection
		want     string
	}{
		{"label missing from header", "a,b\n1,2\n", Selection{Label: "y"}, `label column "y" is not in the header`},
		{"feature missing", "a,b\n1,2\n", Selection{Features: []string{"a", "c"}, Label: "b"}, `feature column(s) "c" not in the header`},
		{"non-numeric feature", "a,b\n1,2\nred,3\n", Selection{Label: "b"}, `column "a", row 2: not a number`},
		{"non-numeric label", "a,b\n1,2\n3,yes\n", Selection{Label: "b"}, `label column "b", row 2: not a number`},
		{"missing label", "a,b\n1,2\n3,\n", Selection{Label: "b"}, `label column "b", row 2: label is missing`},
		{"infinite", "a,b\n1,2\nInf,3\n", Selection{Label: "b"}, `column "a", row 2: infinite value`},
		{"ragged row", "a,b\n1,2\n3\n", Selection{Label: "b"}, "csv row 2"},
		{"duplicate header", "a,a\n1,2\n", Selection{}, `column "a" appears twice`},
		{"empty", "", Selection{}, "empty input"},
		{"header only", "a,b\n", Selection{Label: "b"}, "no data rows"},
		{"feature is label", "a,b\n1,2\n", Selection{Features: []string{"b"}, Label: "b"}, "both a feature and the label"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(c.in), c.sel)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	// Cell contents never appear in errors (they may be protected plaintext).
	_, err := ReadCSV(strings.NewReader("a,b\nsecret-value,1\n"), Selection{Label: "b"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v", err)
	}
}

func TestShowPredictions(t *testing.T) {
	x, _ := New([]string{"a", "b"}, [][]float64{{0.00632, 1}, {18, 2}})
	var b strings.Builder
	if err := ShowPredictions(&b, x, []float64{24, 21.6}, []float64{25.5, 21.25}, 1); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) != 7 || lines[1] != "|      features|label|prediction|" || lines[3] != "|[0.00632,18.0]| 24.0|      25.5|" ||
		lines[5] != "only showing top 1 rows" {
		t.Fatalf("table:\n%s", b.String())
	}
}

// A table split into files reads back as one: rows in order, the same
// columns required of every part.
func TestConcat(t *testing.T) {
	read := func(s string) *Dataset {
		d, err := ReadCSV(strings.NewReader(s), Selection{Label: "y"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := Concat([]*Dataset{read("a,y\n1,0\n2,1\n"), read("a,y\n3,1\n")})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := d.X.Column("a"); len(a) != 3 || a[2] != 3 || len(d.Y) != 3 || d.Y[1] != 1 {
		t.Fatalf("%v %v", d.X.Columns, d.Y)
	}
	if _, err := Concat([]*Dataset{read("a,y\n1,0\n"), read("b,y\n1,0\n")}); err == nil || !strings.Contains(err.Error(), `part 2 has columns "b"`) {
		t.Errorf("parts with other columns: %v", err)
	}
	if _, err := Concat(nil); err == nil {
		t.Error("no parts")
	}
}
