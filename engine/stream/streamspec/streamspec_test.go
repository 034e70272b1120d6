package streamspec_test

import (
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/stream/streamspec"
	"github.com/ppml/ppml/job"
)

var specs = job.NewSpecSet(streamspec.Spec)

const head = "name: s\nengine: stream\n"

func parse(t *testing.T, body string) (*job.Manifest, error) {
	t.Helper()
	return job.Parse([]byte(head+body), t.TempDir(), specs)
}

const bounded = `inputs: {text: text.records}
outputs: {results: {path: out/r.jsonl.ppml, key: file:owner.key}}
parameters:
  source: {stream: text, format: text}
  tokenize: {field: line, as: word}
  key_by: [word]
  window: {tumbling: 1m}
  aggregate: {count: count}
  keys: {source: stream.key.ppml}
`

func TestParseAndCanonical(t *testing.T) {
	m, err := parse(t, bounded)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parameters.(*streamspec.Params)
	if p.Source.Input != "text" || p.Sink.Stream != "text-results" || p.CheckpointInterval.String() != "2s" {
		t.Errorf("defaults: %+v", p)
	}
	if got := p.RawInputs(); len(got) != 1 || got[0] != "text" {
		t.Errorf("raw inputs %v", got)
	}
	if got := p.SecretFiles(); len(got) != 1 || !strings.HasSuffix(got[0], "/stream.key.ppml") {
		t.Errorf("secret files %v", got)
	}
	// Explicit defaults and deployment details leave the digest alone.
	m2, err := parse(t, strings.Replace(bounded, "keys:", "checkpoint_interval: 2s\n  allowed_lateness: 0s\n  keys:", 1))
	if err != nil {
		t.Fatal(err)
	}
	if m.DigestString() != m2.DigestString() {
		t.Error("explicit defaults changed the digest")
	}
	m3, err := parse(t, strings.Replace(bounded, "tumbling: 1m", "tumbling: 2m", 1))
	if err != nil {
		t.Fatal(err)
	}
	if m.DigestString() == m3.DigestString() {
		t.Error("a different window has the same digest")
	}
	onLog := "parameters:\n  log: {kind: jetstream, url: nats://a:4222, worker: w1}\n  source: {stream: s, partitions: 4, format: json}\n  keys: {source: k, sink: k2, state: k3}\n"
	a, err := parse(t, onLog)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parse(t, strings.NewReplacer("nats://a:4222", "nats://b:4222", "w1", "w2").Replace(onLog))
	if err != nil {
		t.Fatal(err)
	}
	if a.DigestString() != b.DigestString() {
		t.Error("the log's address or the worker's name changed the digest")
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"parameters: {}\n", "source: required"},
		{strings.Replace(bounded, "format: text", "format: xml", 1), `format "xml"`},
		{strings.Replace(bounded, "tumbling: 1m", "tumbling: soon", 1), `"soon" is not a duration`},
		{strings.Replace(bounded, "tumbling: 1m", "sliding: 1m", 1), "every"},
		{strings.Replace(bounded, "key_by: [word]", "key_by: [wrd]", 1), `no field "wrd"`},
		{strings.Replace(bounded, "count: count", "total: {sum: word, max: word}", 1), "one of count"},
		{strings.Replace(bounded, "aggregate: {count: count}", "", 1), "go together"},
		{strings.Replace(bounded, "  keys: {source: stream.key.ppml}\n", "", 1), "keys.source is required"},
		{strings.Replace(bounded, "results:", "other:", 1), "output other"},
		{strings.Replace(bounded, "source: {stream: text", "source: {stream: te/xt", 1), "only A-Z"},
		{strings.Replace(bounded, "keys:", "log: {kind: kafka}\n  keys:", 1), "needs url"},
		{strings.Replace(bounded, "keys:", "filter: [{field: line, gt: 1, lt: 2}]\n  keys:", 1), "one operator"},
		{strings.Replace(bounded, "keys:", "windw: 1\n  keys:", 1), "windw"},
	} {
		_, err := parse(t, c.body)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.want, err, c.want)
		}
	}
}

// FuzzStreamParameters parses arbitrary manifests of the stream engine:
// an error, or parameters whose canonical form and plan build.
func FuzzStreamParameters(f *testing.F) {
	f.Add([]byte(head + bounded))
	f.Add([]byte(head + "parameters:\n  log: {kind: redis, url: redis://x:6379}\n  source: {stream: s, partitions: 3, format: csv, columns: [a, b]}\n  event_time: {field: a, unit: unix_s, idle_timeout: 1s}\n  filter: [{field: b, in: [x, 1]}]\n  key_by: [b]\n  window: {session: 30s}\n  allowed_lateness: 5s\n  aggregate: {n: count, s: {mean: a}, d: {distinct_count: b}}\n  sink: {stream: out, partitions: 2, dead_letter: dl, late: lt}\n  keys: {source: k, sink: k2, state: k3}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := job.Parse(data, dir, specs)
		if err != nil || m.Engine != streamspec.Name {
			return
		}
		p := m.Parameters.(*streamspec.Params)
		_ = m.Canonical()
		if _, err := p.Plan(); err != nil {
			t.Fatalf("parameters parsed but the plan does not build: %v", err)
		}
	})
}
