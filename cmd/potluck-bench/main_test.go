package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

func app(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Host != "hello.test" {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		io.WriteString(w, "hello\n")
	}))
	t.Cleanup(s.Close)
	return s
}

func TestCommands(t *testing.T) {
	s := app(t)
	target := "local=" + s.URL + "/,host=hello.test"
	for _, tc := range []struct {
		name  string
		args  []string
		err   string
		check func(t *testing.T, out string)
	}{
		{name: "table markdown", args: []string{"table", "--target", target, "--runs", "2", "--counts", "1,3"}, check: func(t *testing.T, out string) {
			require.Contains(t, out, "| measurement | local | paper: GKE (3 nodes)")
			require.Contains(t, out, "| POST, 3 requests |")
			require.Contains(t, out, "[min, max] of 2 runs")
		}},
		{name: "table csv, two targets, no paper", args: []string{"table", "--target", target, "--target", "again=" + s.URL + "/,host=hello.test", "--runs", "1", "--counts", "1", "--format", "csv", "--paper=false"}, check: func(t *testing.T, out string) {
			rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			require.NoError(t, err)
			require.Len(t, rows, 1+2*2)
			require.Equal(t, "again", rows[4][0])
		}},
		{name: "table json", args: []string{"table", "--target", target, "--runs", "1", "--counts", "2", "--methods", "GET", "--format", "json"}, check: func(t *testing.T, out string) {
			var got struct {
				Cells []struct {
					Requests int     `json:"requests"`
					Mean     float64 `json:"mean_s"`
				} `json:"cells"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &got))
			require.Len(t, got.Cells, 1)
			require.Equal(t, 2, got.Cells[0].Requests)
		}},
		{name: "table wrong host fails", args: []string{"table", "--target", "x=" + s.URL + "/", "--runs", "1"}, err: "status 404"},
		{name: "table without target", args: []string{"table"}, err: "--target"},
		{name: "table bad format", args: []string{"table", "--target", target, "--format", "xml"}, err: "--format"},
		{name: "table bad target", args: []string{"table", "--target", "nourl"}, err: "want name=URL"},
		{name: "load text", args: []string{"load", "--url", s.URL + "/", "--host", "hello.test", "--count", "50", "--concurrency", "4"}, check: func(t *testing.T, out string) {
			require.Contains(t, out, "requests  50 in")
			require.Contains(t, out, "50×200")
		}},
		{name: "load json POST", args: []string{"load", "--url", s.URL + "/", "--host", "hello.test", "--count", "10", "--method", "POST", "--body", `{"a":"b"}`, "--format", "json"}, check: func(t *testing.T, out string) {
			var got struct {
				Requests int         `json:"requests"`
				Statuses map[int]int `json:"statuses"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &got))
			require.Equal(t, 10, got.Requests)
			require.Equal(t, map[int]int{201: 10}, got.Statuses)
		}},
		{name: "load short flags", args: []string{"load", "--url", s.URL + "/", "--host", "hello.test", "-n", "7", "-c=2", "-d", "30s"}, check: func(t *testing.T, out string) {
			require.Contains(t, out, "requests  7 in")
		}},
		{name: "load without url", args: []string{"load"}, err: "--url"},
		{name: "geo bad scenario", args: []string{"geo", "--scenario", "eu=70ms"}, err: "CLIENT_RTT/MESH_RTT"},
		{name: "no command", args: nil, err: "no command"},
		{name: "unknown command", args: []string{"bench"}, err: "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errOut := cli.BufferEnv(nil)
			err := run(context.Background(), tc.args, env)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err, errOut.String())
			tc.check(t, out.String())
		})
	}
}

func TestHelpListsEnvironmentTwins(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{args: []string{"table", "--help"}, want: []string{"--target  [POTLUCK_TARGET]", "--runs  [POTLUCK_RUNS]", "--format  [POTLUCK_FORMAT]", "--paper  [POTLUCK_PAPER]"}},
		{args: []string{"load", "-h"}, want: []string{"--concurrency  [POTLUCK_CONCURRENCY]", "--duration  [POTLUCK_DURATION]", "--count  [POTLUCK_COUNT]", "--progress  [POTLUCK_PROGRESS]"}},
		{args: []string{"geo", "help"}, want: []string{"--scenario  [POTLUCK_SCENARIO]", "--image  [POTLUCK_IMAGE]", "sim: Front in asia-east1", "220ms"}},
		{args: []string{"--help"}, want: []string{"potluck-bench geo"}},
		{args: []string{"help"}, want: []string{"potluck-bench table"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			env, out, errOut := cli.BufferEnv(nil)
			err := run(context.Background(), tc.args, env)
			require.ErrorIs(t, err, flag.ErrHelp)
			require.Equal(t, 0, cli.ExitCode(err))
			require.Empty(t, errOut.String(), "help goes to stdout")
			for _, w := range tc.want {
				require.Contains(t, out.String(), w)
			}
		})
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", []string{"bench"}, nil, `unknown command "bench": table, load, geo, placement, autoscale, faults, e2e or fleet`},
		{"unknown flag", []string{"load", "--colour"}, nil, "flag provided but not defined: -colour"},
		{"bad variable", []string{"load", "--url", "http://127.0.0.1:1/"}, map[string]string{"POTLUCK_CONCURRENCY": "lots"}, `POTLUCK_CONCURRENCY="lots" (the environment twin of --concurrency)`},
		{"missing url", []string{"load"}, nil, "--url is required"},
		{"bad counts", []string{"table", "--target", "a=http://127.0.0.1:1/", "--counts", "x"}, nil, "--counts"},
		{"bad fleet size", []string{"placement", "--hosts", "ten"}, nil, `--hosts "ten"`},
		{"bad load", []string{"placement", "--loads", "most"}, nil, `--loads "most"`},
		{"fleet without sizes", []string{"fleet"}, nil, "--hosts and --instances are required"},
		{"fleet sizes unpaired", []string{"fleet", "--hosts", "100,1000,5000", "--instances", "1,2"}, nil, "--instances needs one value or as many as --hosts"},
		{"fleet too small", []string{"fleet", "--hosts", "1", "--instances", "10", "--core-bin", "/nonexistent"}, nil, "--hosts must be at least 2"},
		{"zero runs", []string{"table", "--target", "a=http://127.0.0.1:1/", "--runs", "0"}, nil, "--runs 0: at least 1"},
		{"name with a space", []string{"table", "--target", "my site=http://127.0.0.1:1/"}, nil, `target name "my site" has a space: use one word such as "my-site"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(tc.vars)
			err := run(context.Background(), tc.args, env)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, 2, cli.ExitCode(err))
			require.Empty(t, out.String())
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"load", "--version"}} {
		env, out, errOut := cli.BufferEnv(nil)
		err := run(context.Background(), args, env)
		require.ErrorIs(t, err, cli.ErrVersion)
		require.Equal(t, 0, cli.ExitCode(err))
		require.Empty(t, errOut.String())
		require.Regexp(t, `^potluck-bench \S+, commit \S+, go1\.`, out.String())
	}
}

func TestShortFlagsWinOverEnvironment(t *testing.T) {
	s := app(t)
	env, out, _ := cli.BufferEnv(map[string]string{"POTLUCK_COUNT": "100"})
	require.NoError(t, run(context.Background(), []string{"load", "--url", s.URL + "/", "--host", "hello.test", "-n", "3"}, env))
	require.Contains(t, out.String(), "requests  3 in")
	require.Equal(t, []string{"--concurrency", "4", "--count=5", "--url", "x", "--", "-c"}, expandShort([]string{"-c", "4", "-n=5", "--url", "x", "--", "-c"}, map[string]string{"c": "concurrency", "n": "count"}))
}

func TestTargetsFromEnvironment(t *testing.T) {
	s := app(t)
	env, out, _ := cli.BufferEnv(map[string]string{
		"POTLUCK_TARGET": "a=" + s.URL + "/,host=hello.test b=" + s.URL + "/,host=hello.test",
		"POTLUCK_RUNS":   "1", "POTLUCK_COUNTS": "1",
	})
	require.NoError(t, run(context.Background(), []string{"table", "--paper=false"}, env))
	require.Contains(t, out.String(), "| measurement | a | b |")
}
