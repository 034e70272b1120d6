package stream_test

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/stream"
)

// countPlan is WordCount over text with win; with unfused, a filter that
// keeps every word follows the tokenizer, so the plan runs the general
// steps instead of the fused count path.
func countPlan(t testing.TB, partitions int, win stream.WindowFn, lateness time.Duration, unfused bool) *stream.Plan {
	p := stream.NewPipeline("wc")
	lines := p.Read(stream.Source{Stream: "text", Partitions: partitions, Format: stream.FormatText})
	words := stream.Tokenize(lines, "line", "word")
	if unfused {
		words = stream.Filter(words, stream.Cond{Field: "word", Op: stream.Ne, Value: stream.Str("")})
	}
	w := stream.WindowInto(stream.KeyBy(words, "word"), win, lateness)
	stream.Write(stream.GroupByKey(w, stream.Agg{Name: "count", Op: stream.Count}, stream.Agg{Name: "n", Op: stream.Count}),
		stream.Sink{Stream: "counts", Partitions: 3, DeadLetter: "dead", Late: "late"})
	pl, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if stream.FusedCount(pl) == unfused {
		t.Fatalf("plan (unfused %v) fused: %v", unfused, stream.FusedCount(pl))
	}
	return pl
}

// randomText makes lines of words of every length the fused path treats
// apart (up to 8 bytes in one word of the table, longer, longer than 16),
// of capitals, digits and apostrophes, between separators that include
// bytes above 0x7f and bytes that become word bytes when 0x20 is set
// (0x07, 0x10–0x19, 0x41–0x5a are letters already).
func randomText(rng *rand.Rand, vocab []string) string {
	seps := []string{" ", ", ", ".\n", "\t", "\r\n", "-", "é", "\x07", "\x10", "\x19", "@", "[", "\xff", "\x00", "  "}
	var b strings.Builder
	for n := 1 + rng.IntN(30); n > 0; n-- {
		w := vocab[rng.IntN(len(vocab))]
		if rng.IntN(5) == 0 {
			w = strings.ToUpper(w)
		}
		b.WriteString(w)
		b.WriteString(seps[rng.IntN(len(seps))])
	}
	return b.String()
}

func TestFusedCountMatchesSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789'"
	var vocab []string
	for i := 0; i < 400; i++ {
		n := 1 + rng.IntN(12)
		if i%10 == 0 {
			n = 8 + rng.IntN(40) // the lengths around and past a table slot's 8 bytes
		}
		var w []byte
		for range n {
			w = append(w, letters[rng.IntN(len(letters))])
		}
		vocab = append(vocab, string(w))
	}
	// Words that share their first 8 bytes and differ in length or after.
	vocab = append(vocab, "abcdefgh", "abcdefghi", "abcdefghij", "abcdefghik", "abcdefghijklmnopq", "abcdefghijklmnopr", "aaaaaaaaa", "aaaaaaaaaa")
	for _, tc := range []struct {
		name     string
		win      stream.WindowFn
		lateness time.Duration
	}{
		{"tumbling", stream.TumblingWindows(time.Minute), 0},
		{"sliding with lateness", stream.SlidingWindows(2*time.Minute, time.Minute), 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var parts [2][]rec
			for p := range parts {
				tm := int64(0)
				for i := 0; i < 300; i++ {
					tm += rng.Int64N(20_000)
					at := tm
					if i%25 == 24 {
						at = tm - 150_000 // behind windows sent on already: late rows
					}
					parts[p] = append(parts[p], rec{at, randomText(rng, vocab)})
				}
			}
			fc, fl := runParts(t, countPlan(t, 2, tc.win, tc.lateness, false), "text", "counts", parts[:]...)
			uc, ul := runParts(t, countPlan(t, 2, tc.win, tc.lateness, true), "text", "counts", parts[:]...)
			if len(fc) < 1000 || len(fl) == 0 {
				t.Fatalf("%d result lines and %d late lines: the test does not exercise the path", len(fc), len(fl))
			}
			t.Logf("%d result lines, %d late lines", len(fc), len(fl))
			check(t, "counts", fc, uc...)
			check(t, "late", fl, ul...)
		})
	}
}

// TestWindowsReuseTheirMemory checks results against counts made here,
// over many windows in a row whose words change from window to window:
// source tasks reuse the accumulators of windows they sent on, window
// tasks the key maps of windows they purged, and source tasks compact
// their key tables as old words die out — a key left behind in a reused
// window, or found under a stale id, would show as a wrong count. One
// source partition: its window tasks' watermark then moves with it, so
// they purge windows between making new ones, as in a long run (with
// two, bounded inputs are read one after the other and the second holds
// the watermark back until every window exists).
func TestWindowsReuseTheirMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const minute = int64(time.Minute / time.Millisecond)
	vocab := make([]string, 12000)
	for i := range vocab {
		vocab[i] = "w" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name  string
		win   stream.WindowFn
		size  int64 // window size and slide, in minutes
		slide int64
	}{
		{"tumbling", stream.TumblingWindows(time.Minute), 1, 1},
		{"sliding", stream.SlidingWindows(2*time.Minute, time.Minute), 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string]int64{} // window start and word → count
			var parts [1][]rec
			for p := range parts {
				for m := int64(10); m < 40; m++ {
					// Each minute's words come from its own stretch of the
					// vocabulary, overlapping the last minute's by half.
					base := int((m - 10) * 400 % int64(len(vocab)-1000))
					for i := 0; i < 4; i++ {
						at := m*minute + int64(i)*15_000 + rng.Int64N(15_000)
						var line []string
						for n := 50 + rng.IntN(100); n > 0; n-- {
							w := vocab[base+rng.IntN(800)]
							line = append(line, w)
							for s := (at/(tc.slide*minute) - tc.size/tc.slide + 1) * tc.slide * minute; s <= at; s += tc.slide * minute {
								want[time.UnixMilli(s).UTC().Format(time.RFC3339)+" "+w]++
							}
						}
						parts[p] = append(parts[p], rec{at, strings.Join(line, " ")})
					}
				}
			}
			for _, unfused := range []bool{false, true} {
				out, late := runParts(t, countPlan(t, 1, tc.win, 0, unfused), "text", "counts", parts[:]...)
				if len(late) > 0 {
					t.Fatalf("unfused %v: %d late rows from records in order", unfused, len(late))
				}
				got := map[string]int64{}
				for _, l := range out {
					var v struct {
						Start string `json:"window_start"`
						Word  string
						Count int64
					}
					if err := json.Unmarshal([]byte(l), &v); err != nil {
						t.Fatalf("result %q: %v", l, err)
					}
					got[v.Start+" "+v.Word] += v.Count
				}
				if len(got) != len(want) {
					t.Errorf("unfused %v: %d (window, word) results, want %d", unfused, len(got), len(want))
				}
				for k, n := range want {
					if got[k] != n {
						t.Fatalf("unfused %v: %s: %d, want %d", unfused, k, got[k], n)
					}
				}
			}
		})
	}
}
