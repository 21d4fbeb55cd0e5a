// Package human reads and writes the quantities people type and read: byte
// sizes ("512MiB", "1.5 GiB") and ages ("5m", "3d").
package human

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseSize reads a size such as 512MiB, 1.5G, 300m or 2TB and returns bytes.
// Units are binary whether or not they carry an i or a b, as Docker reads
// `--memory 512m`; a bare number is in bareUnit bytes (1 for bytes, 1<<20
// for MiB).
func ParseSize(s string, bareUnit int64) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit, e.g. 512MiB or 1GiB", s)
	}
	mult := float64(bareUnit)
	if unit != "" {
		unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
		exp := strings.Index("kmgtp", unit)
		if len(unit) != 1 || exp < 0 {
			if unit != "" { // "b" alone is bytes
				return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB or TiB)", s, t[i:])
			}
			exp = -1
		}
		mult = math.Pow(1024, float64(exp+1))
	}
	bytes := math.Ceil(v * mult)
	if bytes > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(bytes), nil
}

// Bytes formats a byte count with binary units: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Age is how long ago t was, coarsely: "42s", "5m", "3h", "12d"; "-" for
// the zero time.
func Age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
