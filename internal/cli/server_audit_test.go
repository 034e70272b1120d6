package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/atomicfile/atomicfiletest"
)

// TestAuditWritersKeepOldFiles makes the audit export and --save-head writes
// fail part-way (file size limit): the previous export, its key and the
// saved tree head stay as they were.
func TestAuditWritersKeepOldFiles(t *testing.T) {
	if !atomicfiletest.Child(t) {
		return
	}
	dir := t.TempDir()
	out, head := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "head.json")
	oldLog, oldPub := []byte(`{"index":0}`+"\n"), []byte("old key\n")
	if err := writeAuditExport(out, oldLog, oldPub); err != nil {
		t.Fatal(err)
	}
	if err := saveTreeHead(head, map[string]int{"size": 1}); err != nil {
		t.Fatal(err)
	}
	oldHead, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}

	atomicfiletest.LimitFileSize(t, 512)
	big := bytes.Repeat([]byte(`{"index":1}`+"\n"), 100)
	if err := writeAuditExport(out, big, []byte("new key\n")); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("export past the limit: %v", err)
	}
	atomicfiletest.Unchanged(t, out, oldLog)
	atomicfiletest.Unchanged(t, out+".pub", oldPub)
	if err := writeAuditExport(out, oldLog, bytes.Repeat([]byte("k"), 1024)); err == nil || !strings.Contains(err.Error(), "tree-head key") {
		t.Fatalf("key write past the limit: %v", err)
	}
	atomicfiletest.Unchanged(t, out+".pub", oldPub)
	if err := saveTreeHead(head, map[string]string{"root_hash": strings.Repeat("ab", 512)}); err == nil || !strings.Contains(err.Error(), "--save-head") {
		t.Fatalf("tree head past the limit: %v", err)
	}
	atomicfiletest.Unchanged(t, head, oldHead)
	atomicfiletest.NoTemporaries(t, dir)
}
