package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"potluck/apiclient"
)

// Chart geometry: every chart is drawn server-side as inline SVG (no
// script), one polyline per series over the installation's points.
const (
	chartW, chartH = 360, 90
)

// chart is one small line chart.
type chart struct {
	Title string
	// Max labels the top of the scale, Last the newest values.
	Max, Last string
	Lines     []chartLine
	Empty     bool
	W, H      int
}

type chartLine struct {
	Class  string // the line's colour (style.css)
	Label  string
	Points string // SVG polyline points
	Last   string // its newest value, labelled
}

// charts draws an installation's metrics: requests and errors per second,
// latency p50/p95, CPU and memory of its instances, instances reporting.
func charts(m *apiclient.Metrics) []chart {
	step := m.StepSeconds
	if step <= 0 {
		step = 60
	}
	ps := m.Points
	val := func(f func(apiclient.MetricsPoint) float64) []float64 {
		out := make([]float64, len(ps))
		for i, p := range ps {
			out[i] = f(p)
		}
		return out
	}
	rate := func(v float64) float64 { return v / step }
	return []chart{
		newChart("Requests per second", "/s", []string{"requests", "errors (5xx)"},
			val(func(p apiclient.MetricsPoint) float64 { return rate(p.Requests) }),
			val(func(p apiclient.MetricsPoint) float64 { return rate(p.Errors) })),
		newChart("Latency (time to header)", " ms", []string{"p50", "p95"},
			val(func(p apiclient.MetricsPoint) float64 { return p.P50MS }),
			val(func(p apiclient.MetricsPoint) float64 { return p.P95MS })),
		newChart("CPU and memory (share of limits)", " %", []string{"CPU", "memory"},
			val(func(p apiclient.MetricsPoint) float64 { return 100 * p.CPU }),
			val(func(p apiclient.MetricsPoint) float64 { return 100 * p.Memory })),
		newChart("Instances reporting", "", []string{"instances"},
			val(func(p apiclient.MetricsPoint) float64 { return float64(p.Instances) })),
	}
}

func newChart(title, unit string, labels []string, series ...[]float64) chart {
	c := chart{Title: title, W: chartW, H: chartH}
	top := 0.0
	for _, s := range series {
		for _, v := range s {
			top = math.Max(top, v)
		}
	}
	if len(series) == 0 || len(series[0]) == 0 {
		c.Empty = true
		return c
	}
	if top <= 0 {
		top = 1
	}
	c.Max = num(top) + unit
	var last []string
	for i, s := range series {
		var b strings.Builder
		n := len(s)
		for j, v := range s {
			x := float64(chartW)
			if n > 1 {
				x = float64(j) * chartW / float64(n-1)
			}
			y := chartH - v/top*(chartH-4) - 2
			fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
		}
		l := labels[i] + " " + num(s[n-1]) + unit
		c.Lines = append(c.Lines, chartLine{Class: fmt.Sprintf("l%d", i), Label: labels[i], Points: strings.TrimSpace(b.String()), Last: l})
		last = append(last, l)
	}
	c.Last = strings.Join(last, " · ")
	return c
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
