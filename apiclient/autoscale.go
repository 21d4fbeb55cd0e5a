package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Autoscale is an installation's autoscaling settings.
type Autoscale struct {
	Enabled   bool    `json:"enabled"`
	Policy    string  `json:"policy"`
	Min       int     `json:"min"`
	Max       int     `json:"max"`
	CPUTarget float64 `json:"cpu_target"`
	// Interval is in nanoseconds on the wire (a Go duration).
	Interval      time.Duration `json:"interval"`
	LastOperation time.Time     `json:"last_operation"`
}

// AutoscaleEvent is one scaling operation the autoscaler committed.
type AutoscaleEvent struct {
	At     time.Time `json:"at"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Source string    `json:"source"`
	Reason string    `json:"reason"`
}

// AutoscaleDecision is one decision of the leader's autoscaler (holds
// included; Applied when it scaled).
type AutoscaleDecision struct {
	At       time.Time `json:"at"`
	From     int       `json:"from"`
	To       int       `json:"to"`
	Source   string    `json:"source"`
	Reason   string    `json:"reason"`
	Forecast float64   `json:"forecast"`
	Applied  bool      `json:"applied"`
}

// AutoscaleStatus answers GET and PUT /v1/installations/NAME/autoscale.
type AutoscaleStatus struct {
	Installation string              `json:"installation"`
	Backs        int                 `json:"backs"`
	Policy       Autoscale           `json:"policy"`
	IntervalText string              `json:"interval_text"`
	Events       []AutoscaleEvent    `json:"events"`
	Decisions    []AutoscaleDecision `json:"decisions"`
}

// AutoscaleRequest changes the settings; nil fields keep their value.
// Interval is a Go duration ("25m").
type AutoscaleRequest struct {
	Enabled   *bool    `json:"enabled,omitempty"`
	Policy    *string  `json:"policy,omitempty"`
	Min       *int     `json:"min,omitempty"`
	Max       *int     `json:"max,omitempty"`
	CPUTarget *float64 `json:"cpu_target,omitempty"`
	Interval  *string  `json:"interval,omitempty"`
}

// MetricsPoint is one step of an installation's metrics.
type MetricsPoint struct {
	At        time.Time `json:"at"`
	Requests  float64   `json:"requests"`
	Errors    float64   `json:"errors"`
	P50MS     float64   `json:"p50_ms"`
	P95MS     float64   `json:"p95_ms"`
	MeanMS    float64   `json:"mean_ms"`
	CPU       float64   `json:"cpu"`
	Memory    float64   `json:"memory"`
	Instances int       `json:"instances"`
	Fronts    bool      `json:"fronts"`
	Backs     bool      `json:"backs"`
}

// Metrics answers GET /v1/installations/NAME/metrics.
type Metrics struct {
	Installation string         `json:"installation"`
	StepSeconds  float64        `json:"step_seconds"`
	Points       []MetricsPoint `json:"points"`
}

// Autoscale reads an installation's autoscaling settings and decisions.
func (c *Client) Autoscale(ctx context.Context, name string) (*AutoscaleStatus, error) {
	var v AutoscaleStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/installations/"+url.PathEscape(name)+"/autoscale", nil, nil, &v)
	return &v, err
}

// SetAutoscale changes an installation's autoscaling settings.
func (c *Client) SetAutoscale(ctx context.Context, name string, req AutoscaleRequest) (*AutoscaleStatus, error) {
	var v AutoscaleStatus
	_, err := c.do(ctx, http.MethodPut, "/v1/installations/"+url.PathEscape(name)+"/autoscale", nil, req, &v)
	return &v, err
}

// Metrics reads an installation's time series (kept by the leader).
func (c *Client) Metrics(ctx context.Context, name string) (*Metrics, error) {
	var v Metrics
	_, err := c.do(ctx, http.MethodGet, "/v1/installations/"+url.PathEscape(name)+"/metrics", nil, nil, &v)
	return &v, err
}
