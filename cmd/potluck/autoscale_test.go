package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAutoscaleShowsAndSets: `potluck autoscale NAME` shows the settings,
// flags change them and turn autoscaling on, --off turns it off, and bad
// values are refused in the flags' terms.
func TestAutoscaleShowsAndSets(t *testing.T) {
	_, vars, _ := helloPushed(t)
	r := potluck(t, vars, false, "deploy", "--app", "hello", "--domain", "hello.example.com", "--memory", "64MiB", "--detach")
	require.Equal(t, 0, r.code, r.stderr)

	r = potluck(t, vars, false, "autoscale", "hello")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "autoscaling of hello: off, policy combined, 1..1 instances (now 1), CPU target 75%, at least 25m0s between operations")

	r = potluck(t, vars, false, "autoscale", "hello", "--min", "1", "--max", "3", "--cpu-target", "60%", "--interval", "5m")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "autoscaling of hello: on, policy combined, 1..3 instances (now 1), CPU target 60%, at least 5m0s between operations")

	r = potluck(t, vars, false, "autoscale", "hello", "--off")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "off, policy combined, 1..3")

	r = potluck(t, vars, false, "autoscale", "hello", "--cpu-target", "lots")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `--cpu-target "lots"`)
	r = potluck(t, vars, false, "autoscale", "hello", "--min", "4")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "autoscale bounds 4..3")
	r = potluck(t, vars, false, "metrics", "hello")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "no metrics for hello yet: the leader keeps one point per 60s from what Fronts and Backs report\n", r.stdout)
	r = potluck(t, vars, false, "metrics", "hello", "--last", "0")
	require.Equal(t, 2, r.code)

	r = potluck(t, vars, false, "autoscale", "nope", "--min", "1")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `no installation "nope"`)
}
