package command

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flag annotations that Prepare enforces for every command (docs/cli.md):
// a numeric or duration flag is never negative unless AllowNegative says
// what a negative value means, and never zero where Positive says zero
// means nothing.
const (
	annotAllowNegative = "ppml_allow_negative"
	annotPositive      = "ppml_positive"
)

// AllowNegative marks c's flags whose negative values mean something (the
// flag's help must say what).
func AllowNegative(c *cobra.Command, names ...string) { annotate(c, annotAllowNegative, names) }

// Positive marks c's numeric flags for which zero is meaningless.
func Positive(c *cobra.Command, names ...string) { annotate(c, annotPositive, names) }

func annotate(c *cobra.Command, key string, names []string) {
	for _, n := range names {
		if c.Flags().Lookup(n) == nil {
			panic(fmt.Sprintf("command %s has no flag --%s", c.CommandPath(), n))
		}
		if err := c.Flags().SetAnnotation(n, key, []string{"true"}); err != nil {
			panic(err)
		}
	}
}

// checkNumericFlags applies the numeric rules to the flags the user gave.
func checkNumericFlags(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		var neg, zero bool
		switch f.Value.Type() {
		case "int", "int8", "int16", "int32", "int64", "float32", "float64":
			v, perr := strconv.ParseFloat(f.Value.String(), 64)
			if perr != nil {
				return
			}
			neg, zero = v < 0, v == 0
		case "uint", "uint8", "uint16", "uint32", "uint64":
			zero = f.Value.String() == "0"
		case "duration":
			d, perr := time.ParseDuration(f.Value.String())
			if perr != nil {
				return
			}
			neg, zero = d < 0, d == 0
		default:
			return
		}
		_, allowNeg := f.Annotations[annotAllowNegative]
		_, positive := f.Annotations[annotPositive]
		switch {
		case neg && !allowNeg:
			err = Usagef("--%s %s: must not be negative", f.Name, f.Value.String())
		case zero && positive:
			err = Usagef("--%s %s: must be greater than zero", f.Name, f.Value.String())
		}
	})
	return err
}

// unknownSubcommand is the Args of a command group: no arguments prints
// the help, anything else is an unknown command (exit 2) with suggestions.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	} else {
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	return Usagef("%s", msg)
}

// prepareCommand applies the CLI rules to one command of a finished tree.
func prepareCommand(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	c.SuggestionsMinimumDistance = 2
	if !c.HasSubCommands() {
		return
	}
	if c.Run == nil && c.RunE == nil {
		c.Args = unknownSubcommand
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		return
	}
	// A group that also runs itself (ppml server): arguments it does not
	// take are a mistyped subcommand.
	if orig := c.Args; orig != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				if len(args) > 0 {
					return unknownSubcommand(cmd, args)
				}
				return err
			}
			return nil
		}
	}
}
