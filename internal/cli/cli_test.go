package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testFlags is a small command: a string with a default, a duration, a size
// and a list, as the binaries have.
type testFlags struct {
	name  string
	wait  time.Duration
	mem   Size
	cores StringList
	count OptionalInt
}

func newTestFlags() (*FlagSet, *testFlags) {
	t := &testFlags{mem: 512 << 20}
	fs := NewFlagSet("potluck-test", "Usage: potluck-test [flags]", "See the docs.")
	fs.StringVar(&t.name, "join-token-file", "default.token", "the token file")
	fs.DurationVar(&t.wait, "heartbeat", 5*time.Second, "how often")
	fs.Var(&t.mem, "memory", "memory, e.g. 512MiB")
	fs.Var(&t.cores, "core", "core URLs")
	fs.Var(&t.count, "count", "how many")
	return fs, t
}

func TestParsePrecedence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, f *testFlags)
	}{
		{"defaults", nil, nil, func(t *testing.T, f *testFlags) {
			require.Equal(t, "default.token", f.name)
			require.Equal(t, 5*time.Second, f.wait)
			require.Equal(t, Size(512<<20), f.mem)
			require.False(t, f.count.Given)
			require.Nil(t, f.count.Ptr())
		}},
		{"environment beats default", nil, map[string]string{"POTLUCK_JOIN_TOKEN_FILE": "/env.token", "POTLUCK_HEARTBEAT": "1m", "POTLUCK_MEMORY": "1GiB", "POTLUCK_CORE": "a,b", "POTLUCK_COUNT": "0"},
			func(t *testing.T, f *testFlags) {
				require.Equal(t, "/env.token", f.name)
				require.Equal(t, time.Minute, f.wait)
				require.Equal(t, Size(1<<30), f.mem)
				require.Equal(t, StringList{"a", "b"}, f.cores)
				require.Equal(t, 0, *f.count.Ptr(), "a zero given by the environment is still given")
			}},
		{"flag beats environment", []string{"--join-token-file", "/flag.token", "-heartbeat=2s", "--core", "c"},
			map[string]string{"POTLUCK_JOIN_TOKEN_FILE": "/env.token", "POTLUCK_HEARTBEAT": "1m", "POTLUCK_CORE": "a,b"},
			func(t *testing.T, f *testFlags) {
				require.Equal(t, "/flag.token", f.name)
				require.Equal(t, 2*time.Second, f.wait)
				require.Equal(t, StringList{"c"}, f.cores, "the variable does not add to a list given by flags")
			}},
		{"set to empty counts as set", nil, map[string]string{"POTLUCK_JOIN_TOKEN_FILE": ""}, func(t *testing.T, f *testFlags) {
			require.Equal(t, "", f.name)
		}},
		{"other variables are ignored", nil, map[string]string{"JOIN_TOKEN_FILE": "x", "potluck_heartbeat": "1h"}, func(t *testing.T, f *testFlags) {
			require.Equal(t, "default.token", f.name)
			require.Equal(t, 5*time.Second, f.wait)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, f := newTestFlags()
			var out bytes.Buffer
			require.NoError(t, fs.Parse(tc.args, Env{Lookup: MapLookup(tc.env), Stdout: &out}))
			require.Empty(t, out.String())
			tc.check(t, f)
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"unknown flag", []string{"--bogus"}, nil, []string{"flag provided but not defined: -bogus (see --help)"}},
		{"bad flag value", []string{"--memory", "lots"}, nil, []string{"-memory"}},
		{"bad duration says what a duration is", []string{"--heartbeat", "1d"}, nil, []string{`invalid value "1d" for flag -heartbeat: parse error (want a duration such as 90s, 5m or 1h30m)`}},
		{"stray argument", []string{"stray"}, nil, []string{`unexpected arguments ["stray"]`}},
		{"bad variable names variable and flag", nil, map[string]string{"POTLUCK_HEARTBEAT": "soon"},
			[]string{`POTLUCK_HEARTBEAT="soon"`, "--heartbeat", "want a duration such as 90s"}},
		{"empty variable of a typed flag", nil, map[string]string{"POTLUCK_COUNT": ""}, []string{"POTLUCK_COUNT", "--count", "whole number"}},
		{"every bad variable is reported", nil, map[string]string{"POTLUCK_HEARTBEAT": "soon", "POTLUCK_MEMORY": "lots"},
			[]string{"POTLUCK_HEARTBEAT", "POTLUCK_MEMORY", "--memory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := newTestFlags()
			var out bytes.Buffer
			err := fs.Parse(tc.args, Env{Lookup: MapLookup(tc.env), Stdout: &out})
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			var ue *UsageError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, 2, ExitCode(err))
			require.Empty(t, out.String(), "no usage dump on a bad flag")
		})
	}
}

func TestHelpAndVersionGoToStdout(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		err  error
	}{
		{[]string{"--help"}, "--join-token-file  [POTLUCK_JOIN_TOKEN_FILE]", flag.ErrHelp},
		{[]string{"-h"}, "Usage: potluck-test", flag.ErrHelp},
		{[]string{"help"}, "See the docs.", flag.ErrHelp},
		{[]string{"--heartbeat", "1s", "--help"}, "--memory  [POTLUCK_MEMORY]\n      memory, e.g. 512MiB (default 536870912)", flag.ErrHelp},
		{[]string{"--version"}, "potluck-test devel", ErrVersion},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs, _ := newTestFlags()
			var out bytes.Buffer
			// A bad variable does not stop help or the version.
			err := fs.Parse(tc.args, Env{Lookup: MapLookup(map[string]string{"POTLUCK_HEARTBEAT": "soon"}), Stdout: &out})
			require.ErrorIs(t, err, tc.err)
			require.True(t, Done(err))
			require.Equal(t, 0, ExitCode(err))
			require.Contains(t, out.String(), tc.want)
		})
	}
	fs, _ := newTestFlags()
	var out bytes.Buffer
	fs.PrintUsage(&out)
	require.Contains(t, out.String(), "  --version\n", "--version has no environment twin")
	require.NotContains(t, out.String(), "POTLUCK_VERSION")
	require.ErrorIs(t, fs.Parse(nil, Env{Lookup: MapLookup(map[string]string{"POTLUCK_VERSION": "true"}), Stdout: &out}), nil,
		"POTLUCK_VERSION does not turn a server into a version printer")
}

func TestParseArgsIntersperses(t *testing.T) {
	fs, f := newTestFlags()
	fs.SetEnvName("count", "POTLUCK_PUSH_COUNT")
	pos, err := fs.ParseArgs([]string{"file.tar", "--heartbeat", "3s", "other", "--", "--memory"},
		Env{Lookup: MapLookup(map[string]string{"POTLUCK_COUNT": "9", "POTLUCK_PUSH_COUNT": "4"})})
	require.NoError(t, err)
	require.Equal(t, []string{"file.tar", "other", "--memory"}, pos)
	require.Equal(t, 3*time.Second, f.wait)
	require.Equal(t, 4, f.count.Value, "a scoped twin replaces the default name")
	var out bytes.Buffer
	fs.PrintUsage(&out)
	require.Contains(t, out.String(), "--count  [POTLUCK_PUSH_COUNT]")
}

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		line string
	}{
		{"success", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"version", fmt.Errorf("x: %w", ErrVersion), 0, ""},
		{"usage", Usagef("bad --port %d", 0), 2, "potluck-x: bad --port 0\n"},
		{"runtime", errors.New("core unreachable"), 1, "potluck-x: core unreachable\n"},
		{"joined errors are one line", errors.Join(errors.New("a"), errors.New("b\n  c")), 1, "potluck-x: a; b; c\n"},
		{"custom code", WithExitCode(3, errors.New("decommissioned")), 3, "potluck-x: decommissioned\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			require.Equal(t, tc.code, Exit(&stderr, "potluck-x", tc.err))
			require.Equal(t, tc.line, stderr.String())
		})
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(good, []byte("  s3cret\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte("x"), maxSecretFile+1), 0o600))
	for _, tc := range []struct {
		name, value, file, want, err string
	}{
		{name: "inline", value: "inline", want: "inline"},
		{name: "file wins and is trimmed", value: "inline", file: good, want: "s3cret"},
		{name: "missing file", file: filepath.Join(dir, "none"), err: "--join-token-file: open"},
		{name: "empty file", file: empty, err: "is empty"},
		{name: "too big", file: big, err: "over 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Secret(tc.value, tc.file, "join-token-file")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "1GiB": 1 << 30, "2G": 2 << 30, "100": 100, "1.5KiB": 1536, "3MB": 3 << 20} {
		var s Size
		require.NoError(t, s.Set(in), in)
		require.Equal(t, want, int64(s), in)
	}
	var s Size
	require.Error(t, s.Set("lots"))
	require.Error(t, s.Set("-1GiB"))
}

func TestLoggerAndLists(t *testing.T) {
	_, err := Logger(&bytes.Buffer{}, "loud", "text")
	require.ErrorContains(t, err, "log level")
	require.Equal(t, 2, ExitCode(err))
	_, err = Logger(&bytes.Buffer{}, "info", "xml")
	require.ErrorContains(t, err, "log format")
	var l StringList
	require.NoError(t, l.Set("a, b"))
	require.NoError(t, l.Set("c"))
	require.Equal(t, StringList{"a", "b", "c"}, l)
	var r Repeated
	require.NoError(t, r.Set("K=a,b"))
	require.NoError(t, r.Set("L=c"))
	require.Equal(t, Repeated{"K=a,b", "L=c"}, r)
}

func TestDurationWithDays(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"24h", 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"d", 0, true},
		{"xd", 0, true},
		{"1day", 0, true},
		{"-1d", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := d.Set(tc.in)
			if tc.err {
				require.ErrorContains(t, err, "want a duration such as")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, time.Duration(d))
		})
	}
}
