package placement

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"text/tabwriter"
)

// Config of a sweep: every seed × fleet size × load, each request stream
// replayed through every policy.
type Config struct {
	Seeds           int
	Hosts           []int
	Loads           []float64 // offered CPU load, share of the fleet's CPU
	RequestsPerHost int       // requests per stream = RequestsPerHost × hosts
	Warmup          float64   // share of the stream before metrics count
	Parallel        int       // simulations run at once
	ThroughFSM      bool      // commit through the real FSM (see Options)
	Policies        []Policy
}

// DefaultConfig is what `potluck-bench placement` and `make bench-placement`
// run.
func DefaultConfig() Config {
	return Config{
		Seeds: 5, Hosts: []int{20, 50, 100}, Loads: []float64{0.5, 0.7, 0.85, 0.95},
		RequestsPerHost: 25, Warmup: 0.25, Parallel: 2, Policies: Policies,
	}
}

// Validate refuses a sweep that cannot run.
func (c Config) Validate() error {
	var errs []error
	if c.Seeds < 1 {
		errs = append(errs, errors.New("seeds must be at least 1"))
	}
	if len(c.Hosts) == 0 || len(c.Loads) == 0 {
		errs = append(errs, errors.New("at least one fleet size and one load are needed"))
	}
	for _, h := range c.Hosts {
		if h < 1 || h > 20_000 {
			errs = append(errs, fmt.Errorf("fleet size %d outside 1–20000", h))
		}
	}
	for _, l := range c.Loads {
		if l <= 0 || l > 2 {
			errs = append(errs, fmt.Errorf("load %.2f outside (0, 2]", l))
		}
	}
	if c.RequestsPerHost < 1 || c.RequestsPerHost > 1000 {
		errs = append(errs, fmt.Errorf("requests per host %d outside 1–1000", c.RequestsPerHost))
	}
	if c.Warmup < 0 || c.Warmup >= 1 {
		errs = append(errs, fmt.Errorf("warm-up %.2f outside [0, 1)", c.Warmup))
	}
	if len(c.Policies) < 2 || c.Policies[0].Name != "spread" {
		errs = append(errs, errors.New("policies must start with spread, the baseline, and have another"))
	}
	return errors.Join(errs...)
}

// Summary is the headline: the second policy (pack) against spread, both
// as relative changes, medians over seeds. Per seed, denials are summed and
// free-Back shares averaged over every fleet size and load, so no load level
// is picked after the fact.
type Summary struct {
	// DenialChange is (pack's denials / spread's − 1) × 100.
	DenialChange float64
	// FreeHostsChange is (pack's mean share of free Backs / spread's − 1)
	// × 100.
	FreeHostsChange float64
	// FreeHostsPoints is pack's minus spread's mean share of free Backs, in
	// percentage points of the fleet (for reading the relative change).
	FreeHostsPoints float64
}

type key struct {
	seed, hosts int
	load        float64
	policy      string
}

// Run simulates the sweep, prints a table of medians over seeds per fleet
// size, load and policy, and returns the headline. It stops between simulations when ctx ends.
func Run(ctx context.Context, cfg Config, w io.Writer) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	type job struct {
		k     key
		pol   Policy
		fleet []Host
		reqs  []Request
	}
	var jobs []job
	for seed := 1; seed <= cfg.Seeds; seed++ {
		for _, n := range cfg.Hosts {
			for _, load := range cfg.Loads {
				rng := rand.New(rand.NewPCG(uint64(seed), uint64(n)*1000+uint64(load*1000)))
				fleet := MakeFleet(n, rng)
				reqs := MakeRequests(cfg.RequestsPerHost*n, fleet, load, rng)
				for _, p := range cfg.Policies {
					jobs = append(jobs, job{key{seed, n, load, p.Name}, p, fleet, reqs})
				}
			}
		}
	}
	results := make(map[key]Result, len(jobs))
	var mu sync.Mutex
	var firstErr error
	work := make(chan job)
	var wg sync.WaitGroup
	for range max(1, cfg.Parallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				r, err := Simulate(j.fleet, j.reqs, j.pol, Options{Warmup: cfg.Warmup, ThroughFSM: cfg.ThroughFSM})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("seed %d, %d hosts, load %.2f, %s: %w", j.k.seed, j.k.hosts, j.k.load, j.k.policy, err)
				}
				results[j.k] = r
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		work <- j
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return Summary{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Summary{}, fmt.Errorf("placement simulation stopped: %w", err)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "hosts\tload\tpolicy\treserved %%\tdenied %%\timpossible %%\tfree hosts %%\tfragmented %%\thot hosts %%\t\n")
	for _, n := range cfg.Hosts {
		for _, load := range cfg.Loads {
			for _, p := range cfg.Policies {
				var res, den, imp, free, frag, hot []float64
				for seed := 1; seed <= cfg.Seeds; seed++ {
					r := results[key{seed, n, load, p.Name}]
					res = append(res, 100*r.Reserved)
					den = append(den, 100*r.DenialRate())
					imp = append(imp, 100*r.ImpossibleRate())
					free = append(free, 100*r.FreeHosts)
					frag = append(frag, 100*r.Fragmentation)
					hot = append(hot, 100*r.Hot)
				}
				fmt.Fprintf(tw, "%d\t%.2f\t%s\t%.1f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t\n", n, load, p.Name,
					median(res), median(den), median(imp), median(free), median(frag), median(hot))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return Summary{}, err
	}

	base, alt := cfg.Policies[0].Name, cfg.Policies[1].Name
	var denial, rel, points []float64
	for seed := 1; seed <= cfg.Seeds; seed++ {
		var dBase, dAlt int
		var fBase, fAlt float64
		for _, n := range cfg.Hosts {
			for _, load := range cfg.Loads {
				b, a := results[key{seed, n, load, base}], results[key{seed, n, load, alt}]
				dBase += b.Denied
				dAlt += a.Denied
				fBase += b.FreeHosts
				fAlt += a.FreeHosts
			}
		}
		cells := float64(len(cfg.Hosts) * len(cfg.Loads))
		if dBase > 0 {
			denial = append(denial, 100*(float64(dAlt)/float64(dBase)-1))
		}
		if fBase > 0 {
			rel = append(rel, 100*(fAlt/fBase-1))
		}
		points = append(points, 100*(fAlt-fBase)/cells)
	}
	sum := Summary{DenialChange: median(denial), FreeHostsChange: median(rel), FreeHostsPoints: median(points)}
	fmt.Fprintf(w, "%s vs %s over every fleet size and load, medians over %d seeds: denials %+.1f %%, free Backs %+.1f %% (%+.1f points of the fleet)\n",
		alt, base, cfg.Seeds, sum.DenialChange, sum.FreeHostsChange, sum.FreeHostsPoints)
	return sum, nil
}

// Line is the summary's last line.
func (s Summary) Line() string {
	return fmt.Sprintf("placement: denials %+.1f %% and free hosts %+.1f %% vs spread", s.DenialChange, s.FreeHostsChange)
}
