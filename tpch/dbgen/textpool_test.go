package dbgen

import "testing"

func testWords(t *testing.T) *words {
	t.Helper()
	d, err := loadDists(distsDSS)
	if err != nil {
		t.Fatal(err)
	}
	return newWords(d)
}

// The first checkpoints of DuckDB's table of text-pool checkpoints
// (extension/tpch/dbgen/include/dbgen/text_pool_checkpoints.h in later DuckDB
// versions, which lazily build a 300 MiB pool): the start offset and RNG state of
// the sentence covering byte k·256 KiB. Our sentence generator reproduces them,
// so it emits DuckDB's sentences, of the same lengths, from the same stream.
var duckdbCheckpoints = []checkpoint{
	{0, 933588178}, {262123, 889213480}, {524232, 237762931}, {786403, 684048297},
	{1048550, 2056604121}, {1310645, 346445682}, {1572798, 1054494518}, {1834951, 1410812742},
	{2097144, 817202612}, {2359272, 65263170}, {2621427, 2015881121}, {2883578, 1512717589},
	{3145715, 1939727581}, {3407868, 207163683}, {3670009, 725145837}, {3932128, 2057792724},
}

type checkpoint struct{ offset, seed uint32 }

// checkpoints replays the pool's sentences and records, for each multiple of
// 256 KiB, the start and RNG state of the sentence covering it.
func checkpoints(w *words, n int) []checkpoint {
	cps := make([]checkpoint, 0, n)
	s := stream{value: textPoolInitial}
	var sentence [maxSentenceLen]byte
	pos := 0
	for len(cps) < n {
		start, seed := pos, s.value
		b := w.sentence(sentence[:0], &s)
		for len(cps) < n && len(cps)<<18 < pos+len(b) {
			cps = append(cps, checkpoint{uint32(start), uint32(seed)})
		}
		pos += len(b)
	}
	return cps
}

func TestSentencesMatchDuckDBCheckpoints(t *testing.T) {
	got := checkpoints(testWords(t), len(duckdbCheckpoints))
	for k, want := range duckdbCheckpoints {
		if got[k] != want {
			t.Errorf("checkpoint %d = %v, DuckDB has %v", k, got[k], want)
		}
	}
}

func TestSentence(t *testing.T) {
	w := testWords(t)
	s := stream{value: textPoolInitial}
	var first []byte
	for i := 0; i < 3; i++ {
		first = w.sentence(first, &s)
	}
	t.Logf("pool starts %q", first)
	if first[len(first)-1] != ' ' {
		t.Fatal("sentence does not end with a blank")
	}
}
