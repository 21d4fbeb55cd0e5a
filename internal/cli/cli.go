// Package cli is what Potluck's binaries share on the command line: every
// flag has a POTLUCK_* environment twin (the flag wins), --help lists both,
// and logs go through log/slog at a chosen level and format.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"potluck/internal/human"
	"strings"
)

// EnvName is the environment twin of a flag: --join-token is POTLUCK_JOIN_TOKEN.
func EnvName(flagName string) string {
	return "POTLUCK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then fills every flag not given from its environment
// twin. Positional arguments are an error.
func Parse(fs *flag.FlagSet, args []string) error { return ParseEnv(fs, args, os.LookupEnv) }

// ParseEnv is Parse with the environment read through lookup.
func ParseEnv(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	// Usage is printed for --help only; a bad flag is one line from the caller.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return fmt.Errorf("%w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// SetUsage makes --help print intro, then every flag with its environment
// twin and default, then footer.
func SetUsage(fs *flag.FlagSet, intro, footer string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\n\nEvery flag can also be set with the environment variable shown next to it\n(the flag wins).\n\n", strings.TrimSpace(intro))
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [%s]\n      %s%s\n", f.Name, EnvName(f.Name), f.Usage, def)
		})
		if footer != "" {
			fmt.Fprintf(out, "\n%s\n", strings.TrimSpace(footer))
		}
	}
}

// Logger returns a slog logger writing to w at level ("debug", "info",
// "warn", "error") in format ("text" or "json").
func Logger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// StringList is a repeatable or comma-separated string flag.
type StringList []string

func (s *StringList) String() string { return strings.Join(*s, ",") }

// Set appends the comma-separated values.
func (s *StringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// Size is a byte size flag: 512MiB, 1GiB, 2G, 100M, or plain bytes.
type Size int64

func (s *Size) String() string { return fmt.Sprint(int64(*s)) }

// Set parses a size (see human.ParseSize; a bare number is bytes).
func (s *Size) Set(v string) error {
	n, err := human.ParseSize(v, 1)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}
