package cli

import (
	"bytes"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFillsFlagsFromEnvironment(t *testing.T) {
	t.Setenv("POTLUCK_JOIN_TOKEN", "from-env")
	t.Setenv("POTLUCK_NAME", "env-name")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	token := fs.String("join-token", "", "")
	name := fs.String("name", "", "")
	require.NoError(t, Parse(fs, []string{"--name", "flag-name"}))
	require.Equal(t, "from-env", *token)
	require.Equal(t, "flag-name", *name, "the flag wins")

	t.Setenv("POTLUCK_COUNT", "many")
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.Int("count", 1, "")
	require.ErrorContains(t, Parse(fs2, nil), "POTLUCK_COUNT")
	require.ErrorContains(t, Parse(flag.NewFlagSet("z", flag.ContinueOnError), []string{"stray"}), "unexpected arguments")
}

func TestBadFlagIsOneLineAndHelpPrintsUsage(t *testing.T) {
	var out bytes.Buffer
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.String("name", "", "the name")
	SetUsage(fs, "Usage: x", "")
	err := Parse(fs, []string{"--bogus"})
	require.ErrorContains(t, err, "flag provided but not defined: -bogus (see --help)")
	require.Empty(t, out.String(), "no usage dump on a bad flag")
	require.ErrorIs(t, Parse(fs, []string{"--help"}), flag.ErrHelp)
	require.Contains(t, out.String(), "--name  [POTLUCK_NAME]")
}

func TestUsageListsEnvironmentTwins(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("join-token", "", "token to join")
	var out bytes.Buffer
	fs.SetOutput(&out)
	SetUsage(fs, "Usage: x", "docs")
	fs.Usage()
	require.Contains(t, out.String(), "--join-token  [POTLUCK_JOIN_TOKEN]")
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

func TestLoggerAndList(t *testing.T) {
	_, err := Logger(&bytes.Buffer{}, "loud", "text")
	require.ErrorContains(t, err, "log level")
	_, err = Logger(&bytes.Buffer{}, "info", "xml")
	require.ErrorContains(t, err, "log format")
	var l StringList
	require.NoError(t, l.Set("a, b"))
	require.NoError(t, l.Set("c"))
	require.Equal(t, StringList{"a", "b", "c"}, l)
}
