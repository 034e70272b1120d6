// Package command is the command-line plumbing every ppml binary shares
// (ppml, ppml-run, ppml-bench): exit codes, usage errors, the root command's
// error handling, JSON output, the key-service connection flags and key
// loading. Each binary's command tree lives in its own package
// (internal/cli, internal/runcli, internal/benchcli).
package command

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0
	ExitFailure = 1 // the operation ran and failed (bad input, failed check, I/O)
	ExitUsage   = 2 // the command line itself is wrong
)

// UsageError marks an error in how the command was invoked; it exits with ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// SilentExit carries an exit code for a failure that was already reported
// (for example as a JSON object on stdout).
type SilentExit struct{ Code int }

func (e *SilentExit) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExactArgs is cobra.ExactArgs with a UsageError.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &UsageError{Err: err}
		}
		return nil
	}
}

// Prepare makes a finished command tree follow the CLI rules (docs/cli.md):
// no usage dump, no printing by cobra (ExitCode prints), every flag error a
// usage error, an unknown subcommand of a group a usage error with
// suggestions, and numeric flags checked against their annotations
// (AllowNegative, Positive). It returns root.
func Prepare(root *cobra.Command) *cobra.Command {
	root.SilenceUsage, root.SilenceErrors = true, true
	if root.PersistentPreRunE == nil && root.PersistentPreRun == nil {
		root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return checkNumericFlags(cmd) }
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		prepareCommand(c)
		for _, sc := range c.Commands() {
			walk(sc)
		}
	}
	walk(root)
	return root
}

// Main runs root (Prepare'd) on args and returns the process exit code;
// errors are printed to stderr prefixed with the root command's name.
func Main(root *cobra.Command, args []string, stderr io.Writer) int {
	Prepare(root)
	root.SetArgs(args)
	return ExitCode(root.Execute(), root.Name(), stderr)
}

// ExitCode maps a command's error to the exit status, printing it as
// "prog: error" through TermSafe: errors quote what a key service, an audit
// log or a runner sent, and must not act on the terminal (the CLI's own
// messages may span lines and indent, so newline and tab are kept).
func ExitCode(err error, prog string, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var se *SilentExit
	if errors.As(err, &se) {
		return se.Code
	}
	fmt.Fprintf(stderr, "%s: %s\n", prog, TermSafe(err.Error(), "\n\t"))
	var ue *UsageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsage recognises the argument-count and unknown-command errors cobra
// returns as plain errors, so they map to ExitUsage.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "received ", "unknown flag", "unknown shorthand flag", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
