// Package units parses sizes the way xfs_io does (libfrog's cvtnum), so
// that xfsimg accepts the same command lines.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize parses an xfs_io size: an integer as strtoll reads it with base
// 0 (decimal, 0x hex, leading-0 octal, an optional sign), optionally
// followed by one unit letter, either case: k, m, g, t, p, e (powers of
// 1024), b (file system blocks of blockSize bytes) or s (sectors of
// sectSize bytes). A zero blockSize or sectSize refuses that unit.
// Negative results are returned as they are: callers decide, as xfs_io's
// commands do.
func ParseSize(s string, blockSize, sectSize int64) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	if i < len(t) && (t[i] == '+' || t[i] == '-') {
		i++
	}
	base := 10
	digits := "0123456789"
	switch {
	case strings.HasPrefix(strings.ToLower(t[i:]), "0x") && i+2 < len(t) && strings.ContainsRune("0123456789abcdefABCDEF", rune(t[i+2])):
		base, digits = 16, "0123456789abcdefABCDEF"
		i += 2
	case strings.HasPrefix(t[i:], "0"):
		base, digits = 8, "01234567"
	}
	j := i
	for j < len(t) && strings.IndexByte(digits, t[j]) >= 0 {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	num := t[:j]
	if base == 16 {
		num = t[:i-2] + t[i:j]
	}
	v, err := strconv.ParseInt(num, base, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	rest := t[j:]
	if rest == "" {
		return v, nil
	}
	if len(rest) != 1 {
		return 0, fmt.Errorf("invalid size %q (use a byte count with an optional k, m, g, t, p, e, b or s unit)", s)
	}
	var mult int64
	switch rest[0] | 0x20 {
	case 'k':
		mult = 1 << 10
	case 'm':
		mult = 1 << 20
	case 'g':
		mult = 1 << 30
	case 't':
		mult = 1 << 40
	case 'p':
		mult = 1 << 50
	case 'e':
		mult = 1 << 60
	case 'b':
		mult = blockSize
	case 's':
		mult = sectSize
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q", s, rest)
	}
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unit %q needs a file system", s, rest)
	}
	if v > math.MaxInt64/mult || v < math.MinInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v * mult, nil
}
