// Package cli holds the ppml command tree: the data owner's, data
// scientist's and operator's commands and the key service. Each command
// group lives in its own file and adds itself to the root with register, so
// groups stay independent. What needs the engines or the benchmarks is not
// linked here: run, sql and ml hand over to ppml-run, bench to ppml-bench
// (handover.go).
package cli

import (
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/command"
)

// Exit codes shared by every command.
const (
	ExitOK      = command.ExitOK
	ExitFailure = command.ExitFailure
	ExitUsage   = command.ExitUsage
)

// UsageError marks an error in how the command was invoked; it exits with ExitUsage.
type UsageError = command.UsageError

// The shared plumbing (internal/command) under this tree's short names.
var (
	usageErrorf   = command.Usagef
	exactArgs     = command.ExactArgs
	writeJSON     = command.WriteJSON
	isTerminal    = command.IsTerminal
	envOr         = command.EnvOr
	jobError      = command.JobError
	loadKey       = command.LoadKey
	positive      = command.Positive
	allowNegative = command.AllowNegative
	checkOutput   = command.CheckOutput
)

type (
	silentExit = command.SilentExit
	kmsFlags   = command.KMSFlags
)

var groups []func() *cobra.Command

// register adds a command constructor to the root; called from init in each group file.
func register(newCmd func() *cobra.Command) { groups = append(groups, newCmd) }

// NewRoot builds the complete command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ppml",
		Short: "Privacy-preserving data and AI: encrypted data, attested TEEs, audited key release",
		Long: `ppml keeps datasets and models encrypted everywhere and decrypts them only inside a
Trusted Execution Environment that the data owner approved, after remote attestation.

This binary is the data owner's, data scientist's and operator's tool and the key
service. Jobs run in ppml-run, the runtime that TEEs measure ('ppml run', 'ppml sql' and
'ppml ml' hand over to it); benchmarks in ppml-bench ('ppml bench').`,
		Example: `  ppml key generate -o owner.key
  ppml encrypt --key owner.key -o people.csv.ppml people.csv
  ppml inspect people.csv.ppml`,
	}
	cmds := make([]*cobra.Command, 0, len(groups))
	for _, g := range groups {
		cmds = append(cmds, g())
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return command.Prepare(root)
}

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	return exitCode(root.Execute())
}

// exitCode maps a command's error to the exit status, printing it.
// Errors quote what servers, files and runners sent: what could act on the
// terminal is escaped (the CLI's own messages may span lines).
func exitCode(err error) int { return command.ExitCode(err, "ppml", os.Stderr) }
