package autoscale

import (
	"errors"
	"fmt"
	"math"
)

// Forecaster predicts a series' next values.
type Forecaster interface {
	// Forecast returns the predicted values 1..horizon steps after the
	// last point of series, and the root mean square of its one-step
	// errors over the series (how far to trust it).
	Forecast(series []float64, horizon int) (path []float64, sigma float64, err error)
	Name() string
}

// errShort is returned for a series too short to fit.
var errShort = errors.New("autoscale: series too short to forecast")

// Holt is Holt's linear-trend exponential smoothing with a damped trend:
// level ℓ, trend b, ŷ(t+h) = ℓ + (φ + φ² + … + φʰ)·b. It needs no
// seasonality, which 125 one-minute points (2 h) could not show anyway,
// follows a ramp within a few minutes, and the damping keeps a steep ramp
// from being extrapolated without end. bench/autoscale picked it over
// linear regression and last-value on the simulated profiles
// (docs/autoscaling.md has the comparison).
type Holt struct {
	Alpha, Beta float64 // smoothing of level and trend, in (0, 1)
	Phi         float64 // trend damping in (0, 1]; 1 is undamped
}

// DefaultHolt returns the parameters the simulation chose.
func DefaultHolt() Holt { return Holt{Alpha: 0.3, Beta: 0.05, Phi: 0.9} }

// Name implements Forecaster.
func (h Holt) Name() string {
	return fmt.Sprintf("holt(α=%.2g,β=%.2g,φ=%.2g)", h.Alpha, h.Beta, h.Phi)
}

// Forecast implements Forecaster.
func (h Holt) Forecast(y []float64, horizon int) ([]float64, float64, error) {
	if h.Alpha <= 0 || h.Alpha >= 1 || h.Beta <= 0 || h.Beta >= 1 || h.Phi <= 0 || h.Phi > 1 {
		return nil, 0, fmt.Errorf("autoscale: holt parameters α=%v β=%v φ=%v out of range", h.Alpha, h.Beta, h.Phi)
	}
	if len(y) < 3 {
		return nil, 0, errShort
	}
	level, trend := y[0], y[1]-y[0]
	var sse float64
	var n int
	for t := 1; t < len(y); t++ {
		pred := level + h.Phi*trend
		if t >= 3 { // the first steps only settle the initial trend
			e := y[t] - pred
			sse += e * e
			n++
		}
		prev := level
		level = h.Alpha*y[t] + (1-h.Alpha)*pred
		trend = h.Beta*(level-prev) + (1-h.Beta)*h.Phi*trend
	}
	path := make([]float64, horizon)
	damp, f := 0.0, 1.0
	for i := range path {
		f *= h.Phi
		damp += f
		path[i] = max(0, level+damp*trend)
	}
	return path, rms(sse, n), nil
}

// Linear is ordinary least squares over the last Window points,
// extrapolated.
type Linear struct {
	Window int // points fitted; 0 means all
}

// Name implements Forecaster.
func (l Linear) Name() string { return fmt.Sprintf("linear(%d)", l.Window) }

// Forecast implements Forecaster.
func (l Linear) Forecast(y []float64, horizon int) ([]float64, float64, error) {
	if l.Window > 0 && len(y) > l.Window {
		y = y[len(y)-l.Window:]
	}
	if len(y) < 3 {
		return nil, 0, errShort
	}
	n := float64(len(y))
	var sx, sy, sxx, sxy float64
	for i, v := range y {
		x := float64(i)
		sx += x
		sy += v
		sxx += x * x
		sxy += x * v
	}
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	icpt := (sy - slope*sx) / n
	var sse float64
	for i, v := range y {
		e := v - (icpt + slope*float64(i))
		sse += e * e
	}
	path := make([]float64, horizon)
	for i := range path {
		path[i] = max(0, icpt+slope*(n-1+float64(i+1)))
	}
	return path, rms(sse, len(y)), nil
}

// LastValue predicts that the load stays where it is; the baseline any
// forecaster must beat.
type LastValue struct{}

// Name implements Forecaster.
func (LastValue) Name() string { return "last-value" }

// Forecast implements Forecaster.
func (LastValue) Forecast(y []float64, horizon int) ([]float64, float64, error) {
	if len(y) < 3 {
		return nil, 0, errShort
	}
	var sse float64
	for t := 1; t < len(y); t++ {
		e := y[t] - y[t-1]
		sse += e * e
	}
	path := make([]float64, horizon)
	for i := range path {
		path[i] = y[len(y)-1]
	}
	return path, rms(sse, len(y)-1), nil
}

func rms(sse float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return math.Sqrt(sse / float64(n))
}
