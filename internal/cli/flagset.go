package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"potluck/internal/version"
)

// EnvName is the environment twin of a flag: --join-token-file is
// POTLUCK_JOIN_TOKEN_FILE.
func EnvName(flagName string) string {
	return "POTLUCK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// versionFlag has no environment twin: a variable must not turn a server into
// a program that prints a line and exits.
const versionFlag = "version"

// FlagSet is a flag.FlagSet whose flags have POTLUCK_* environment twins,
// with --version, and a help text that lists every flag with its twin.
type FlagSet struct {
	*flag.FlagSet
	prog          string // first word of the name, for --version
	intro, footer string
	envNames      map[string]string // twins that differ from EnvName
	version       bool
}

// NewFlagSet makes the flag set of a command named name ("potluck-core",
// "potluck-bench table"); --help prints intro, the flags and footer.
func NewFlagSet(name, intro, footer string) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), prog: strings.Fields(name + " x")[0],
		intro: strings.TrimSpace(intro), footer: strings.TrimSpace(footer), envNames: map[string]string{}}
	// Errors are one line from the caller, help goes where Parse says.
	fs.SetOutput(io.Discard)
	fs.BoolVar(&fs.version, versionFlag, false, "print the version, commit and Go version, and exit")
	return fs
}

// SetEnvName gives flag an environment twin other than EnvName's, e.g. one
// scoped to a subcommand.
func (fs *FlagSet) SetEnvName(flagName, env string) { fs.envNames[flagName] = env }

// EnvNameOf is the environment twin of a flag of fs ("" for --version).
func (fs *FlagSet) EnvNameOf(flagName string) string {
	if flagName == versionFlag {
		return ""
	}
	if n, ok := fs.envNames[flagName]; ok {
		return n
	}
	return EnvName(flagName)
}

// Parse parses args, which must all be flags, then fills every flag not given
// on the command line from its environment twin. "help" as the only word is
// --help.
func (fs *FlagSet) Parse(args []string, env Env) error {
	if len(args) == 1 && args[0] == "help" {
		fs.PrintUsage(env.Stdout)
		return flag.ErrHelp
	}
	pos, err := fs.ParseArgs(args, env)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return Usagef("unexpected arguments %q (see --help)", pos)
	}
	return nil
}

// ParseArgs is Parse for commands with positional arguments: they may come
// before, between or after the flags ("apps push FILE --name x"), "--" ends
// the flags, and they are returned in order.
func (fs *FlagSet) ParseArgs(args []string, env Env) ([]string, error) {
	pos, err := fs.parseInterspersed(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.PrintUsage(env.Stdout)
		return nil, err
	}
	if err != nil {
		return nil, &UsageError{fmt.Errorf("%w%s (see --help)", err, fs.hintFor(err))}
	}
	if fs.version {
		fmt.Fprintf(env.Stdout, "%s %s\n", fs.prog, version.Get())
		return nil, ErrVersion
	}
	if err := fs.fillFromEnv(env.Lookup); err != nil {
		return nil, err
	}
	return pos, nil
}

func (fs *FlagSet) parseInterspersed(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.FlagSet.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// fillFromEnv sets every flag not given on the command line from its
// environment twin; a bad value names both the variable and the flag.
func (fs *FlagSet) fillFromEnv(lookup func(string) (string, bool)) error {
	if lookup == nil {
		return nil
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := fs.EnvNameOf(f.Name)
		if given[f.Name] || name == "" {
			return
		}
		if v, ok := lookup(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (the environment twin of --%s): %w%s", name, v, f.Name, err, hint(f)))
			}
		}
	})
	if len(errs) > 0 {
		return &UsageError{errors.Join(errs...)}
	}
	return nil
}

// badValue finds the flag in the flag package's "invalid value" error.
var badValue = regexp.MustCompile(`invalid (?:boolean )?value ".*" for flag -([^:\s]+)`)

// hintFor is hint for the flag a parse error names ("" for other errors).
func (fs *FlagSet) hintFor(err error) string {
	m := badValue.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	if f := fs.Lookup(m[1]); f != nil {
		return hint(f)
	}
	return ""
}

// hint says what a value of f looks like, where the flag package only says
// "parse error".
func hint(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return " (want a duration such as 90s, 5m or 1h30m)"
	case int, int64, uint, uint64:
		return " (want a whole number)"
	case float64:
		return " (want a number such as 0.5)"
	case bool:
		return " (want true or false)"
	}
	return ""
}

// PrintUsage writes the help text: intro, every flag with its environment
// twin and default, then footer.
func (fs *FlagSet) PrintUsage(w io.Writer) {
	if fs.intro != "" {
		fmt.Fprintf(w, "%s\n\n", fs.intro)
	}
	fmt.Fprint(w, "Flags. Each can also be set by the environment variable in brackets;\n"+
		"a flag on the command line beats its variable, which beats the default.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if env := fs.EnvNameOf(f.Name); env != "" {
			fmt.Fprintf(w, "  --%s  [%s]\n      %s%s\n", f.Name, env, f.Usage, def)
		} else {
			fmt.Fprintf(w, "  --%s\n      %s%s\n", f.Name, f.Usage, def)
		}
	})
	if fs.footer != "" {
		fmt.Fprintf(w, "\n%s\n", fs.footer)
	}
}
