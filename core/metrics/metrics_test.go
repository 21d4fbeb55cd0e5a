package metrics

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAlsoWritesOtherPartsAfterTheCore: a part's own metrics (the DNS
// server's) follow the core's in every scrape.
func TestAlsoWritesOtherPartsAfterTheCore(t *testing.T) {
	r := New(func() []Gauge { return []Gauge{{Name: "potluck_core_installations", Help: "Installations.", Value: 2}} })
	r.Observe("GET /v1/status", "GET", 200, time.Millisecond)
	r.Also(func(w io.Writer) { fmt.Fprintln(w, "potluck_dns_part_total 7") })
	var b strings.Builder
	r.Write(&b)
	out := b.String()
	require.Contains(t, out, `potluck_core_api_requests_total{route="GET /v1/status",method="GET",code="200"} 1`)
	require.Contains(t, out, "potluck_core_installations 2")
	require.True(t, strings.HasSuffix(out, "potluck_dns_part_total 7\n"), out)
}
