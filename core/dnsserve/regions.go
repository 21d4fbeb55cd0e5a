package dnsserve

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// Rule maps clients in Prefix to regions, nearest first: Fronts in
// Regions[0] are answered first, then Regions[1], …, then every other Front.
type Rule struct {
	Prefix  netip.Prefix
	Regions []string
}

// Rules are client-subnet-to-region rules; the longest matching prefix wins.
type Rules []Rule

// MaxRules bounds a rules file.
const MaxRules = 100_000

// ParseRules reads rules, one per line: a CIDR prefix then one or more
// region names, nearest first ("198.51.100.0/24 eu-west eu-central"); '#'
// starts a comment.
func ParseRules(r io.Reader) (Rules, error) {
	var out Rules
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("rules line %d: want a prefix and at least one region, e.g. 198.51.100.0/24 eu-west", n)
		}
		p, err := netip.ParsePrefix(fields[0])
		if err != nil {
			return nil, fmt.Errorf("rules line %d: %w", n, err)
		}
		for _, reg := range fields[1:] {
			if err := checkRegion(reg); err != nil {
				return nil, fmt.Errorf("rules line %d: %w", n, err)
			}
		}
		if len(out) == MaxRules {
			return nil, fmt.Errorf("rules: more than %d", MaxRules)
		}
		out = append(out, Rule{Prefix: p.Masked(), Regions: fields[1:]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return out, nil
}

// checkRegion accepts what a region name may be: 1 to 63 of [a-z0-9-_.].
func checkRegion(s string) error {
	if len(s) == 0 || len(s) > 63 || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return fmt.Errorf("region %q: use 1 to 63 of a-z, 0-9, '-', '_', '.'", s)
	}
	return nil
}

// Match returns the regions for a client address, nearest first, and the
// rule's prefix length (-1: no rule matched).
func (rs Rules) Match(a netip.Addr) ([]string, int) {
	a = a.Unmap()
	best := -1
	var regions []string
	for _, r := range rs {
		if r.Prefix.Bits() > best && r.Prefix.Contains(a) {
			best, regions = r.Prefix.Bits(), r.Regions
		}
	}
	return regions, best
}

// rank is how near a Front in region is for a client whose rule lists
// regions: its position in the list, or len(regions) when absent.
func rank(regions []string, region string) int {
	if i := slices.Index(regions, region); i >= 0 && region != "" {
		return i
	}
	return len(regions)
}
