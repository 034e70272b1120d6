package sqlengine

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/engine/sql/sqldb"
	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/launcher"
)

// Ctrl-C in an interactive session clears the statement being typed and
// the session goes on; the end of input ends it.
func TestInteractInterruptClearsStatement(t *testing.T) {
	ctx := context.Background()
	e, err := sqldb.Open(ctx, sqldb.Config{MemoryLimit: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pr, pw := io.Pipe()
	var out bytes.Buffer
	var errb lockedBuffer
	intr := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- interact(ctx, e, &launcher.Job{Stdin: pr, Stdout: &out, Stderr: &errb},
			sqlspec.PrintOptions{Print: sqlspec.PrintCSV, Prompt: "ppml sql> ", Interrupt: intr})
	}()
	io.WriteString(pw, "SELECT 'half typed' AS x\n")
	// The continuation prompt says the line was read into the statement.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errb.String(), "... "); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no continuation prompt: %s", errb.String())
		}
	}
	intr <- struct{}{}
	io.WriteString(pw, "SELECT 42 AS answer;\n")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.String() != "answer\n42\n" {
		t.Fatalf("output %q (stderr %s)", out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "0 tables") || !strings.Contains(errb.String(), "Ctrl-D to quit") {
		t.Fatalf("no banner: %s", errb.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
