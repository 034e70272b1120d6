package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/handover"
)

func init() {
	for _, h := range []struct{ name, short, bin string }{
		{"run", "Run a job on encrypted inputs: get keys, decrypt in memory, run, encrypt outputs", handover.Runtime},
		{"sql", "Run SQL over encrypted tables through the trusted launcher and show the result", handover.Runtime},
		{"ml", "Train, apply and evaluate models on local plaintext or locally-keyed tables", handover.Runtime},
		{"bench", "Measure performance on this machine", handover.Bench},
	} {
		register(func() *cobra.Command { return handoverCmd(h.name, h.short, h.bin) })
	}
}

// handoverCmd is `ppml NAME ARGS...`, which replaces this process with
// `BIN NAME ARGS...`: the runtime for run, sql and ml (the engines live
// only there), ppml-bench for bench. Flags, --help included, are the other
// binary's.
func handoverCmd(name, short, bin string) *cobra.Command {
	// ppml-bench's commands are the benchmarks themselves: 'ppml bench
	// envelope' is 'ppml-bench envelope', not 'ppml-bench bench envelope'.
	sub := name
	if bin == handover.Bench {
		sub = ""
	}
	return &cobra.Command{
		Use:   name,
		Short: short,
		Long: short + `.

'ppml ` + name + `' runs '` + strings.TrimSpace(bin+" "+sub) + `' with the same arguments (` + bin + ` is found in $` + handover.EnvVar(bin) + `,
beside this ppml, or on PATH); see 'ppml ` + name + ` --help' for its flags.`,
		Example:            "  ppml " + name + " --help",
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if sub != "" {
				args = append([]string{sub}, args...)
			}
			return handover.Exec(bin, args)
		},
	}
}
