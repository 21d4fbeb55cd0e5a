// Package metrics holds lock-free counters and latency histograms and writes
// them in the Prometheus text exposition format. There is no global registry:
// each owner keeps its own values and writes them on demand.
package metrics

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Add increases the counter by n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc increases the counter by one.
func (c *Counter) Inc() { c.v.Add(1) }

// Load returns the current value.
func (c *Counter) Load() uint64 { return c.v.Load() }

// LatencyBuckets are the histogram upper bounds, in seconds.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// latencyBoundsNanos mirrors latencyBuckets in nanoseconds for the hot path.
var latencyBoundsNanos = func() (b [len(latencyBuckets)]int64) {
	for i, s := range latencyBuckets {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// Histogram counts latencies into fixed buckets.
type Histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // last is +Inf
	sumNS  atomic.Int64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(latencyBoundsNanos) && ns > latencyBoundsNanos[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNS.Add(ns)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Writer writes Prometheus text, emitting each metric family's HELP/TYPE once.
type Writer struct {
	w    io.Writer
	seen map[string]bool
	err  error
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, seen: map[string]bool{}} }

// Err returns the first write error.
func (pw *Writer) Err() error { return pw.err }

func (pw *Writer) header(name, typ, help string) {
	if pw.seen[name] {
		return
	}
	pw.seen[name] = true
	pw.printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (pw *Writer) printf(format string, args ...any) {
	if pw.err != nil {
		return
	}
	_, pw.err = fmt.Fprintf(pw.w, format, args...)
}

// Labels renders label pairs (key, value, key, value...).
func Labels(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escape(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func escape(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// Counter writes one counter sample.
func (pw *Writer) Counter(name, help, labels string, v uint64) {
	pw.header(name, "counter", help)
	pw.printf("%s%s %d\n", name, labels, v)
}

// Gauge writes one gauge sample.
func (pw *Writer) Gauge(name, help, labels string, v float64) {
	pw.header(name, "gauge", help)
	pw.printf("%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
}

// Histogram writes one histogram (buckets, sum, count) in seconds.
func (pw *Writer) Histogram(name, help, labels string, h *Histogram) {
	pw.header(name, "histogram", help)
	inner := strings.TrimSuffix(strings.TrimPrefix(labels, "{"), "}")
	sep := ""
	if inner != "" {
		sep = ","
	}
	var cum uint64
	for i, le := range latencyBuckets {
		cum += h.counts[i].Load()
		pw.printf("%s_bucket{%s%sle=\"%s\"} %d\n", name, inner, sep, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += h.counts[len(latencyBuckets)].Load()
	pw.printf("%s_bucket{%s%sle=\"+Inf\"} %d\n", name, inner, sep, cum)
	pw.printf("%s_sum%s %s\n", name, labels, strconv.FormatFloat(time.Duration(h.sumNS.Load()).Seconds(), 'g', -1, 64))
	pw.printf("%s_count%s %d\n", name, labels, cum)
}

// BoundsSeconds are the histogram's bucket upper bounds, in seconds; a
// snapshot has one count more (above the last bound).
func BoundsSeconds() []float64 { return append([]float64(nil), latencyBuckets[:]...) }

// Snapshot returns the count in each bucket (not cumulative; the last is
// above the last bound) and the sum of all observations.
func (h *Histogram) Snapshot() (counts []uint64, sum time.Duration) {
	counts = make([]uint64, len(h.counts))
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
	}
	return counts, time.Duration(h.sumNS.Load())
}
