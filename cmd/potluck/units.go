package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseSizeMiB parses a size such as 512MiB, 1GiB, 1.5G, 300M or 256 (MiB)
// and returns whole MiB. Decimal units (MB, GB) are taken as their binary
// cousins, because the API counts MiB and nobody means 476.8 MiB by 500MB.
func parseSizeMiB(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("bad size %q: want e.g. 512MiB or 1GiB", s)
	}
	var mult float64
	switch unit {
	case "", "m", "mb", "mi", "mib":
		mult = 1
	case "g", "gb", "gi", "gib":
		mult = 1024
	case "t", "tb", "ti", "tib":
		mult = 1024 * 1024
	case "k", "kb", "ki", "kib":
		mult = 1.0 / 1024
	default:
		return 0, fmt.Errorf("bad size %q: unknown unit %q (use KiB, MiB, GiB or TiB)", s, t[i:])
	}
	mb := math.Ceil(v * mult)
	if mb < 1 || mb > 1<<40 {
		return 0, fmt.Errorf("bad size %q: must be between 1MiB and 1EiB", s)
	}
	return int64(mb), nil
}

// humanBytes formats a byte count with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressBar redraws one line on a terminal: label, bar, percent, bytes, rate.
type progressBar struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
	drawn bool
}

func (p *progressBar) update(sent, total int64) {
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	if p.drawn && now.Sub(p.last) < 100*time.Millisecond && sent != total {
		return // redraw at most ten times a second
	}
	p.last, p.drawn = now, true
	const width = 30
	rate := float64(sent) / math.Max(now.Sub(p.start).Seconds(), 0.001)
	if total <= 0 {
		fmt.Fprintf(p.w, "\rpushing %s  %s  %s/s   ", p.label, humanBytes(sent), humanBytes(int64(rate)))
		return
	}
	frac := math.Min(float64(sent)/float64(total), 1)
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\rpushing %s [%s%s] %3.0f%%  %s/%s  %s/s   ", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100,
		humanBytes(sent), humanBytes(total), humanBytes(int64(rate)))
}

func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
