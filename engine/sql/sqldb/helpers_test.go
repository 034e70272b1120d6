package sqldb

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/ppml/ppml/memfd/memfdtest"
)

// memInput puts data in a sealed memfd, as the launcher does after
// decryption, and returns it as a File named name.
func memInput(t testing.TB, name string, data []byte) File {
	t.Helper()
	return File{Path: memfdtest.Sealed(t, name, data).Path(), Name: name}
}

func memInputFile(t testing.TB, path string) File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return memInput(t, path, data)
}

func openEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = 256 << 20
	}
	e, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func writeString(t testing.TB, e *Engine, script string, f Format) string {
	t.Helper()
	var b bytes.Buffer
	if err := e.Write(context.Background(), script, f, &b); err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return b.String()
}
