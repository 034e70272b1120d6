package stream

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// The fused count path. When a plan's last step before KeyBy tokenizes a
// field, the key is the word alone and every aggregation is a count (the
// shape of WordCount), a source task does not make a row per word and
// push it through the tokenizer's emit, the key encoder and a string map:
// it scans the text once and counts each word straight into its
// window's accumulator, finding the word's key id in a table keyed by the
// word's bytes as they stand in the text. This is operator fusion, as
// Flink's operator chaining and Spark's whole-stage code generation do
// it: the output is the one the unfused steps produce (tests compare the
// two), and a row that falls in a window already sent on takes the
// unfused path, which handles late rows.

// wordTable maps tokenizer words to key ids of a preAgg: an open-addressed
// table (linear probing) whose slots hold a word's first eight bytes,
// lower-cased, so that most lookups compare one integer and never touch
// the key's bytes. A fused task interns its words' keys here (preAgg.id);
// the table is emptied when ids change.
type wordTable struct {
	slots []wordSlot
	mask  uint32
	n     int
}

type wordSlot struct {
	pre uint64 // the word's first 8 bytes, lower-cased, zero-padded; 0: empty (no word byte is 0)
	id  int32
	tag uint16 // high bits of the hash
	n   uint16 // the word's length
}

// maxTableWord bounds the words the table holds (a slot keeps the length
// in 16 bits); a longer word takes the general key lookup.
const maxTableWord = 1<<16 - 1

// Every tokenizer word byte (ASCII letters, digits, apostrophe) has bit
// 0x20 set once lower-cased, and setting it lower-cases a capital: OR-ing
// 0x20 into each byte folds a word to the tokenizer's lower case.
const fold = 0x2020202020202020

// load returns the n (1 to 8) bytes of b at i, folded, zero-padded.
func load(b []byte, i, n int) uint64 {
	m := ^uint64(0) >> (64 - 8*uint(n))
	var x uint64
	if i+8 <= len(b) {
		x = binary.LittleEndian.Uint64(b[i:])
	} else {
		for k := n - 1; k >= 0; k-- {
			x = x<<8 | uint64(b[i+k])
		}
	}
	return (x | fold) & m
}

// hashWord hashes the folded word b[i:j] whose first 8 bytes are pre.
func hashWord(b []byte, i, j int, pre uint64) uint64 {
	h := pre ^ uint64(j-i)<<56
	for k := i + 8; k < j; k += 8 {
		h = bits.RotateLeft64(h*0x9E3779B97F4A7C15, 29) ^ load(b, k, min(8, j-k))
	}
	hi, lo := bits.Mul64(h^0x243F6A8885A308D3, 0x9E3779B97F4A7C15)
	return hi ^ lo
}

// find returns the id of word b[i:j] (at most maxTableWord bytes, all
// word bytes), or ok false with the slot hash for insert. keys are the
// preAgg's interned keys: each ends with its word.
func (t *wordTable) find(b []byte, i, j int, keys []string) (id int32, h uint64, pre uint64, ok bool) {
	n := j - i
	pre = load(b, i, min(8, n))
	h = hashWord(b, i, j, pre)
	if t.slots == nil {
		return 0, h, pre, false
	}
	tag := uint16(h >> 48)
	for p := uint32(h) & t.mask; ; p = (p + 1) & t.mask {
		s := &t.slots[p]
		if s.pre == 0 {
			return 0, h, pre, false
		}
		if s.pre != pre || s.tag != tag || int(s.n) != n {
			continue
		}
		if n <= 8 {
			return s.id, h, pre, true
		}
		k := keys[s.id]
		if foldEqual(k[len(k)-n:], b[i:j]) {
			return s.id, h, pre, true
		}
	}
}

func foldEqual(k string, w []byte) bool {
	for i, c := range w {
		if k[i] != c|0x20 {
			return false
		}
	}
	return true
}

// insert adds a word absent from the table: h and pre as find returned
// them.
func (t *wordTable) insert(h, pre uint64, n int, id int32, keys []string) {
	if (t.n+1)*2 > len(t.slots) {
		old := t.slots
		t.slots = make([]wordSlot, max(256, 2*len(old)))
		t.mask = uint32(len(t.slots) - 1)
		for _, s := range old {
			if s.pre != 0 {
				// A slot keeps 16 bits of its hash: rehash the word
				// (folded already) from its key.
				k := keys[s.id]
				w := unsafe.Slice(unsafe.StringData(k[len(k)-int(s.n):]), s.n)
				t.put(s, hashWord(w, 0, len(w), s.pre))
			}
		}
	}
	t.put(wordSlot{pre: pre, id: id, tag: uint16(h >> 48), n: uint16(n)}, h)
	t.n++
}

func (t *wordTable) put(s wordSlot, h uint64) {
	for p := uint32(h) & t.mask; ; p = (p + 1) & t.mask {
		if t.slots[p].pre == 0 {
			t.slots[p] = s
			return
		}
	}
}

// countWords is the fused Tokenize→KeyBy(word)→count step: r is the row
// the tokenizer would get.
func (s *sourceTask) countWords(r *Row) {
	if r.Time != s.winTime || len(s.wins) == 0 {
		s.wins = s.pl.Window.assign(r.Time, s.wins[:0])
		s.winTime = r.Time
	}
	for _, w := range s.wins {
		if w.maxTs() <= s.emitted {
			s.unfused(r) // the general path sets late rows aside
			return
		}
	}
	text := r.Vals[s.pl.tokenSrc].Text()
	b := unsafe.Slice(unsafe.StringData(text), len(text))
	for i := 0; i < len(b); {
		for i < len(b) && !wordBytes[b[i]] {
			i++
		}
		j := i
		for j < len(b) && wordBytes[b[j]] {
			j++
		}
		if j == i {
			break
		}
		id := s.wordID(b, i, j)
		for _, w := range s.wins {
			s.accOf(w, id).n++
		}
		i = j
	}
}

// wordID returns the key id of the word b[i:j], interning it.
func (s *sourceTask) wordID(b []byte, i, j int) int32 {
	t := &s.agg.words
	var h, pre uint64
	if j-i <= maxTableWord {
		id, hh, p, ok := t.find(b, i, j, s.agg.keys)
		if ok {
			return id
		}
		h, pre = hh, p
	}
	s.word = append(s.word[:0], b[i:j]...)
	for k, c := range s.word {
		s.word[k] = c | 0x20
	}
	e := enc{b: s.key[:0]}
	e.value(Str(unsafe.String(unsafe.SliceData(s.word), len(s.word))))
	s.key = e.b
	if j-i > maxTableWord {
		return s.agg.id(s.key)
	}
	id := s.agg.add(s.key) // the table is where the fused path's keys are interned
	t.insert(h, pre, j-i, id, s.agg.keys)
	return id
}

// tableWord returns the word of key k when k is a string the word table
// holds (the key of a word of the fused path).
func tableWord(k []byte) ([]byte, bool) {
	if len(k) < 2 || Kind(k[0]) != String {
		return nil, false
	}
	n, m := binary.Uvarint(k[1:])
	if m <= 0 || n == 0 || n > maxTableWord || uint64(len(k)-1-m) != n {
		return nil, false
	}
	w := k[1+m:]
	for _, c := range w {
		if !wordBytes[c] || c != c|0x20 {
			return nil, false // not a folded word: no word of the fused path
		}
	}
	return w, true
}
