package stream

import (
	"bytes"
	"crypto/rand"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/stream/record"
)

// The text decoder, the tokenizer and the shuffle decoder hand out strings
// that share bytes (a record's decrypted body, the tokenizer's arena)
// instead of copying them. These tests hold the engine to the rule that
// makes this safe: those bytes are never written again while a string may
// point at them, and whatever the engine keeps beyond a call it copies.
// Each test overwrites the input buffers after the call, as a reuse of them
// would, and checks what was kept.

// TestTokenizedWordsStayIntact keeps every word a tokenizer emits, as a
// ParDo after Tokenize may: none may change while later lines are
// tokenized (a lower-casing buffer reused from word to word would rewrite
// them).
func TestTokenizedWordsStayIntact(t *testing.T) {
	tok := tokenizeFn(0)
	var kept, want []string
	for i := range 5000 { // more lower-cased bytes than an arena chunk
		line := "Alpha BETA gamma Delta" + strings.Repeat("X", i%7)
		tok(&Row{Vals: []Value{Str(line)}}, func(r *Row) {
			kept = append(kept, r.Vals[1].S)
		})
		want = append(want, "alpha", "beta", "gamma", "delta"+strings.Repeat("x", i%7))
	}
	if !slices.Equal(kept, want) {
		for i := range kept {
			if kept[i] != want[i] {
				t.Fatalf("word %d is %q after later lines, want %q", i, kept[i], want[i])
			}
		}
		t.Fatalf("%d words, want %d", len(kept), len(want))
	}
}

// TestSourceStateOutlivesRecordBytes runs records through a WordCount
// source task, then overwrites the record bodies: the task's keys, late
// rows and pre-aggregates must not change.
func TestSourceStateOutlivesRecordBytes(t *testing.T) {
	pl := wordCountPlan(t)
	s := newSourceTask(&worker{plan: pl}, TaskID{pl.Source.Stream, 0}, 0)
	bodies := [][]byte{[]byte("Hello world\nhello Again\n"), []byte("WORLD peace\n")}
	for _, b := range bodies {
		if err := pl.dec.decode(b, 1000, func(r *Row) { s.run(r) }); err != nil {
			t.Fatal(err)
		}
	}
	// A late row: its window was already sent on.
	s.emitted = math.MaxInt64 - 1
	if err := pl.dec.decode([]byte("Latecomer\n"), 2000, func(r *Row) { s.run(r) }); err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		for i := range b {
			b[i] = 'Z'
		}
	}
	got := map[string]int64{}
	for _, wa := range s.agg.wins {
		for i, id := range wa.ids {
			got[decodeKey(s.agg.keys[id], 1)[0].S] += wa.accs[i].n
		}
	}
	want := map[string]int64{"hello": 2, "world": 2, "again": 1, "peace": 1}
	if len(got) != len(want) {
		t.Fatalf("keys after the bodies were overwritten: %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("keys after the bodies were overwritten: %v, want %v", got, want)
		}
	}
	var late []string
	for _, rows := range s.late {
		for _, r := range rows {
			late = append(late, decodeKey(r.key, 1)[0].S)
		}
	}
	if !slices.Equal(late, []string{"latecomer"}) {
		t.Fatalf("late rows: %q", late)
	}
}

// TestWindowStateOutlivesShuffleBytes merges shuffle messages into a
// window task, then overwrites the messages' bytes (the decrypted bodies
// the decoded keys share): the window's keys and results must not change.
func TestWindowStateOutlivesShuffleBytes(t *testing.T) {
	t.Run("tumbling", func(t *testing.T) { testWindowStateOutlivesShuffleBytes(t, TumblingWindows(time.Minute)) })
	// Session windows assign to maps whose entries exist already, which
	// also stores the key used for the assignment.
	t.Run("session", func(t *testing.T) { testWindowStateOutlivesShuffleBytes(t, SessionWindows(time.Minute)) })
}

func testWindowStateOutlivesShuffleBytes(t *testing.T, wf WindowFn) {
	p := NewPipeline("wc")
	words := Tokenize(p.Read(Source{Stream: "text", Partitions: 2, Format: FormatText}), "line", "word")
	Write(GroupByKey(WindowInto(KeyBy(words, "word"), wf, 0), Agg{Name: "count", Op: Count}), Sink{Stream: "counts"})
	pl, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	wt := newWindowTask(&worker{plan: pl}, TaskID{pl.ShuffleStream(), 0}, 4)
	w := Window{0, 60000}
	key := func(s string) string {
		e := &enc{}
		e.value(Str(s))
		return string(e.b)
	}
	var bodies [][]byte
	for from, words := range [][]string{{"apple", "pear"}, {"pear", "plum"}} {
		m := shuffleMsg{from: from, wm: math.MinInt64}
		p := windowPartial{w: w}
		for _, s := range words {
			a := makeAcc(pl.Aggs)
			a.add(pl.Aggs, []Value{{}})
			p.keys = append(p.keys, keyAcc{key(s), a})
		}
		m.partials = append(m.partials, p)
		bodies = append(bodies, m.encode(pl.Aggs))
	}
	for _, b := range bodies {
		m, err := decodeShuffle(b, pl.Aggs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.partials[0].keys {
			ka := &m.partials[0].keys[i]
			wt.merge(w, ka.key, &ka.acc)
		}
	}
	for _, b := range bodies {
		copy(b, bytes.Repeat([]byte{0xff}, len(b)))
	}
	for k := range wt.sessions {
		if !utf8.ValidString(k) {
			t.Fatalf("session key %q changed with the shuffle bytes", k)
		}
	}
	for i := range wt.up {
		wt.up[i].wm = math.MaxInt64 // every window fires (not ended: the results stay in wt.results)
	}
	wt.advance()
	lines := strings.Split(strings.TrimSpace(string(wt.results)), "\n")
	slices.Sort(lines) // the task orders them by encoded key
	want := []string{
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"apple","count":1}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"pear","count":2}`,
		`{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","word":"plum","count":1}`,
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("results after the shuffle bytes were overwritten:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestParDoKeepsStringsOfEarlierRecords runs sealed records through a
// source task whose plan has a ParDo that keeps every line it sees: a
// source task may decrypt records into a buffer it reuses only when no
// step can keep a string, so the lines of earlier records stay intact.
func TestParDoKeepsStringsOfEarlierRecords(t *testing.T) {
	var kept []string
	p := NewPipeline("keep")
	lines := p.Read(Source{Stream: "text", Partitions: 1, Format: FormatText})
	lines = ParDo(lines, func(r *Row, emit func(*Row)) {
		kept = append(kept, r.Vals[0].S)
		emit(r)
	})
	Write(Select(lines, Field{Name: "line"}), Sink{Stream: "out"})
	pl, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, envelope.LocalKeySize)
	rand.Read(secret)
	key, err := envelope.NewLocalKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{plan: pl, keys: Keys{Source: key, Sink: key, DeadLetter: key, State: key}, opener: record.NewOpener(key), state: record.NewOpener(key)}
	s := newSourceTask(w, TaskID{"text", 0}, 0)
	wr, err := record.NewWriter("text", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		line := strings.Repeat(string(rune('a'+i)), 40)
		want = append(want, line)
		b, err := wr.Seal(0, 1000, []byte(line+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.process(Record{Task: s.id, Value: b, Next: strconv.Itoa(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(kept, want) {
		t.Fatalf("the ParDo's lines after later records: %q, want %q", kept, want)
	}
}
