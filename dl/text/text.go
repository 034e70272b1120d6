// Package text turns texts into the token ids the text classifier reads: a tokenizer, a
// vocabulary built from training texts, and a reader of text tables (CSV or Parquet with a
// text column and an integer label column).
//
// Tokenizer (the same as tokenize in examples/dl/ppml_models.py): the text is lower-cased
// (Unicode simple case mapping), its tokens are the maximal runs of letters and numbers
// (Unicode categories L and N; everything else separates), runs longer than 64 characters are
// skipped, and at most maxTokens tokens are kept from the start of the text.
package text

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTokenLen is the longest token kept, in characters.
const MaxTokenLen = 64

// Unknown is the word at id 0: every token not in the vocabulary.
const Unknown = "<unk>"

// Tokenize calls fn for each of the first maxTokens tokens of s (maxTokens ≤ 0: all).
func Tokenize(s string, maxTokens int, fn func(tok string)) {
	var b strings.Builder
	runes, n := 0, 0
	flush := func() bool {
		if runes > 0 && runes <= MaxTokenLen {
			fn(b.String())
			n++
		}
		b.Reset()
		runes = 0
		return maxTokens > 0 && n >= maxTokens
	}
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			if runes <= MaxTokenLen {
				b.WriteRune(unicode.ToLower(r))
			}
			runes++
			continue
		}
		if runes > 0 && flush() {
			return
		}
	}
	flush()
}

// Vocabulary maps tokens to ids: Words[0] is Unknown, the others are distinct tokens.
type Vocabulary struct {
	Words []string
	index map[string]int64
}

// NewVocabulary checks a word list (from a model file) and indexes it.
func NewVocabulary(words []string) (*Vocabulary, error) {
	if len(words) < 2 || words[0] != Unknown {
		return nil, fmt.Errorf("vocabulary: want %q followed by at least one word", Unknown)
	}
	v := &Vocabulary{Words: words, index: make(map[string]int64, len(words))}
	for i, w := range words[1:] {
		if !isToken(w) {
			return nil, fmt.Errorf("vocabulary: word %d is not a token the tokenizer makes", i+1)
		}
		if _, dup := v.index[w]; dup {
			return nil, fmt.Errorf("vocabulary: word %d appears twice", i+1)
		}
		v.index[w] = int64(i + 1)
	}
	return v, nil
}

func isToken(w string) bool {
	if w == "" || !utf8.ValidString(w) || utf8.RuneCountInString(w) > MaxTokenLen {
		return false
	}
	for _, r := range w {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r)) || unicode.ToLower(r) != r {
			return false
		}
	}
	return true
}

// Build makes a vocabulary of at most size words from texts: Unknown, then the most frequent
// tokens (ties in byte order of the token), counting the first maxTokens tokens of each text.
func Build(texts []string, size, maxTokens int) (*Vocabulary, error) {
	if size < 2 {
		return nil, errors.New("vocabulary: size must be at least 2")
	}
	counts := map[string]int{}
	for _, t := range texts {
		Tokenize(t, maxTokens, func(tok string) { counts[tok]++ })
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.SortFunc(words, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	if len(words) > size-1 {
		words = words[:size-1]
	}
	if len(words) == 0 {
		return nil, errors.New("vocabulary: the training texts hold no tokens")
	}
	return NewVocabulary(append([]string{Unknown}, words...))
}

// Encode appends the ids of the first maxTokens tokens of s to dst.
func (v *Vocabulary) Encode(dst []int64, s string, maxTokens int) []int64 {
	Tokenize(s, maxTokens, func(tok string) { dst = append(dst, v.index[tok]) })
	return dst
}
