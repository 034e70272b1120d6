package dbgen

import "unsafe"

// The text pool: pseudo-English generated from the grammar in dists.dss with
// stream 5, sentence after sentence; comments are random slices of it
// (dbg_text). DuckDB's dbgen up to the version that produced the published
// answers builds a 10 MiB pool (load_dists(10 * 1024 * 1024)); TPC's dbgen (and
// later DuckDB) builds 300 MiB. Both start with the same text.
const (
	duckDBPoolSize  = 10 * 1024 * 1024
	tpcPoolSize     = 300 * 1024 * 1024
	maxSentenceLen  = 256
	textPoolInitial = 933588178 // Seed[5]
)

// textPool is the generated pool; it is immutable, so strings alias it.
type textPool struct {
	buf  []byte
	size int64
}

// words are the sentence grammar's word lists with dbgen's weight→word index.
type words struct {
	nouns, adjectives, adverbs, auxillaries, verbs, prepositions []string
	terminators                                                  *dist
	grammar, np, vp                                              *dist
}

func weightIndex(d *dist) []string {
	idx := make([]string, d.max()+1)
	i := 0
	for w := int64(0); w <= d.max(); w++ {
		for d.weights[i] < w {
			i++
		}
		idx[w] = d.members[i]
	}
	return idx
}

func newWords(d *dists) *words {
	return &words{
		nouns: weightIndex(d.nouns), adjectives: weightIndex(d.adjectives), adverbs: weightIndex(d.adverbs),
		auxillaries: weightIndex(d.auxillaries), verbs: weightIndex(d.verbs), prepositions: weightIndex(d.prepositions),
		terminators: d.terminators, grammar: d.grammar, np: d.np, vp: d.vp,
	}
}

func (w *words) word(dst []byte, s *stream, idx []string) []byte {
	j := s.unifInt(1, int64(len(idx)-1))
	dst = append(dst, idx[j]...)
	return append(dst, ' ')
}

// form draws a weight and returns how many of the first n cumulative weights lie
// below it: the index of the chosen form, as DuckDB's gen_sentence, gen_np and
// gen_vp compute it.
func form(d *dist, s *stream, n int) int {
	j := s.unifInt(1, d.max())
	k := 0
	for i := 0; i < n; i++ {
		if d.weights[i] < j {
			k++
		}
	}
	return k
}

func (w *words) nounPhrase(dst []byte, s *stream) []byte {
	switch form(w.np, s, 3) {
	case 0: // N
		dst = w.word(dst, s, w.nouns)
	case 1: // J N
		dst = w.word(dst, s, w.adjectives)
		dst = w.word(dst, s, w.nouns)
	case 2: // J, J N
		dst = w.word(dst, s, w.adjectives)
		dst[len(dst)-1] = ','
		dst = append(dst, ' ')
		dst = w.word(dst, s, w.adjectives)
		dst = w.word(dst, s, w.nouns)
	default: // D J N
		dst = w.word(dst, s, w.adverbs)
		dst = w.word(dst, s, w.adjectives)
		dst = w.word(dst, s, w.nouns)
	}
	return dst
}

func (w *words) verbPhrase(dst []byte, s *stream) []byte {
	switch form(w.vp, s, 3) {
	case 0: // V
		dst = w.word(dst, s, w.verbs)
	case 1: // X V
		dst = w.word(dst, s, w.auxillaries)
		dst = w.word(dst, s, w.verbs)
	case 2: // V D
		dst = w.word(dst, s, w.verbs)
		dst = w.word(dst, s, w.adverbs)
	default: // X V D
		dst = w.word(dst, s, w.auxillaries)
		dst = w.word(dst, s, w.verbs)
		dst = w.word(dst, s, w.adverbs)
	}
	return dst
}

func (w *words) prepPhrase(dst []byte, s *stream) []byte {
	dst = w.word(dst, s, w.prepositions)
	dst = append(dst, "the "...)
	return w.nounPhrase(dst, s)
}

// terminator replaces the trailing blank with a punctuation mark.
func (w *words) terminator(dst []byte, s *stream) []byte {
	t := w.terminators
	j := s.unifInt(1, t.max())
	i := 0
	for t.weights[i] < j {
		i++
	}
	dst = append(dst[:len(dst)-1], t.members[i]...)
	return dst
}

// sentence appends one sentence and its trailing blank (DuckDB's gen_sentence).
func (w *words) sentence(dst []byte, s *stream) []byte {
	switch form(w.grammar, s, 4) {
	case 0: // N V T
		dst = w.nounPhrase(dst, s)
		dst = w.verbPhrase(dst, s)
	case 1: // N V P T
		dst = w.nounPhrase(dst, s)
		dst = w.verbPhrase(dst, s)
		dst = w.prepPhrase(dst, s)
	case 2: // N V N T
		dst = w.nounPhrase(dst, s)
		dst = w.verbPhrase(dst, s)
		dst = w.nounPhrase(dst, s)
	case 3: // N P V N T
		dst = w.nounPhrase(dst, s)
		dst = w.prepPhrase(dst, s)
		dst = w.verbPhrase(dst, s)
		dst = w.nounPhrase(dst, s)
	default: // N P V P T
		dst = w.nounPhrase(dst, s)
		dst = w.prepPhrase(dst, s)
		dst = w.verbPhrase(dst, s)
		dst = w.prepPhrase(dst, s)
	}
	dst = w.terminator(dst, s)
	return append(dst, ' ')
}

func newTextPool(w *words, size int) *textPool {
	buf := make([]byte, 0, size+maxSentenceLen)
	s := stream{value: textPoolInitial}
	for len(buf) < size {
		buf = w.sentence(buf, &s)
	}
	return &textPool{buf: buf[:size], size: int64(size)}
}

// text is dbgen's dbg_text: a slice of the pool of length in [min, max] at a
// random offset. The string aliases the pool (no copy).
func (p *textPool) text(minLen, maxLen int64, s *stream) string {
	off := s.unifInt(0, p.size-maxLen)
	n := s.unifInt(minLen, maxLen)
	return unsafe.String(&p.buf[off], int(n))
}
