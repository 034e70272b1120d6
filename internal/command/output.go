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

// CheckOutput applies the overwrite rule (docs/cli.md) to an output path
// before any work is done: an existing file is replaced only with --force
// (the write itself is atomic, package atomicfile), and a device, FIFO or
// socket never is. "-" (standard output) is always allowed.
func CheckOutput(path string, force bool) error {
	if path == "-" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil // missing (or unreadable: the write reports it)
	case fi.IsDir():
		return fmt.Errorf("output %s is a directory", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("output %s is not a regular file: outputs replace a regular file atomically; give -o - for standard output", path)
	case !force:
		return fmt.Errorf("output %s already exists; give --force to replace it", path)
	}
	return nil
}
