package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/internal/handover"
	"github.com/ppml/ppml/job"
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
beside this ppml, or on PATH); see 'ppml ` + name + ` --help' for its flags.` + runtimeNote(name),
		Example:            "  ppml " + name + " --help",
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			target := bin
			if name == "run" {
				target = runtimeForRun(args)
			}
			if sub != "" {
				args = append([]string{sub}, args...)
			}
			return handover.Exec(target, args)
		},
	}
}

func runtimeNote(name string) string {
	if name != "run" {
		return ""
	}
	return `
A job of the dl engine, and a serve job with a TorchScript model (declared with
models[].torchscript, or a dl model named with models[].backend: torchscript),
runs in ` + handover.RuntimeDL + ` ($` + handover.EnvVar(handover.RuntimeDL) + `), the runtime with libtorch.`
}

// runtimeForRun picks the runtime for `ppml run ARGS`: the one that holds
// the manifest's engine. A manifest that cannot be read goes to the
// default runtime, which reports what is wrong with it.
func runtimeForRun(args []string) string {
	path := manifestArg(args)
	if path == "" {
		return handover.Runtime
	}
	m, err := job.Load(path, specs.All)
	if err != nil {
		return handover.Runtime
	}
	return handover.RuntimeFor(m)
}

// manifestArg is the value of --manifest in args, as the runtime's flag
// parser reads it (--manifest FILE or --manifest=FILE, before a "--").
func manifestArg(args []string) string {
	for i, a := range args {
		switch {
		case a == "--":
			return ""
		case a == "--manifest" || a == "-manifest":
			if i+1 < len(args) {
				return args[i+1]
			}
		case strings.HasPrefix(a, "--manifest="):
			return strings.TrimPrefix(a, "--manifest=")
		case strings.HasPrefix(a, "-manifest="):
			return strings.TrimPrefix(a, "-manifest=")
		}
	}
	return ""
}
