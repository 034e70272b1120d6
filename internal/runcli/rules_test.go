package runcli

import (
	"strings"
	"testing"
)

// The CLI rules of docs/cli.md on ppml-run's own commands.
func TestRuntimeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "job.yaml"}, "ppml run --manifest job.yaml"},
		{[]string{"rnu"}, "did you mean run?"},
		{[]string{"run", "--manifest", "job.yaml", "--grace", "-1s"}, "--grace -1s: must not be negative"},
	} {
		code, _, errs := run(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("ppml-run %s: exit %d, %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}
