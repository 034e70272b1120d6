package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/ppml/ppml/job"
)

// WriteJSON prints v as one indented JSON object followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// IsTerminal reports whether f is an interactive terminal; progress output is
// shown only then.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// EnvOr is v, or the environment variable env when v is empty.
func EnvOr(v, env string) string {
	if v != "" {
		return v
	}
	return os.Getenv(env)
}

// JobError lists a manifest's problems one per line.
func JobError(manifest string, err error) error {
	var je *job.Error
	if !errors.As(err, &je) {
		return err
	}
	msg := fmt.Sprintf("invalid job manifest %s:", manifest)
	for _, p := range je.Problems {
		msg += "\n  " + p.Error()
	}
	return errors.New(msg)
}
