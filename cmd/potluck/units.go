package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"potluck/internal/human"
)

// parseSizeMiB parses a size such as 512MiB, 1GiB, 1.5G, 300M or 256 (MiB)
// and returns whole MiB, rounded up: the API counts MiB.
func parseSizeMiB(s string) (int64, error) {
	b, err := human.ParseSize(s, 1<<20)
	if err != nil {
		return 0, fmt.Errorf("bad %w", err)
	}
	mb := (b + 1<<20 - 1) >> 20
	if mb < 1 || mb > 1<<40 {
		return 0, fmt.Errorf("bad size %q: must be between 1MiB and 1EiB", s)
	}
	return mb, nil
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
		fmt.Fprintf(p.w, "\rpushing %s  %s  %s/s   ", p.label, human.Bytes(sent), human.Bytes(int64(rate)))
		return
	}
	frac := math.Min(float64(sent)/float64(total), 1)
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\rpushing %s [%s%s] %3.0f%%  %s/%s  %s/s   ", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100,
		human.Bytes(sent), human.Bytes(total), human.Bytes(int64(rate)))
}

func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
