package dbgen

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// distsDSS is dbgen's distributions file. It is a byte-for-byte copy of
// dbgen/dists.dss from github.com/gregrahn/tpch-kit (commit 852ad0a5), which is
// the same text DuckDB compiles into extension/tpch/dbgen/include/dbgen/dists_dss.h
// (DuckDB's string lacks only the final newline). It is data from the TPC dbgen
// distribution and carries the TPC's terms; see /work/shared/testdata/tpch/README.md.
//
//go:embed dists.dss
var distsDSS string

// dist is one named distribution: members with cumulative weights, exactly as
// dbgen's read_dist stores them (each weight is the running sum of the file's
// integers, which is what makes the "nations" block yield region keys).
type dist struct {
	name    string
	members []string
	weights []int64 // cumulative
}

func (d *dist) max() int64 { return d.weights[len(d.weights)-1] }

// parseDists parses a dists.dss file the way dbgen's read_dist does: '#' starts a
// comment, blocks run from "BEGIN name" to a line starting with "END", entries are
// "text|integer", and a "count|n" line announces the number of entries. Lines that
// do not match "text|integer" are skipped, as sscanf("%[^|]|%ld") skips them.
func parseDists(text string) (map[string]*dist, error) {
	out := map[string]*dist{}
	var cur *dist
	declared := -1
	for n, line := range strings.Split(text, "\n") {
		lineNo := n + 1
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line == "" {
			continue
		}
		if cur == nil {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.EqualFold(f[0], "BEGIN") {
				continue
			}
			name := strings.ToLower(f[1])
			if _, dup := out[name]; dup {
				// read_dist returns the first block with a name; later ones are ignored.
				cur = &dist{name: "\x00ignored"}
			} else {
				cur = &dist{name: name}
			}
			declared = -1
			continue
		}
		if len(line) >= 3 && strings.EqualFold(line[:3], "END") {
			if cur.name != "\x00ignored" {
				if declared < 0 {
					return nil, fmt.Errorf("dists: block %q has no count line", cur.name)
				}
				if len(cur.members) != declared {
					return nil, fmt.Errorf("dists: block %q declares %d entries but has %d", cur.name, declared, len(cur.members))
				}
				if declared == 0 {
					return nil, fmt.Errorf("dists: block %q is empty", cur.name)
				}
				out[cur.name] = cur
			}
			cur = nil
			continue
		}
		bar := strings.IndexByte(line, '|')
		if bar <= 0 {
			continue
		}
		token := line[:bar]
		w, ok := scanLong(line[bar+1:])
		if !ok {
			continue
		}
		if strings.EqualFold(token, "count") {
			if w < 0 || w > 1<<16 {
				return nil, fmt.Errorf("dists: line %d: count %d out of range", lineNo, w)
			}
			declared = int(w)
			cur.members = cur.members[:0]
			cur.weights = cur.weights[:0]
			continue
		}
		if declared < 0 {
			return nil, fmt.Errorf("dists: line %d: entry before count in block %q", lineNo, cur.name)
		}
		if len(cur.members) >= declared {
			return nil, fmt.Errorf("dists: line %d: block %q has more entries than its count %d", lineNo, cur.name, declared)
		}
		prev := int64(0)
		if len(cur.weights) > 0 {
			prev = cur.weights[len(cur.weights)-1]
		}
		cur.members = append(cur.members, token)
		cur.weights = append(cur.weights, prev+w)
	}
	if cur != nil && cur.name != "\x00ignored" {
		return nil, fmt.Errorf("dists: block %q has no END line", cur.name)
	}
	return out, nil
}

// scanLong mimics sscanf's %ld: optional leading blanks, optional sign, digits;
// anything after the digits is ignored.
func scanLong(s string) (int64, bool) {
	s = strings.TrimLeft(s, " \t\r\v\f")
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	digits := end
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == digits || end-digits > 12 {
		return 0, false
	}
	v, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// dists holds the distributions the generator uses, resolved once.
type dists struct {
	colors, pTypes, pCntr, mseg, nations, regions, oPrio, instruct, smode, rflag *dist
	nouns, verbs, adjectives, adverbs, auxillaries, prepositions, terminators    *dist
	grammar, np, vp                                                              *dist
}

func loadDists(text string) (*dists, error) {
	m, err := parseDists(text)
	if err != nil {
		return nil, err
	}
	get := func(name string) (*dist, error) {
		d, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("dists: missing distribution %q", name)
		}
		return d, nil
	}
	var d dists
	for _, f := range []struct {
		dst  **dist
		name string
	}{
		{&d.colors, "colors"}, {&d.pTypes, "p_types"}, {&d.pCntr, "p_cntr"}, {&d.mseg, "msegmnt"},
		{&d.nations, "nations"}, {&d.regions, "regions"}, {&d.oPrio, "o_oprio"}, {&d.instruct, "instruct"},
		{&d.smode, "smode"}, {&d.rflag, "rflag"}, {&d.nouns, "nouns"}, {&d.verbs, "verbs"},
		{&d.adjectives, "adjectives"}, {&d.adverbs, "adverbs"}, {&d.auxillaries, "auxillaries"},
		{&d.prepositions, "prepositions"}, {&d.terminators, "terminators"}, {&d.grammar, "grammar"},
		{&d.np, "np"}, {&d.vp, "vp"},
	} {
		if *f.dst, err = get(f.name); err != nil {
			return nil, err
		}
	}
	// The sentence generator hard-codes the forms of these grammars, as DuckDB's does.
	for _, c := range []struct {
		d *dist
		n int
	}{{d.grammar, 5}, {d.np, 4}, {d.vp, 4}} {
		if len(c.d.members) != c.n {
			return nil, fmt.Errorf("dists: %q has %d forms, want %d", c.d.name, len(c.d.members), c.n)
		}
	}
	if len(d.colors.members) < partNameWords {
		return nil, fmt.Errorf("dists: colors has %d members, need at least %d", len(d.colors.members), partNameWords)
	}
	return &d, nil
}
