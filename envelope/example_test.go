package envelope_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
)

// Encrypt a CSV file atomically under a local key, then read its last line
// by random access.
func Example() {
	dir, _ := os.MkdirTemp("", "envelope-example")
	defer os.RemoveAll(dir)
	key, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		panic(err)
	}

	path := filepath.Join(dir, "people.csv.ppml")
	w, err := envelope.CreateFile(path, key, &envelope.Options{ContentType: envelope.TypeCSV}, false)
	if err != nil {
		panic(err)
	}
	defer w.Abort() // no-op once Close succeeded
	io.Copy(w, strings.NewReader("name,age\nAndy,30\nJustin,19\n"))
	if err := w.Close(); err != nil {
		panic(err)
	}

	f, err := envelope.OpenFile(path, key)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	f.Seek(-10, io.SeekEnd)
	tail, _ := io.ReadAll(f)
	fmt.Printf("%s %q\n", f.Header().ContentType, tail)

	other, _ := keyfile.Generate(filepath.Join(dir, "other.key"), false)
	_, err = envelope.OpenFile(path, other)
	fmt.Println(strings.Contains(err.Error(), "wrong key: the file needs local key "+key.ID()))
	// Output:
	// csv "Justin,19\n"
	// true
}
