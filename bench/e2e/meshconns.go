package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// forwardAccepted sums potluck_back_forward_accepted_total over the Backs'
// /metrics: the tunnel connections the Backs have accepted from Fronts. Its
// growth during a run shows whether the Front reuses its keep-alive
// connections through the mesh.
func forwardAccepted(ctx context.Context, metricsAddrs []string) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	total := 0.0
	for _, addr := range metricsAddrs {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		n, err := sumCounter(io.LimitReader(resp.Body, 4<<20), "potluck_back_forward_accepted_total")
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("%s/metrics: %w", addr, err)
		}
		total += n
	}
	return total, nil
}

// sumCounter adds up every sample of the named metric in Prometheus text.
func sumCounter(r io.Reader, name string) (float64, error) {
	total := 0.0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", line, err)
		}
		total += v
	}
	return total, sc.Err()
}
