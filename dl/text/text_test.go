package text

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func tokens(s string, max int) []string {
	var out []string
	Tokenize(s, max, func(t string) { out = append(out, t) })
	return out
}

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want []string
	}{
		{"Hello, World! it_s 2 fine", 0, []string{"hello", "world", "it", "s", "2", "fine"}},
		{"FREE!!! $$$ Money-back", 2, []string{"free", "money"}},
		{"Größe über ÄRGER ½", 0, []string{"größe", "über", "ärger", "½"}},
		{strings.Repeat("a", 65) + " b " + strings.Repeat("c", 64), 0, []string{"b", strings.Repeat("c", 64)}},
		{"", 0, nil},
	}
	for _, c := range cases {
		if got := tokens(c.in, c.max); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// The Go tokenizer and tokenize in examples/dl/ppml_models.py agree.
func TestTokenizerMatchesPython(t *testing.T) {
	texts := []string{"Hello, World! it_s 2 fine", "Größe über ÄRGER ½ x²", "tab\there\nnew-line 3.14 e-mail@x.org",
		strings.Repeat("z", 70) + " ok", "ÉCOLE École ÇA ça"}
	py := "import sys, json; sys.path.insert(0, '../../examples/dl'); import ppml_models as m\n" +
		"print(json.dumps([m.tokenize(t, 100) for t in json.load(sys.stdin)]))"
	cmd := exec.Command("/usr/bin/python3", "-c", py)
	in, _ := json.Marshal(texts)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3-torch is required (make deps installs it): %v", err)
	}
	var want [][]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		if got := tokens(s, 100); !slices.Equal(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
			t.Errorf("%q: Go %q, Python %q", s, got, want[i])
		}
	}
}

func TestVocabulary(t *testing.T) {
	v, err := Build([]string{"b a b c", "c b d"}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Words, []string{Unknown, "b", "c"}) {
		t.Fatalf("words %q", v.Words)
	}
	if got := v.Encode(nil, "C b zz", 0); !slices.Equal(got, []int64{2, 1, 0}) {
		t.Fatalf("ids %v", got)
	}
	for _, bad := range [][]string{{"a", "b"}, {Unknown}, {Unknown, "x", "x"}, {Unknown, "Upper"}, {Unknown, "two words"}} {
		if _, err := NewVocabulary(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := Build([]string{"!!!"}, 10, 0); err == nil {
		t.Error("a vocabulary from texts without tokens")
	}
}

func TestReadCSV(t *testing.T) {
	tb, err := ReadCSV(strings.NewReader("id,text,label\n1,\"hello, there\nfriend\",0\n2,win money,1\n"), "text", "label")
	if err != nil || len(tb.Texts) != 2 || tb.Texts[0] != "hello, there\nfriend" || !slices.Equal(tb.Labels, []int64{0, 1}) {
		t.Fatalf("%+v %v", tb, err)
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty input"},
		{"text,label\n", "no data rows"},
		{"x,label\na,1\n", `column "text" is not in the header`},
		{"text,label\nsecret words,spam\n", `label column "label", row 1: want a class index`},
		{"text,label\na,-1\n", "row 1"},
		{"text,label,text\na,1,b\n", "appears twice"},
	} {
		_, err := ReadCSV(strings.NewReader(c.in), "text", "label")
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}
