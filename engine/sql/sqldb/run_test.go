package sqldb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// A plan whose second output fails writes neither output.
func TestRunAllOrNothing(t *testing.T) {
	e := openEngine(t, Config{OutputSlots: 2, Inputs: []Input{{Name: "people", Format: JSON, Files: []File{memInput(t, "people.json", people)}}}})
	opened := map[string]bool{}
	open := func(name string) (io.Writer, error) {
		opened[name] = true
		return &bytes.Buffer{}, nil
	}
	plan := &Plan{Outputs: []Output{
		{Name: "good", Query: "SELECT name FROM people", Format: CSV},
		{Name: "bad", Query: "SELECT nme FROM people", Format: JSON},
	}}
	err := e.Run(context.Background(), plan, open)
	if err == nil || !strings.Contains(err.Error(), "output bad: Binder Error") {
		t.Fatalf("error %v", err)
	}
	if len(opened) != 0 {
		t.Errorf("outputs opened despite the failure: %v", opened)
	}

	plan.Outputs[1].Query = "CREATE TEMP VIEW adults AS SELECT * FROM people WHERE age > 21; SELECT name FROM adults"
	plan.Setup = "CREATE TEMP TABLE n AS SELECT count(*) AS c FROM people"
	plan.Outputs[0].Query = "SELECT c FROM n"
	got := map[string]*bytes.Buffer{}
	err = e.Run(context.Background(), plan, func(name string) (io.Writer, error) {
		got[name] = &bytes.Buffer{}
		return got[name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["good"].String() != "c\n3\n" || got["bad"].String() != "{\"name\":\"Andy\"}\n" {
		t.Errorf("outputs %q, %q", got["good"], got["bad"])
	}
}

func TestPlanValidate(t *testing.T) {
	bad := []struct {
		p    Plan
		want string
	}{
		{Plan{}, "no outputs"},
		{Plan{Outputs: []Output{{Name: "a", Query: " -- nothing", Format: CSV}}}, "query is empty"},
		{Plan{Outputs: []Output{{Name: "a", Query: "SELECT 1", Format: "xml"}}}, `format "xml"`},
		{Plan{Outputs: []Output{{Name: "a", Query: "SELECT 1", Format: Text}}}, `format "text"`},
		{Plan{Outputs: []Output{{Name: "a", Query: "SELECT 1", Format: CSV}, {Name: "a", Query: "SELECT 2", Format: CSV}}}, "named twice"},
		{Plan{Setup: "SELECT 'x", Outputs: []Output{{Name: "a", Query: "SELECT 1", Format: CSV}}}, "setup: unterminated string"},
		{Plan{Outputs: []Output{{Query: "SELECT 1", Format: CSV}}}, "no name"},
	}
	for _, c := range bad {
		if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}

func TestCancel(t *testing.T) {
	e := openEngine(t, Config{Threads: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	err := e.Write(ctx, "SELECT count(*) FROM range(100000000000) a(i) WHERE i % 7 = 3", CSV, &out)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "Interrupt") {
		t.Fatalf("error %v, want cancellation", err)
	}
	if out.Len() != 0 {
		t.Errorf("output after cancellation")
	}
	if got := writeString(t, e, "SELECT 1 AS one", CSV); got != "one\n1\n" {
		t.Errorf("after cancel: %q", got)
	}
}
