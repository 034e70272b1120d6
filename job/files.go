package job

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// CheckFiles checks the manifest against the file system it will run on:
// every input exists, every output's directory exists, no output is a
// directory, no output is (through links) the same file as an input, and
// the engine's own files are in place (for exec: the program exists, pinned
// files have their pinned hashes).
// It is separate from Parse because the job identity does not depend on the
// host's files, and a data owner may compute it on another machine.
func (m *Manifest) CheckFiles() error {
	c := &Checker{}
	at := func(line int, field string) Node { return Node{y: &yaml.Node{Line: line}, Path: field} }
	inputInfo := map[string]os.FileInfo{}
	for _, in := range m.Inputs {
		fi, err := os.Stat(in.Path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.Failf(at(in.Line, "inputs."+in.Name), "input %s does not exist", in.Path)
			} else {
				c.Failf(at(in.Line, "inputs."+in.Name), "input %s: %v", in.Path, unwrapPathErr(err))
			}
			continue
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			c.Failf(at(in.Line, "inputs."+in.Name), "input %s is neither a file nor a directory", in.Path)
			continue
		}
		inputInfo[in.Name] = fi
	}
	for _, o := range m.Outputs {
		field := "outputs." + o.Name + ".path"
		dir := filepath.Dir(o.Path)
		if di, err := os.Stat(dir); err != nil {
			c.Failf(at(o.Line, field), "directory %s of output %s: %v", dir, o.Path, unwrapPathErr(err))
			continue
		} else if !di.IsDir() {
			c.Failf(at(o.Line, field), "%s is not a directory", dir)
			continue
		}
		fi, err := os.Stat(o.Path)
		if err != nil {
			continue // does not exist yet: fine
		}
		if fi.IsDir() {
			c.Failf(at(o.Line, field), "%s is a directory; an output is a file", o.Path)
			continue
		}
		for _, in := range m.Inputs {
			if ii, ok := inputInfo[in.Name]; ok && os.SameFile(fi, ii) {
				c.Failf(at(o.Line, field), "%s is the same file as inputs.%s (%s)", o.Path, in.Name, in.Path)
			}
		}
	}
	if fc, ok := m.Parameters.(FileChecker); ok {
		fc.CheckFiles(c)
	}
	return c.err("")
}

// FileChecker is implemented by engine parameters that refer to files of
// their own (programs, pinned scripts); CheckFiles checks them too.
type FileChecker interface {
	CheckFiles(c *Checker)
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
