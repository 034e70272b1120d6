package streambench

import (
	"math/rand/v2"
	"strings"
)

// Text returns size bytes (about) of deterministic English-like text:
// lines of 6 to 14 words drawn with Zipf's law from a vocabulary of 30,000
// pseudo-words, so word counts have a realistic long tail.
func Text(size int64) []byte {
	rng := rand.New(rand.NewPCG(2024, 16))
	syll := []string{"ka", "lo", "mi", "ren", "to", "sa", "the", "ver", "an", "de", "qu", "is", "or", "pe", "li", "un", "ma", "sto", "ri", "en"}
	vocab := make([]string, 30000)
	seen := map[string]bool{}
	for i := range vocab {
		for {
			var b strings.Builder
			for n := 1 + rng.IntN(4); n > 0; n-- {
				b.WriteString(syll[rng.IntN(len(syll))])
			}
			w := b.String()
			if i%7 == 0 {
				w = strings.ToUpper(w[:1]) + w[1:] // some capitals: the tokenizer lower-cases
			}
			if !seen[strings.ToLower(w)] {
				seen[strings.ToLower(w)] = true
				vocab[i] = w
				break
			}
		}
	}
	z := rand.NewZipf(rng, 1.1, 2, uint64(len(vocab)-1))
	out := make([]byte, 0, size+200)
	for int64(len(out)) < size {
		n := 6 + rng.IntN(9)
		for i := 0; i < n; i++ {
			if i > 0 {
				out = append(out, ' ')
			}
			out = append(out, vocab[z.Uint64()]...)
			if rng.IntN(12) == 0 {
				out = append(out, ',')
			}
		}
		out = append(out, ".\n"...)
	}
	return out
}

// countWords counts lower-cased runs of ASCII letters, digits and
// apostrophes (the stream engine's tokenizer) into m.
func countWords(b []byte, m map[string]int64) int64 {
	var n int64
	var buf []byte
	for i := 0; i < len(b); {
		for i < len(b) && !wordByte(b[i]) {
			i++
		}
		j := i
		for j < len(b) && wordByte(b[j]) {
			j++
		}
		if j > i {
			buf = append(buf[:0], b[i:j]...)
			for k, c := range buf {
				if c >= 'A' && c <= 'Z' {
					buf[k] = c + 'a' - 'A'
				}
			}
			m[string(buf)]++
			n++
		}
		i = j
	}
	return n
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '\''
}
