package job

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Limits on resources.memory.
const (
	MinMemory = 16 << 20 // 16 MiB: less cannot hold the launcher itself
	MaxMemory = 1 << 40  // 1 TiB: the largest enclave Gramine reserves with EDMM
)

var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
	{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40},
	{"B", 0},
}

// ParseSize reads a byte size: a decimal integer followed by an optional unit,
// B, KiB, MiB, GiB, TiB or the Gramine spellings K, M, G, T (also powers of
// 1024). Decimal units (KB, MB, GB) are refused as ambiguous.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q must start with a decimal number", truncate(s))
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is out of range", truncate(s))
	}
	shift := uint(0)
	if unit != "" {
		found := false
		for _, u := range sizeUnits {
			if unit == u.suffix {
				shift, found = u.shift, true
				break
			}
		}
		if !found {
			switch strings.ToUpper(unit) {
			case "KB", "MB", "GB", "TB":
				return 0, fmt.Errorf("size %q: decimal unit %s is ambiguous, use %siB", truncate(s), unit, unit[:1])
			}
			return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB or TiB)", truncate(s), truncate(unit))
		}
	}
	if n != 0 && bits.LeadingZeros64(n) < int(shift)+1 {
		return 0, fmt.Errorf("size %q is out of range", truncate(s))
	}
	return int64(n << shift), nil
}

// FormatSize prints a size in the largest binary unit that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
