package docstest

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := strings.Join([]string{
		"# t", "<!-- docs-test: port 18443 -->",
		"```sh", "echo hi", "```",
		"<!-- docs-test: output -->", "```", "hi", "```",
		"<!-- docs-test: skip needs Kubernetes -->", "", "```console", "$ kubectl get pods", "```",
		"```console", "$ printf 'a\\n' \\", "  b", "a", "$ true", "```",
		"```yaml", "x: 1", "```",
	}, "\n")
	d, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Blocks) != 4 || len(d.Ports) != 1 || d.Ports[0].Number != "18443" {
		t.Fatalf("blocks %d, ports %v", len(d.Blocks), d.Ports)
	}
	if d.Blocks[1].Kind != Output || d.Blocks[2].Skip != "needs Kubernetes" {
		t.Errorf("blocks %+v", d.Blocks)
	}
	c := d.Blocks[3].Commands
	if len(c) != 2 || len(c[0].Text) != 2 || strings.Join(c[0].Expect, "|") != "a" || len(c[1].Expect) != 0 || c[1].Line != 19 {
		t.Errorf("commands %+v", c)
	}
	for _, bad := range []string{
		"<!-- docs-test: skp x -->\n```sh\ntrue\n```",  // unknown directive
		"<!-- docs-test: skip -->\n```sh\ntrue\n```",   // no reason
		"<!-- docs-test: skip x -->\ntext\n```sh\n```", // not before a block
		"<!-- docs-test: skip x -->\n```yaml\n```",     // a block that does not run
		"```sh\ntrue", // never closed
		"```console\noutput first\n```",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		want, got string
		ok        bool
	}{
		{"a\nb", "a\nb\n", true},
		{"a\nb", "a\nc", false},
		{"key local:…", "key local:88f0", true},
		{"key local:…)", "key local:88f0", false},
		{"x … y … z", "x 1 y 2 z", true},
		{"x … y … z", "x 1 z 2 y", false},
		{"a\n…\nz", "a\nb\nc\nz", true},
		{"a\n…\nz", "a\nz", true},
		{"a\n…", "a", true},
		{"", "", true},
		{"", "something", false},
		{"a  ", "a", true},
	} {
		if got := Match(lines(c.want), lines(c.got)); got != c.ok {
			t.Errorf("Match(%q, %q) = %v", c.want, c.got, got)
		}
	}
}
