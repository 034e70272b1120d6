package runcli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/internal/buildinfo"
	"github.com/ppml/ppml/internal/command"
	"github.com/ppml/ppml/launcher"
)

// Version is what `ppml-run version --json` prints.
type Version struct {
	Version   string   `json:"version"`
	Commit    string   `json:"commit"`
	GoVersion string   `json:"go_version"`
	Platform  string   `json:"platform"`
	Engines   []string `json:"engines"`
	// Path is the running binary, SHA256 its SHA-256: what an owner
	// compares with the binary they rebuilt (docs/reproducible-builds.md).
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// SimMeasurement is the simulated TEE's measurement of this binary
	// (SHA-384 of the file), as a key policy's platforms.sim.measurements
	// lists it. Under SGX the measurement is the enclave's MRENCLAVE,
	// which covers this binary and the rest of the enclave (docs/sgx.md).
	SimMeasurement string `json:"sim_measurement"`
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, the engines built in and this binary's digests",
		Example: `  ppml-run version
  ppml-run version --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := currentVersion()
			if err != nil {
				return err
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), v)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "ppml-run %s (commit %s, %s, %s)\n", v.Version, v.Commit, v.GoVersion, v.Platform)
			fmt.Fprintf(w, "engines:         %s\n", strings.Join(v.Engines, ", "))
			fmt.Fprintf(w, "binary:          %s\n", v.Path)
			fmt.Fprintf(w, "sha256:          %s\n", v.SHA256)
			fmt.Fprintf(w, "sim measurement: %s\n", v.SimMeasurement)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func currentVersion() (*Version, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary: %w", err)
	}
	// The digests are of the file the kernel runs (/proc/self/exe), which
	// is also what the simulated TEE measures; the path is for the reader.
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("read this binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("read this binary: %w", err)
	}
	meas, err := sim.Measure("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	return &Version{
		Version: buildinfo.Version, Commit: buildinfo.Commit, GoVersion: buildinfo.GoVersion(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Engines: launcher.Engines(),
		Path: exe, SHA256: hex.EncodeToString(h.Sum(nil)), SimMeasurement: hex.EncodeToString(meas[:]),
	}, nil
}
