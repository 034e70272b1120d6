package core

import (
	"os/exec"
	"strings"
	"testing"
)

// The core knows no transport and no database: it links neither net/http
// nor bbolt (the store's backend is chosen by whoever opens it).
func TestLinksNoTransportOrDatabase(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == "net/http", strings.HasPrefix(d, "go.etcd.io/bbolt"), d == "github.com/ppml/ppml/store/boltstore",
			strings.HasPrefix(d, "github.com/prometheus/"):
			t.Errorf("kms/core links %s", d)
		}
	}
}
