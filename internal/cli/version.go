package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/internal/buildinfo"
	"github.com/ppml/ppml/internal/handover"
)

func init() { register(newVersionCmd) }

// versionInfo is what `ppml version --json` prints: this binary's build and
// the runtime it hands jobs to, as `ppml-run version --json` reports it.
type versionInfo struct {
	Version   string       `json:"version"`
	Commit    string       `json:"commit"`
	GoVersion string       `json:"go_version"`
	Platform  string       `json:"platform"`
	Runtime   *runtimeInfo `json:"runtime"`
	// Engines are the runtime's engines (empty when it was not found).
	Engines []string `json:"engines"`
	// RuntimeError says why the runtime could not be asked.
	RuntimeError string `json:"runtime_error,omitempty"`
	// DLRuntime is ppml-run-dl, the runtime of dl jobs, when it is found.
	DLRuntime *runtimeInfo `json:"dl_runtime,omitempty"`
}

// runtimeInfo is the part of `ppml-run version --json` an owner compares:
// SHA256 is the runtime binary's digest and SimMeasurement the simulated
// TEE's measurement of it (docs/reproducible-builds.md).
type runtimeInfo struct {
	Path           string   `json:"path"`
	Version        string   `json:"version"`
	Commit         string   `json:"commit"`
	SHA256         string   `json:"sha256"`
	SimMeasurement string   `json:"sim_measurement"`
	Engines        []string `json:"engines"`
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version of ppml and of the runtime (ppml-run) it hands jobs to",
		Long: `Print this binary's version, commit and Go version, and ask the runtime that
'ppml run' would use (found as 'ppml run' finds it: $PPML_RUN, beside ppml, or on
PATH) for its version, engines, SHA-256 and simulated-TEE measurement. Exits 1 when
the runtime cannot be found or asked.`,
		Example: `  ppml version
  ppml version --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Version: buildinfo.Version, Commit: buildinfo.Commit, GoVersion: buildinfo.GoVersion(),
				Platform: runtime.GOOS + "/" + runtime.GOARCH, Engines: []string{}}
			rt, rtErr := askRuntime(cmd.Context(), handover.Runtime)
			// The dl runtime is optional: most deployments never install it.
			if dl, err := askRuntime(cmd.Context(), handover.RuntimeDL); err == nil {
				v.DLRuntime = dl
			}
			if rtErr != nil {
				v.RuntimeError = rtErr.Error()
			} else {
				v.Runtime, v.Engines = rt, rt.Engines
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), v); err != nil {
					return err
				}
				if rtErr != nil {
					return &silentExit{Code: ExitFailure}
				}
				return nil
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "ppml %s (commit %s, %s, %s)\n", v.Version, v.Commit, v.GoVersion, v.Platform)
			if rtErr != nil {
				return fmt.Errorf("runtime: %w", rtErr)
			}
			fmt.Fprintf(w, "runtime:         %s (ppml-run %s, commit %s)\n", rt.Path, rt.Version, rt.Commit)
			fmt.Fprintf(w, "engines:         %s\n", strings.Join(rt.Engines, ", "))
			fmt.Fprintf(w, "runtime sha256:  %s\n", rt.SHA256)
			fmt.Fprintf(w, "sim measurement: %s\n", rt.SimMeasurement)
			if rt.Commit != v.Commit || rt.Version != v.Version {
				fmt.Fprintf(cmd.ErrOrStderr(), "ppml: warning: the runtime is %s (commit %s), this ppml %s (commit %s)\n", rt.Version, rt.Commit, v.Version, v.Commit)
			}
			if dl := v.DLRuntime; dl != nil {
				fmt.Fprintf(w, "dl runtime:      %s (ppml-run-dl %s, commit %s)\n", dl.Path, dl.Version, dl.Commit)
				fmt.Fprintf(w, "dl engines:      %s\n", strings.Join(dl.Engines, ", "))
				fmt.Fprintf(w, "dl sha256:       %s\n", dl.SHA256)
				fmt.Fprintf(w, "dl measurement:  %s\n", dl.SimMeasurement)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// askRuntime runs `NAME version --json` (NAME is ppml-run or ppml-run-dl).
func askRuntime(ctx context.Context, name string) (*runtimeInfo, error) {
	bin, err := handover.Find(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, bin, "version", "--json")
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("%s version --json: %v: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	var rt runtimeInfo
	if err := json.Unmarshal(stdout.Bytes(), &rt); err != nil {
		return nil, fmt.Errorf("%s version --json printed no version: %v", bin, err)
	}
	if rt.Path == "" {
		rt.Path = bin
	}
	return &rt, nil
}
