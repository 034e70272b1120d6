package cli

import (
	"encoding/json"
	"io"
	"os"

	"golang.org/x/term"
)

// writeJSON prints v as one indented JSON object followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether f is an interactive terminal; progress output is
// shown only then.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
