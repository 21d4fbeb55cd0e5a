package autoscale

import (
	"fmt"
	"io"
	"strings"
)

// WriteTable prints the seed's Table 1 (total and per-minute cost of
// combined and reactive-only, and the gain) with the HPA-style policy
// alongside, as Markdown, then the summary line.
func WriteTable(w io.Writer, rep *Report) error {
	cfg := rep.Config
	var b strings.Builder
	fmt.Fprintf(&b, "Model: start %v, resize %v; min interval %v (HPA %v); %d seeds, noise σ %.2f; forecaster %s.\n\n",
		cfg.Model.StartDelay, cfg.Model.ResizeDelay, cfg.MinInterval, cfg.HPAInterval, len(cfg.Seeds), cfg.Noise, cfg.Proactive.Forecaster.Name())
	b.WriteString("| profile | min | combined: total $ | combined: per min | reactive: total $ | reactive: per min | gain | HPA: total $ | HPA vs reactive | ops R/C/H | lost users R/C/H |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Rows {
		re, co, hp := r.Outcomes[Reactive], r.Outcomes[Combined], r.Outcomes[HPA]
		n := float64(r.Minutes)
		hg := 0.0
		if re.Cost > 0 {
			hg = (re.Cost - hp.Cost) / re.Cost
		}
		name := r.Profile
		if r.Steady {
			name += " (steady)"
		}
		fmt.Fprintf(&b, "| %s | %d | %.3f | %.5f | %.3f | %.5f | %.1f %% | %.3f | %.1f %% | %.1f/%.1f/%.1f | %.0f/%.0f/%.0f |\n",
			name, r.Minutes, co.Cost, co.Cost/n, re.Cost, re.Cost/n, 100*r.Gain(), hp.Cost, 100*hg,
			re.Ops, co.Ops, hp.Ops, re.LostUsers, co.LostUsers, hp.LostUsers)
	}
	mean, worst := rep.MeanGain()
	fmt.Fprintf(&b, "\nCost = infrastructure + $%.5f per lost user; gain = (reactive − combined) / reactive.\n", cfg.Model.LostUserPrice)
	fmt.Fprintf(&b, "autoscale: mean gain %.1f %% over reactive-only, worst profile %.1f %%\n", 100*mean, 100*worst)
	_, err := io.WriteString(w, b.String())
	return err
}
