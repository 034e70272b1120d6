package sqldb

import (
	"context"
	"strings"
	"testing"
)

func TestPrinters(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, Config{Inputs: []Input{{Name: "people", Format: JSON, Files: []File{memInput(t, "people.json", people)}}}})
	res, err := e.Query(ctx, "SELECT name, age, age / 4 AS quarter, DATE '2024-02-29' AS d, 'a,\"b\"' AS s FROM people", 0)
	if err != nil {
		t.Fatal(err)
	}
	var tbl strings.Builder
	if err := PrintTable(&tbl, res); err != nil {
		t.Fatal(err)
	}
	wantTable := `+---------+--------+---------+------------+---------+
| name    | age    | quarter | d          | s       |
| varchar | bigint | double  | date       | varchar |
+---------+--------+---------+------------+---------+
| Michael |   NULL |    NULL | 2024-02-29 | a,"b"   |
| Andy    |     30 |     7.5 | 2024-02-29 | a,"b"   |
| Justin  |     19 |    4.75 | 2024-02-29 | a,"b"   |
+---------+--------+---------+------------+---------+
3 rows
`
	if tbl.String() != wantTable {
		t.Errorf("table:\n%s\nwant:\n%s", tbl.String(), wantTable)
	}
	var c strings.Builder
	if err := PrintCSV(&c, res); err != nil {
		t.Fatal(err)
	}
	if want := "name,age,quarter,d,s\nMichael,,,2024-02-29,\"a,\"\"b\"\"\"\nAndy,30,7.5,2024-02-29,\"a,\"\"b\"\"\"\nJustin,19,4.75,2024-02-29,\"a,\"\"b\"\"\"\n"; c.String() != want {
		t.Errorf("csv %q, want %q", c.String(), want)
	}
	var j strings.Builder
	if err := PrintJSON(&j, res); err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"Michael","age":null,"quarter":null,"d":"2024-02-29","s":"a,\"b\""}` + "\n"; !strings.HasPrefix(j.String(), want) {
		t.Errorf("json %q", j.String())
	}
	// The CSV printer agrees with the engine's own CSV writer.
	if got := writeString(t, e, "SELECT name, age FROM people", CSV); !strings.HasPrefix(got, "name,age\nMichael,\n") {
		t.Errorf("csv writer %q", got)
	}

	res, err = e.Query(ctx, "SELECT i FROM range(10) t(i)", 3)
	if err != nil || len(res.Rows) != 3 || !res.Truncated {
		t.Fatalf("limited query: %v, %+v", err, res)
	}
	tbl.Reset()
	PrintTable(&tbl, res)
	if !strings.HasSuffix(tbl.String(), "3 rows shown (more not printed)\n") {
		t.Errorf("truncated table footer: %q", tbl.String())
	}
	if got := FormatValue(strings.Repeat("x", 100), "VARCHAR"); len(got) != 100 {
		t.Errorf("FormatValue shortened a value")
	}
	if got := cellText(strings.Repeat("x", 100)); len([]rune(got)) != maxCellWidth {
		t.Errorf("cell not shortened: %d", len([]rune(got)))
	}
}
