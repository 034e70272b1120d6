package stream

import (
	"bytes"
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
// table (linear probing) whose slots hold a word's first sixteen bytes,
// lower-cased, so that a lookup of a word of up to 16 bytes compares two
// integers and never touches the key's bytes. A fused task interns its
// words' keys here (preAgg.id); the table is emptied when ids change.
type wordTable struct {
	slots []wordSlot
	mask  uint32
	n     int
}

type wordSlot struct {
	pre  uint64 // the word's first 8 bytes, lower-cased, zero-padded; 0: empty (no word byte is 0)
	pre2 uint64 // its next 8 bytes (from the 9th), the same way
	id   int32
	tag  uint16 // high bits of the hash
	n    uint16 // the word's length
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

// hashWord hashes the folded word b[i:j] whose first 8 bytes are pre. For
// a word of up to 16 bytes it is hash16 of its two prefixes.
func hashWord(b []byte, i, j int, pre uint64) uint64 {
	h := pre ^ uint64(j-i)<<56
	for k := i + 8; k < j; k += 8 {
		h = bits.RotateLeft64(h*0x9E3779B97F4A7C15, 29) ^ load(b, k, min(8, j-k))
	}
	return finish(h)
}

// hash16 is hashWord of a word of n bytes, at most 16, whose prefixes are
// pre and pre2 (slot layout).
func hash16(pre, pre2 uint64, n int) uint64 {
	h := pre ^ uint64(n)<<56
	if n > 8 {
		h = bits.RotateLeft64(h*0x9E3779B97F4A7C15, 29) ^ pre2
	}
	return finish(h)
}

func finish(h uint64) uint64 {
	hi, lo := bits.Mul64(h^0x243F6A8885A308D3, 0x9E3779B97F4A7C15)
	return hi ^ lo
}

// pre2Of returns the second prefix (wordSlot.pre2) of the word b[i:j].
func pre2Of(b []byte, i, j int) uint64 {
	if j-i <= 8 {
		return 0
	}
	return load(b, i+8, min(8, j-i-8))
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
	pre2 := pre2Of(b, i, j)
	for p := uint32(h) & t.mask; ; p = (p + 1) & t.mask {
		s := &t.slots[p]
		if s.pre == 0 {
			return 0, h, pre, false
		}
		if s.pre != pre || s.pre2 != pre2 || s.tag != tag || int(s.n) != n {
			continue
		}
		if n <= 16 {
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
				t.put(s, hashWord(wordOf(keys[s.id], int(s.n)), 0, int(s.n), s.pre))
			}
		}
	}
	t.put(wordSlot{pre: pre, pre2: pre2Of(wordOf(keys[id], n), 0, n), id: id, tag: uint16(h >> 48), n: uint16(n)}, h)
	t.n++
}

// wordOf returns the (folded) word of n bytes a key ends with.
func wordOf(k string, n int) []byte {
	return unsafe.Slice(unsafe.StringData(k[len(k)-n:]), n)
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
	one := len(s.wins) == 1
	for i := wordStart(b, 0); i < len(b); {
		if one {
			if i = s.countShort(b, i, s.wins[0]); i == len(b) {
				break
			}
		}
		j := wordEnd(b, i)
		id := s.wordID(b, i, j)
		for _, w := range s.wins {
			s.accOf(w, id).n++
		}
		i = wordStart(b, j)
	}
}

// countShort counts words from b[i] (a word's start) into window w
// while they are the common case — shorter than 16 bytes and followed by
// a byte within the 16 read, already in the table — in
// the fewest instructions: one or two 8-byte loads give the word's end,
// its table prefixes (which, for a word this short, are the whole word)
// and the next word's start. It returns where the common case stopped,
// for countWords's general loop.
func (s *sourceTask) countShort(b []byte, i int, w Window) int {
	wa := s.windowAccs(w)
	t := &s.agg.words
	if t.slots == nil {
		return i
	}
	for i+16 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		m := wordMask(x)
		var n int
		var pre, pre2, next uint64
		if end := ^m & high; end != 0 {
			n = bits.TrailingZeros64(end) >> 3 // 1 to 7: b[i] is a word byte
			pre = (x | fold) & (1<<(8*uint(n)) - 1)
			next = m >> (8 * uint(n)) // word bytes after the word's end
		} else {
			x2 := binary.LittleEndian.Uint64(b[i+8:])
			m2 := wordMask(x2)
			end := ^m2 & high
			if end == 0 {
				return i // 16 bytes or more
			}
			k := bits.TrailingZeros64(end) >> 3
			n, pre = 8+k, x|fold
			pre2 = (x2 | fold) & (1<<(8*uint(k)) - 1)
			next = m2 >> (8 * uint(k))
		}
		// Below 16 bytes, the prefixes are the whole word, and a word of
		// 16 bytes or more has no zero byte in pre2: equal prefixes are
		// the same word.
		h := hash16(pre, pre2, n)
		id := int32(-1)
		for p := uint32(h) & t.mask; ; p = (p + 1) & t.mask {
			sl := &t.slots[p]
			if sl.pre == pre && sl.pre2 == pre2 {
				id = sl.id
				break
			}
			if sl.pre == 0 {
				break
			}
		}
		if id < 0 {
			return i
		}
		if int(id) < len(wa.pos) && wa.pos[id] != 0 {
			wa.accs[wa.pos[id]-1].n++
		} else {
			// New to the window: what newAccOf does, for a count-only
			// plan, whose accumulator is its count.
			wa.put(id, len(s.agg.keys), acc{n: 1})
		}
		// The next word starts within the bytes read or after them.
		if next != 0 {
			i += n + bits.TrailingZeros64(next)>>3
		} else if n < 8 {
			i = wordStart(b, i+8)
		} else {
			i = wordStart(b, i+16)
		}
	}
	return i
}

// countText is the fused path of a plan whose only step tokenizes text
// lines (Plan.fusedText): a record's lines all have its time, and no word
// spans two lines (a line break is no word byte), so the words of its
// lines are those of its whole body, counted in one pass instead of a
// row per line. Its events are its lines, as the text decoder cuts them.
func (s *sourceTask) countText(body []byte, t int64) {
	lines := bytes.Count(body, []byte{'\n'})
	if len(body) > 0 && body[len(body)-1] != '\n' {
		lines++
	}
	if lines == 0 {
		return
	}
	s.stats.Events += int64(lines)
	s.maxTime = max(s.maxTime, t)
	if len(s.text.Vals) == 0 {
		s.text.Vals = make([]Value, len(s.pl.dec.fields))
	}
	s.text.Time = t
	for i := range s.text.Vals {
		s.text.Vals[i] = Str(unsafe.String(unsafe.SliceData(body), len(body)))
	}
	s.countWords(&s.text)
}

// Eight bytes are classified at once (SWAR, SIMD within a register): each
// byte's range test subtracts the range's bound from the byte with bit 7
// set, which never borrows from the next byte, and reads bit 7.
const (
	lanes = 0x0101010101010101
	high  = 0x8080808080808080
)

// wordMask returns x with bit 7 set in each byte that is a tokenizer word
// byte (wordBytes: an ASCII letter, digit or apostrophe) and every other
// bit clear.
func wordMask(x uint64) uint64 {
	y := x&^high | high
	f := (x|fold)&^high | high // letters folded to lower case
	letter := (f - 0x61*lanes) &^ (f - 0x7b*lanes)
	digit := (y - 0x30*lanes) &^ (y - 0x3a*lanes)
	apos := (y - 0x27*lanes) &^ (y - 0x28*lanes)
	return (letter | digit | apos) & high &^ x
}

// wordStart returns the index of the first word byte of b at or after i,
// or len(b).
func wordStart(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := wordMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && !wordBytes[b[i]] {
		i++
	}
	return i
}

// wordEnd returns the index of the first byte of b after i that is no
// word byte, or len(b).
func wordEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := ^wordMask(binary.LittleEndian.Uint64(b[i:])) & high; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && wordBytes[b[i]] {
		i++
	}
	return i
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
