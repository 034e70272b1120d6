package dbgen

import "testing"

func FuzzParseDists(f *testing.F) {
	f.Add(distsDSS)
	f.Add("BEGIN x\nCOUNT|2\na|1\nb|-3\nEND x\n")
	f.Add("begin y\ncount|1\n# c\nz|  7 tail\nend\nBEGIN y\n")
	f.Add("BEGIN q\nCOUNT|999999999\nEND q\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseDists(text)
		if err != nil {
			return
		}
		for name, d := range m {
			if len(d.members) == 0 || len(d.members) != len(d.weights) {
				t.Fatalf("%s: %d members, %d weights", name, len(d.members), len(d.weights))
			}
			_ = d.max()
		}
		// A parsed file that has every distribution must also load or fail cleanly.
		_, _ = loadDists(text)
	})
}
