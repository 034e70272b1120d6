// Package cli holds the ppml command tree. Each command group lives in its own
// file and adds itself to the root with register, so groups stay independent.
package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"

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

// usageErrorf builds a UsageError.
func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// silentExit carries an exit code for a failure that was already reported
// (for example as a JSON object on stdout).
type silentExit struct{ code int }

func (e *silentExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }

var groups []func() *cobra.Command

// register adds a command constructor to the root; called from init in each group file.
func register(newCmd func() *cobra.Command) { groups = append(groups, newCmd) }

// NewRoot builds the complete command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ppml",
		Short: "Privacy-preserving data and AI: encrypted data, attested TEEs, audited key release",
		Long: `ppml keeps datasets and models encrypted everywhere and decrypts them only inside a
Trusted Execution Environment that the data owner approved, after remote attestation.`,
		Example: `  ppml key generate -o owner.key
  ppml encrypt --key owner.key -o people.csv.ppml people.csv
  ppml inspect people.csv.ppml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	cmds := make([]*cobra.Command, 0, len(groups))
	for _, g := range groups {
		cmds = append(cmds, g())
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	// Every sub-command reports flag errors as usage errors too.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
		for _, sc := range c.Commands() {
			walk(sc)
		}
	}
	walk(root)
	return root
}

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	err := root.Execute()
	return exitCode(err)
}

func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var se *silentExit
	if errors.As(err, &se) {
		return se.code
	}
	fmt.Fprintln(os.Stderr, "ppml:", err)
	var ue *UsageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}
