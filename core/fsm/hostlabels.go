package fsm

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Bounds of the features an operator sets on a host.
const (
	MaxHostLabels   = 32
	MaxLabelKeyLen  = 32
	MaxLabelValLen  = 63
	MaxLenderLength = 63
)

var (
	labelKeyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	// Values are compared exactly and listed as key=value: no separators.
	labelValuePattern = regexp.MustCompile(`^[A-Za-z0-9_.:/@+-]+$`)
)

// reservedFeatureKeys name the host features placement reads from their own
// fields, so no label may take their names.
var reservedFeatureKeys = map[string]bool{"arch": true, "storage": true, "region": true, "lender": true}

// CheckHostLabels validates an operator's lender and labels for a host.
func CheckHostLabels(lender string, labels map[string]string) error {
	var bad []string
	if lender != "" && (len(lender) > MaxLenderLength || !labelValuePattern.MatchString(lender)) {
		bad = append(bad, fmt.Sprintf("lender %q: 1-%d of letters, digits and _.:/@+-", lender, MaxLenderLength))
	}
	if len(labels) > MaxHostLabels {
		bad = append(bad, fmt.Sprintf("%d labels: at most %d", len(labels), MaxHostLabels))
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		switch {
		case reservedFeatureKeys[k]:
			bad = append(bad, fmt.Sprintf("label %q: arch, storage, region and lender are host features, not labels", k))
		case len(k) > MaxLabelKeyLen || !labelKeyPattern.MatchString(k):
			bad = append(bad, fmt.Sprintf("label key %q: 1-%d of a-z, 0-9 and _.- starting with a letter or digit", k, MaxLabelKeyLen))
		case len(v) > MaxLabelValLen || !labelValuePattern.MatchString(v):
			bad = append(bad, fmt.Sprintf("label %s value %q: 1-%d of letters, digits and _.:/@+-", k, v, MaxLabelValLen))
		}
	}
	if len(bad) > 0 {
		return errf(CodeInvalid, "%s", strings.Join(bad, "; "))
	}
	return nil
}

func (s *State) setHostLabels(c *Command) (string, error) {
	if c.Host == nil {
		return "", errf(CodeInvalid, "no host given")
	}
	if _, ok := s.Hosts[c.Host.ID]; !ok {
		return "", errf(CodeNotFound, "no host %q", c.Host.ID)
	}
	if err := CheckHostLabels(c.Host.Lender, c.Host.Labels); err != nil {
		return "", err
	}
	labels := maps.Clone(c.Host.Labels)
	if len(labels) == 0 {
		labels = nil
	}
	h := s.editHost(c.Host.ID)
	h.Lender, h.Labels, h.UpdatedAt = c.Host.Lender, labels, c.Time
	return h.ID, nil
}
