package autoscale

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Profile is a load profile: requests arriving per minute.
type Profile struct {
	Name string
	// Steady marks the profiles whose load does not change beyond noise
	// and a slow drift (the seed's two "normal mode" rows, where it
	// measured no gain).
	Steady bool
	Load   []float64
}

// BaseLoad is the quiet request rate of every profile, requests per minute:
// 40 % of one small instance in the default model.
const BaseLoad = 120

// shape is a profile without noise.
type shape struct {
	name    string
	steady  bool
	minutes int
	at      func(t float64) float64 // multiple of BaseLoad at minute t
}

func bump(t, center, width float64) float64 {
	d := (t - center) / width
	return math.Exp(-d * d / 2)
}

// shapes returns the synthetic stand-ins for the seed's WorldCup98 windows (which
// the paper does not give), with the lengths its totals imply (section 3.7
// of the brief). Peaks are Gaussian bumps: a match's audience arriving and
// leaving over tens of minutes.
func shapes() []shape {
	return []shape{
		{name: "Single peak", minutes: 400, at: func(t float64) float64 {
			return 1 + 5*bump(t, 220, 25)
		}},
		{name: "Double peak", minutes: 705, at: func(t float64) float64 {
			return 1 + 4.5*bump(t, 250, 30) + 4*bump(t, 460, 30)
		}},
		{name: "Double peak No. 2", minutes: 505, at: func(t float64) float64 {
			return 1 + 6*bump(t, 200, 18) + 6*bump(t, 320, 18)
		}},
		{name: "Small double peak", minutes: 800, at: func(t float64) float64 {
			return 1 + 0.8*bump(t, 300, 40) + 0.8*bump(t, 520, 40)
		}},
		{name: "One day", minutes: 1437, at: func(t float64) float64 {
			// Trough at 04:00, broad daytime high, an evening match at 20:00.
			day := (1 - math.Cos(2*math.Pi*(t-240)/1440)) / 2
			return 0.6 + 1.2*day + 3.5*bump(t, 1200, 40)
		}},
		{name: "Normal high-load mode", steady: true, minutes: 2720, at: func(t float64) float64 {
			return 7 * (1 + 0.05*math.Sin(2*math.Pi*t/720))
		}},
		{name: "Normal low-load mode", steady: true, minutes: 2990, at: func(t float64) float64 {
			return 0.5 * (1 + 0.1*math.Sin(2*math.Pi*t/1440))
		}},
	}
}

// ProfileNames lists the profiles in table order.
func ProfileNames() []string {
	names := []string{"All data"}
	for _, s := range shapes() {
		names = append(names, s.name)
	}
	return names
}

// Profiles returns the eight profiles with noise drawn from seed: "All
// data" (the other seven concatenated, the seed's first row) and the seven
// shapes. Noise is multiplicative log-normal (σ = Noise) on top of Poisson
// arrivals (approximated as Normal with variance = mean).
func Profiles(seed uint64, noise float64) []Profile {
	rng := rand.New(rand.NewPCG(seed, 0x5eed004))
	var out []Profile
	var all []float64
	for _, s := range shapes() {
		p := Profile{Name: s.name, Steady: s.steady, Load: make([]float64, s.minutes)}
		for i := range p.Load {
			m := BaseLoad * s.at(float64(i)) * math.Exp(noise*rng.NormFloat64()-noise*noise/2)
			p.Load[i] = max(0, math.Round(m+math.Sqrt(m)*rng.NormFloat64()))
		}
		all = append(all, p.Load...)
		out = append(out, p)
	}
	return append([]Profile{{Name: "All data", Load: all}}, out...)
}

// CheckProfile reports a profile that cannot be simulated.
func CheckProfile(p Profile) error {
	if len(p.Load) == 0 {
		return fmt.Errorf("profile %q: no load", p.Name)
	}
	for i, v := range p.Load {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("profile %q: minute %d: load %v", p.Name, i, v)
		}
	}
	return nil
}
