package proctest

import (
	"os/exec"
	"testing"
)

// A child and what it started are gone when the test that started them
// ends, whether or not the test waited for the child.
func TestGroupKilledAtCleanup(t *testing.T) {
	var pgid int
	t.Run("child", func(t *testing.T) {
		cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60")
		Start(t, cmd)
		pgid = cmd.Process.Pid
		if !alive(pgid) {
			t.Fatal("the child is not running")
		}
	})
	if alive(pgid) {
		t.Fatalf("process group %d still runs after its test ended", pgid)
	}
}
