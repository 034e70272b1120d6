package client

import (
	"os/exec"
	"strings"
	"testing"
)

// The client runs inside the TEE (the launcher's release client) and in
// owners' tools: it must link none of the key service itself — no store,
// no bbolt, no seals, no core, no HTTP server, no audit log storage.
func TestLinksNoServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"go.etcd.io/bbolt",
		"github.com/ppml/ppml/store",
		"github.com/ppml/ppml/seal",
		"github.com/ppml/ppml/kms",
		"github.com/ppml/ppml/kms/core",
		"github.com/ppml/ppml/kms/auditlog",
		"github.com/ppml/ppml/kms/kmstest",
		"github.com/prometheus/client_golang",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %q", out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			// A forbidden package or one below it; below kms, only the
			// packages listed (kms/api is the client's own wire types).
			below := strings.HasPrefix(d, f+"/") && f != "github.com/ppml/ppml/kms"
			if d == f || below {
				t.Errorf("kms/client links %s", d)
			}
		}
	}
}
