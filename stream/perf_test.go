package stream

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// BenchmarkSourceWords measures a WordCount source task's work per record
// of 100 lines (decode, tokenize, pre-aggregate), without the record's
// decryption: the per-word path that dominates the stream benchmark.
func BenchmarkSourceWords(b *testing.B) {
	pl := wordCountPlan(b)
	bodies := wordBodies(200)
	w := &worker{plan: pl}
	s := newSourceTask(w, TaskID{pl.Source.Stream, 0}, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := bodies[i%len(bodies)]
		if err := s.runBody(body, int64(i/50)*60000); err != nil {
			b.Fatal(err)
		}
		if len(s.agg.wins) > 2 {
			clear(s.agg.wins)
		}
	}
}

func wordCountPlan(tb testing.TB) *Plan {
	p := NewPipeline("wc")
	lines := p.Read(Source{Stream: "text", Partitions: 4, Format: FormatText})
	words := Tokenize(lines, "line", "word")
	win := WindowInto(KeyBy(words, "word"), TumblingWindows(time.Minute), 0)
	Write(GroupByKey(win, Agg{Name: "count", Op: Count}), Sink{Stream: "counts"})
	pl, err := p.Compile()
	if err != nil {
		tb.Fatal(err)
	}
	return pl
}

// wordBodies returns n bodies of 100 lines of Zipf-distributed words over
// a vocabulary of 30,000 of 2 to 14 bytes (as the benchmark's text has
// them: short words common, words past 8 bytes a third), some capitalized.
func wordBodies(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 30000)
	for i := range vocab {
		w := fmt.Sprintf("w%d", i)
		vocab[i] = w + strings.Repeat("x", max(0, 2+rng.IntN(13)-len(w)))
		if i%7 == 0 {
			vocab[i] = strings.ToUpper(vocab[i])
		}
	}
	z := rand.NewZipf(rng, 1.1, 2, uint64(len(vocab)-1))
	var out [][]byte
	for range n {
		var b []byte
		for range 100 {
			for j := range 10 {
				if j > 0 {
					b = append(b, ' ')
				}
				b = append(b, vocab[z.Uint64()]...)
			}
			b = append(b, ".\n"...)
		}
		out = append(out, b)
	}
	return out
}
