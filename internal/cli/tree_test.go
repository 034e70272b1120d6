package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommandTreeRules checks the CLI rules of docs/cli.md on every command,
// so that a new command cannot break them unnoticed.
func TestCommandTreeRules(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sc := range c.Commands() {
			if sc.Name() == "help" || sc.Name() == "completion" {
				continue
			}
			walk(sc)
		}
		path := strings.Fields(c.CommandPath())[1:]
		name := c.CommandPath()
		t.Run(strings.Join(append([]string{"ppml"}, path...), "_"), func(t *testing.T) {
			if strings.TrimSpace(c.Example) == "" {
				t.Errorf("%s has no Example", name)
			}
			if c.DisableFlagParsing {
				return // handed over to another binary, which has its own test
			}
			if code, out, _ := run(t, nil, append(path, "--help")...); code != 0 || !strings.Contains(out, "Examples:") {
				t.Errorf("%s --help: exit %d, output without examples:\n%s", name, code, out)
			}
			if code, _, _ := run(t, nil, append(path, "--no-such-flag")...); code != ExitUsage {
				t.Errorf("%s --no-such-flag: exit %d, want %d", name, code, ExitUsage)
			}
			if c.HasSubCommands() {
				if code, _, errs := run(t, nil, append(path, "no-such-command")...); code != ExitUsage || !strings.Contains(errs, "unknown command") {
					t.Errorf("%s no-such-command: exit %d (%q), want %d", name, code, errs, ExitUsage)
				}
			}
			// A command that writes files refuses to replace them without --force.
			if c.Flags().Lookup("output") != nil && c.Flags().Lookup("force") == nil {
				t.Errorf("%s writes -o but has no --force", name)
			}
			// A command that talks to the key service takes all three
			// connection flags, and its help names their variables.
			if c.Flags().Lookup("token") != nil {
				for _, f := range []string{"server", "server-fingerprint"} {
					if c.Flags().Lookup(f) == nil {
						t.Errorf("%s takes --token but not --%s", name, f)
					}
				}
				usage := c.Flags().FlagUsages()
				for _, env := range []string{"PPML_SERVER", "PPML_TOKEN", "PPML_SERVER_FINGERPRINT"} {
					if !strings.Contains(usage, env) {
						t.Errorf("%s --help does not name %s", name, env)
					}
				}
			}
		})
	}
	walk(NewRoot())
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "lsit"}, `did you mean list?`},
		{[]string{"lsit"}, `unknown command "lsit" for "ppml"`},
		{[]string{"keys"}, `did you mean key?`},
		{[]string{"audit", "list", "--limit", "-1"}, "--limit -1: must not be negative"},
		{[]string{"audit", "list", "--limit", "0"}, "--limit 0: must be greater than zero"},
		{[]string{"server", "--token-ttl", "-1h"}, "--token-ttl -1h0m0s: must not be negative"},
		{[]string{"tpch", "generate", "--workers", "-2", "--sf", "0.01", "-o", "x"}, "--workers -2: must not be negative"},
	} {
		code, _, errs := run(t, nil, tc.args...)
		if code != ExitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("ppml %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, errs, ExitUsage, tc.want)
		}
	}
}

// An output that exists is replaced only with --force, a special file never
// (as root, renaming over /dev/null would replace the device).
func TestOverwriteRule(t *testing.T) {
	t.Setenv("PPML_SIM_DIR", t.TempDir())
	out := filepath.Join(t.TempDir(), "ev.json")
	ev := []string{"attest", "evidence", "--tee", "sim", "--report-data", "01"}
	if code, _, errs := run(t, nil, append(ev, "-o", out)...); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := run(t, nil, append(ev, "-o", out)...); code != ExitFailure || !strings.Contains(errs, "give --force") {
		t.Fatalf("second write: %d %s", code, errs)
	}
	if code, _, errs := run(t, nil, append(ev, "-o", out, "--force")...); code != 0 {
		t.Fatal(errs)
	}
	for _, args := range [][]string{append(ev, "-o", os.DevNull, "--force"), {"key", "generate", "-o", os.DevNull, "--force"}} {
		if code, _, errs := run(t, nil, args...); code != ExitFailure || !strings.Contains(errs, "not a regular file") {
			t.Fatalf("ppml %s: %d %s", strings.Join(args, " "), code, errs)
		}
	}
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode().IsRegular() {
		t.Fatalf("%s was replaced: %v", os.DevNull, err)
	}
	code, stdout, errs := run(t, nil, append(ev, "-o", "-")...)
	if code != 0 || !strings.Contains(stdout, `"platform"`) {
		t.Fatalf("-o -: %d %s %s", code, stdout, errs)
	}
}
