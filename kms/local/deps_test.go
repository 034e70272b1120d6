package local_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The ppml binary starts its demo and benchmark key services through this
// package, not through the testing wrapper kms/kmstest.
func TestPPMLLinksNoKMSTest(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ppml/ppml/cmd/ppml").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps printed %q", out)
	}
	for _, d := range deps {
		if d == "github.com/ppml/ppml/kms/kmstest" {
			t.Errorf("ppml links %s", d)
		}
	}
}
