package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/internal/cli"
)

// autoscaleCmd shows or changes an installation's autoscaling.
type autoscaleCmd struct {
	min, max            cli.OptionalInt
	cpuTarget, interval string
	policy              string
	off                 bool
}

var autoscaleFlags = map[string]string{"min": "--min", "max": "--max", "cpu_target": "--cpu-target", "interval": "--interval", "policy": "--policy"}

func (a *autoscaleCmd) register(fs *cli.FlagSet) {
	fs.Var(&a.min, "min", "fewest instances (Backs)")
	fs.Var(&a.max, "max", "most instances (Backs)")
	fs.StringVar(&a.cpuTarget, "cpu-target", "", "CPU use the instances are kept under, as a share of their limit: 0.75 or 75% (default 75%)")
	fs.StringVar(&a.interval, "interval", "", "least time between two scaling operations, e.g. 25m (the default) or 5m")
	fs.StringVar(&a.policy, "policy", "", "combined (reactive rules plus forecast, the default), reactive or hpa")
	fs.BoolVar(&a.off, "off", false, "turn autoscaling off (the settings are kept)")
}

// parseShare reads 0.75 or 75% as 0.75.
func parseShare(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	if err != nil {
		return 0, cli.Usagef("--cpu-target %q: want a share such as 0.75 or 75%%", s)
	}
	if pct || f > 1 {
		f /= 100
	}
	return f, nil
}

func (a *autoscaleCmd) run(c *cmdCtx) error {
	var req apiclient.AutoscaleRequest
	req.Min, req.Max = a.min.Ptr(), a.max.Ptr()
	if a.cpuTarget != "" {
		f, err := parseShare(a.cpuTarget)
		if err != nil {
			return err
		}
		req.CPUTarget = &f
	}
	if a.interval != "" {
		d, err := time.ParseDuration(strings.TrimSpace(a.interval))
		if err != nil || d < 0 {
			return cli.Usagef("--interval %q: want a duration such as 25m or 90s", a.interval)
		}
		s := d.String()
		req.Interval = &s
	}
	if a.policy != "" {
		req.Policy = &a.policy
	}
	changed := req.Min != nil || req.Max != nil || req.CPUTarget != nil || req.Interval != nil || req.Policy != nil
	var st *apiclient.AutoscaleStatus
	var err error
	if changed || a.off {
		on := !a.off
		req.Enabled = &on
		st, err = c.client.SetAutoscale(c.ctx, c.args[0], req)
	} else {
		st, err = c.client.Autoscale(c.ctx, c.args[0])
	}
	if err != nil {
		return inFlagTerms(err, autoscaleFlags)
	}
	if c.g.json {
		return printJSON(c.env.Stdout, st)
	}
	return printAutoscale(c, st)
}

func printAutoscale(c *cmdCtx, st *apiclient.AutoscaleStatus) error {
	w := c.env.Stdout
	p := st.Policy
	state := "off"
	if p.Enabled {
		state = "on"
	}
	fmt.Fprintf(w, "autoscaling of %s: %s, policy %s, %d..%d instances (now %d), CPU target %.0f%%, at least %s between operations\n",
		st.Installation, state, or(p.Policy, "combined"), p.Min, p.Max, st.Backs, p.CPUTarget*100, or(st.IntervalText, time.Duration(p.Interval).String()))
	if len(st.Events) > 0 {
		fmt.Fprintln(w, "\noperations:")
		var rows [][]string
		for _, e := range st.Events[max(0, len(st.Events)-10):] {
			rows = append(rows, []string{e.At.Local().Format(time.DateTime), fmt.Sprintf("%d → %d", e.From, e.To), e.Source, e.Reason})
		}
		if err := table(w, []string{"AT", "COUNT", "BY", "REASON"}, rows); err != nil {
			return err
		}
	}
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "\nlatest decisions (on the leader):")
		var rows [][]string
		for _, d := range st.Decisions[max(0, len(st.Decisions)-5):] {
			what := "hold"
			if d.From != d.To {
				what = fmt.Sprintf("%d → %d", d.From, d.To)
				if !d.Applied {
					what += " (not applied)"
				}
			}
			rows = append(rows, []string{d.At.Local().Format(time.DateTime), what, d.Source, d.Reason})
		}
		return table(w, []string{"AT", "DECISION", "BY", "REASON"}, rows)
	}
	return nil
}

// metricsCmd prints an installation's metrics, one line a step.
type metricsCmd struct{ last int }

func (m *metricsCmd) register(fs *cli.FlagSet) {
	fs.IntVar(&m.last, "last", 15, "how many of the latest points (at most 180 are kept)")
}

func (m *metricsCmd) run(c *cmdCtx) error {
	if m.last < 1 {
		return cli.Usagef("--last must be a number of points, at least 1")
	}
	ms, err := c.client.Metrics(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	ps := ms.Points[max(0, len(ms.Points)-m.last):]
	if c.g.json {
		ms.Points = ps
		return printJSON(c.env.Stdout, ms)
	}
	if len(ps) == 0 {
		fmt.Fprintf(c.env.Stdout, "no metrics for %s yet: the leader keeps one point per %gs from what Fronts and Backs report\n", c.args[0], ms.StepSeconds)
		return nil
	}
	step := ms.StepSeconds
	if step <= 0 {
		step = 60
	}
	var rows [][]string
	for _, p := range ps {
		rows = append(rows, []string{p.At.Local().Format(time.TimeOnly), fmt.Sprintf("%.1f", p.Requests/step), fmt.Sprintf("%.0f", p.Errors),
			fmt.Sprintf("%.1f", p.P50MS), fmt.Sprintf("%.1f", p.P95MS), pctOr(p.CPU, p.Backs), pctOr(p.Memory, p.Backs), strconv.Itoa(p.Instances)})
	}
	return table(c.env.Stdout, []string{"AT", "REQ/S", "5XX", "P50 MS", "P95 MS", "CPU", "MEMORY", "INSTANCES"}, rows)
}

// pctOr shows a share as a percentage, or "-" when nothing was measured.
func pctOr(v float64, measured bool) string {
	if !measured {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}
