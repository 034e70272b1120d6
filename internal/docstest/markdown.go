// Package docstest runs the shell blocks of ppml's guides and example READMEs
// as tests (TestDocs), so that the docs keep working as written.
//
// The markdown convention it reads is documented in docs/README.md, "Docs that
// run as tests"; in short:
//
//   - a fenced block tagged sh, bash or shell runs as written; it must exit 0
//     (it runs under set -e -o pipefail);
//   - a fenced block tagged console holds commands after "$ " (continued on
//     the next line after a trailing backslash) and, below each, the output
//     it must print (standard output and error together); "…" in an output
//     line matches any text, and a line holding only "…" any number of lines;
//   - an HTML comment right before a block directs the harness:
//     <!-- docs-test: skip REASON --> does not run the block (the reason is
//     listed by the test), <!-- docs-test: output --> compares a plain block
//     with the output of the block before it;
//   - <!-- docs-test: port N [FILE...] --> anywhere in a document replaces
//     the port number N (as a whole word) with a free port chosen for the
//     run, in the document's blocks and the outputs they are compared with,
//     and in each FILE named after it: a path relative to the document's
//     directory, rewritten in the run's copy of examples/ before the first
//     block runs (for an example's manifest that names its listen ports).
//     Nothing else is rewritten: no other number, no host name, no file the
//     directive does not name. A document that shows a digest of such a file
//     shows it elided ("sha256:…"), since the digest changes with the port.
//
// Every document runs in one bash process, block after block, in a fresh
// directory laid out like a ppml checkout (bin/ with freshly built binaries,
// also on PATH, a copy of examples/ and scripts/, and ../shared; for a
// document that runs "go run" or "go build", a go.mod that makes the copied
// examples build against the repository's packages with the test's Go build
// and module caches), with a fresh HOME. Whatever the document started
// ends with it, also when a block fails or the document times out: bash
// runs under a reaper (the test binary as a child subreaper, see
// reaper_test.go) that inherits every process the document orphans — a
// server that daemonized with fork and setsid (redis-server --daemonize
// yes) — and ends all its descendants when bash exits. Behind it, the
// document's process group is killed, and so is every process whose
// environment still carries the document's marker variable DOCSTEST_RUN (a
// unique value per run), which finds daemons even if the reaper itself was
// killed (not redis-server, which overwrites its environment with its
// process title).
package docstest

import (
	"bufio"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Kind is what the harness does with a block.
type Kind int

const (
	Script  Kind = iota // sh, bash, shell: run, must exit 0
	Console             // console: $ commands, each followed by its expected output
	Output              // a block marked <!-- docs-test: output -->: the previous block's output
)

// Block is a fenced code block the harness runs or compares.
type Block struct {
	Kind Kind
	Line int      // line of the opening fence, 1-based
	Body []string // the lines between the fences
	Skip string   // why it does not run ("" when it runs)
	// Commands of a Console block.
	Commands []Command
}

// Command is one "$ " command of a console block.
type Command struct {
	Line   int      // line of its first "$ " line
	Text   []string // the command, without "$ ", continuation lines included
	Expect []string // the output shown below it
}

// Doc is a parsed markdown file.
type Doc struct {
	Blocks []Block
	Ports  []Port // port numbers to replace with free ones
}

// Port is a port directive: the number, and the files (relative to the
// document's directory) it is replaced in besides the blocks.
type Port struct {
	Number string
	Files  []string
}

var (
	directiveRE = regexp.MustCompile(`^\s*<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$`)
	fenceRE     = regexp.MustCompile("^( {0,3})(```+|~~~+)\\s*([^\\s`]*)")
	portRE      = regexp.MustCompile(`^[0-9]{2,5}$`)
)

// Parse reads the blocks of a markdown file. Directives it does not know, and
// a directive that does not stand right before a block (blank lines aside),
// are errors, so that a typo cannot silently leave a block untested.
func Parse(src string) (*Doc, error) {
	doc := &Doc{}
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	type pending struct {
		verb, arg string
		line      int
	}
	var dir *pending
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := directiveRE.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "port":
				f := strings.Fields(m[2])
				if len(f) == 0 || !portRE.MatchString(f[0]) {
					return nil, fmt.Errorf("line %d: docs-test port wants a port number, got %q", i+1, m[2])
				}
				for _, file := range f[1:] {
					if path.IsAbs(file) || file != path.Clean(file) || strings.HasPrefix(file, "../") || file == ".." {
						return nil, fmt.Errorf("line %d: docs-test port %s: file %q must be a clean path inside the document's directory", i+1, f[0], file)
					}
				}
				doc.Ports = append(doc.Ports, Port{Number: f[0], Files: f[1:]})
				continue
			case "skip":
				if m[2] == "" || m[2] == "—" {
					return nil, fmt.Errorf("line %d: docs-test skip needs a reason", i+1)
				}
			case "output":
			default:
				return nil, fmt.Errorf("line %d: unknown docs-test directive %q (want skip, output or port)", i+1, m[1])
			}
			if dir != nil {
				return nil, fmt.Errorf("line %d: docs-test %s is not followed by a code block", dir.line, dir.verb)
			}
			dir = &pending{verb: m[1], arg: strings.TrimLeft(m[2], "—-: "), line: i + 1}
			continue
		}
		m := fenceRE.FindStringSubmatch(line)
		if m == nil {
			if strings.TrimSpace(line) != "" && dir != nil {
				return nil, fmt.Errorf("line %d: docs-test %s is not followed by a code block", dir.line, dir.verb)
			}
			continue
		}
		indent, fence, lang := len(m[1]), m[2], strings.ToLower(m[3])
		start := i
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			l := lines[i]
			if t := strings.TrimLeft(l, " "); strings.HasPrefix(t, fence) && strings.TrimSpace(strings.TrimLeft(t, fence[:1])) == "" && len(l)-len(t) <= 3 {
				closed = true
				break
			}
			// Content lines lose up to the fence's indentation.
			for k := 0; k < indent && strings.HasPrefix(l, " "); k++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		if !closed {
			return nil, fmt.Errorf("line %d: code block never closed", start+1)
		}
		b := Block{Line: start + 1, Body: body}
		switch lang {
		case "sh", "bash", "shell":
			b.Kind = Script
		case "console":
			b.Kind = Console
			cmds, err := parseConsole(body, start+2)
			if err != nil {
				return nil, err
			}
			b.Commands = cmds
		default:
			if dir == nil || dir.verb != "output" {
				if dir != nil {
					return nil, fmt.Errorf("line %d: docs-test %s before a %q block, which does not run", dir.line, dir.verb, lang)
				}
				continue
			}
			b.Kind = Output
		}
		if dir != nil {
			switch {
			case dir.verb == "skip":
				b.Skip = dir.arg
			case dir.verb == "output" && b.Kind != Output:
				return nil, fmt.Errorf("line %d: docs-test output before a %s block: it marks a plain block showing output", dir.line, lang)
			}
			dir = nil
		}
		if b.Kind == Output {
			if len(doc.Blocks) == 0 || doc.Blocks[len(doc.Blocks)-1].Kind == Output {
				return nil, fmt.Errorf("line %d: output block with no block before it to compare with", b.Line)
			}
		}
		doc.Blocks = append(doc.Blocks, b)
	}
	if dir != nil {
		return nil, fmt.Errorf("line %d: docs-test %s is not followed by a code block", dir.line, dir.verb)
	}
	return doc, nil
}

// parseConsole splits a console block into commands and their output. first
// is the file line of body[0].
func parseConsole(body []string, first int) ([]Command, error) {
	var cmds []Command
	for i := 0; i < len(body); i++ {
		l := body[i]
		if !strings.HasPrefix(l, "$ ") {
			if len(cmds) == 0 {
				if strings.TrimSpace(l) == "" {
					continue
				}
				return nil, fmt.Errorf("line %d: console block text before its first \"$ \" command", first+i)
			}
			c := &cmds[len(cmds)-1]
			c.Expect = append(c.Expect, l)
			continue
		}
		c := Command{Line: first + i, Text: []string{strings.TrimPrefix(l, "$ ")}}
		for strings.HasSuffix(strings.TrimRight(c.Text[len(c.Text)-1], " "), "\\") && i+1 < len(body) {
			i++
			c.Text = append(c.Text, body[i])
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// Match reports whether got (output lines) matches want (expected lines with
// "…" wildcards). Trailing white space and trailing blank lines are ignored.
func Match(want, got []string) bool {
	return match(trim(want), trim(got))
}

func trim(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = strings.TrimRight(l, " \t\r")
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

func match(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if strings.TrimSpace(want[0]) == "…" {
		for k := 0; k <= len(got); k++ {
			if match(want[1:], got[k:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(want[0], got[0]) && match(want[1:], got[1:])
}

// matchLine matches one line, "…" standing for any text.
func matchLine(want, got string) bool {
	parts := strings.Split(want, "…")
	if len(parts) == 1 {
		return want == got
	}
	if !strings.HasPrefix(got, parts[0]) {
		return false
	}
	got = got[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		k := strings.Index(got, p)
		if k < 0 {
			return false
		}
		got = got[k+len(p):]
	}
	return strings.HasSuffix(got, last)
}
