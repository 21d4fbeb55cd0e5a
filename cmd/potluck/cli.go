package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"potluck/apiclient"
)

const defaultAddr = "http://127.0.0.1:8400"

// env is the process environment the CLI runs in; tests supply their own.
type env struct {
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
	getenv      func(string) string
	stderrIsTTY bool
}

// usageError is bad command-line input (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// globals are the flags every command accepts.
type globals struct {
	addr, token, config string
	json                bool
	timeout             time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", "", "core API address (env POTLUCK_ADDR, config addr; default "+defaultAddr+")")
	fs.StringVar(&g.token, "token", "", "operator token (env POTLUCK_TOKEN, config token)")
	fs.StringVar(&g.config, "config", "", "config file (env POTLUCK_CONFIG; default ~/.config/potluck/config)")
	fs.BoolVar(&g.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&g.timeout, "timeout", 0, "give up after this long (0 = no limit)")
}

// command is one leaf command such as "apps push".
type command struct {
	path  string // "apps push"
	args  string // positional arguments for the usage line
	short string
	flags func(fs *flagSet)     // extra flags
	run   func(c *cmdCtx) error // the action
	nargs int                   // exact number of positional arguments
}

// flagSet is a flag.FlagSet plus values the command's run reads back.
type flagSet struct {
	*flag.FlagSet
	strings map[string]*string
	ints    map[string]*int
	floats  map[string]*float64
	durs    map[string]*time.Duration
	lists   map[string]*listFlag
	bools   map[string]*bool
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (f *flagSet) str(name, def, usage string) { f.strings[name] = f.String(name, def, usage) }
func (f *flagSet) int(name string, def int, usage string) {
	f.ints[name] = f.Int(name, def, usage)
}
func (f *flagSet) float(name string, def float64, usage string) {
	f.floats[name] = f.Float64(name, def, usage)
}
func (f *flagSet) dur(name string, def time.Duration, usage string) {
	f.durs[name] = f.Duration(name, def, usage)
}
func (f *flagSet) bool(name, usage string) { f.bools[name] = f.Bool(name, false, usage) }
func (f *flagSet) list(name, usage string) {
	l := &listFlag{}
	f.lists[name] = l
	f.Var(l, name, usage)
}

// cmdCtx is what a command's run gets.
type cmdCtx struct {
	ctx    context.Context
	env    env
	g      globals
	fs     *flagSet
	args   []string
	client *apiclient.Client
}

func (c *cmdCtx) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// run executes the command line and returns the exit code: 0 success,
// 1 failure (API, network, file), 2 bad usage. Every error is one line on
// stderr.
func run(ctx context.Context, args []string, e env) int {
	err := dispatch(ctx, args, e)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	msg := strings.Join(strings.Fields(err.Error()), " ") // one line, always
	fmt.Fprintln(e.stderr, "potluck: "+msg)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// valueFlags are the global flags that take a value as the next argument.
var valueFlags = map[string]bool{"addr": true, "token": true, "config": true, "timeout": true}

// leadingFlagsLast moves global flags given before the command
// ("potluck --json hosts ls") behind it, where the flag set parses them.
func leadingFlagsLast(args []string) []string {
	var flags []string
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		name := strings.TrimLeft(args[i], "-")
		flags = append(flags, args[i])
		if valueFlags[name] && !strings.Contains(name, "=") && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
		i++
	}
	if len(flags) == 0 || i == len(args) {
		return args
	}
	words := 0
	for j := i; j < len(args) && j < i+2 && !strings.HasPrefix(args[j], "-"); j++ {
		words++
	}
	out := append([]string{}, args[i:i+words]...)
	out = append(out, flags...)
	return append(out, args[i+words:]...)
}

func dispatch(ctx context.Context, args []string, e env) error {
	cmds := commands()
	args = leadingFlagsLast(args)
	// Find the longest command path matching the leading words.
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
		if len(words) == 2 {
			break
		}
	}
	var cmd *command
	used := 0
	for n := len(words); n > 0 && cmd == nil; n-- {
		p := strings.Join(words[:n], " ")
		for i := range cmds {
			if cmds[i].path == p {
				cmd, used = &cmds[i], n
				break
			}
		}
	}
	if cmd == nil {
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			printUsage(e.stdout, cmds, "")
			return flag.ErrHelp
		}
		// A group name alone ("apps") or with --help lists its subcommands.
		group := words
		if len(group) > 0 && hasGroup(cmds, group[0]) {
			if len(group) == 1 {
				if len(args) > 1 && isHelp(args[1]) {
					printUsage(e.stdout, cmds, group[0])
					return flag.ErrHelp
				}
				return usagef("%s needs a subcommand: %s (see potluck %s --help)", group[0], subcommands(cmds, group[0]), group[0])
			}
			return usagef("unknown command %q (potluck %s has: %s)", strings.Join(group, " "), group[0], subcommands(cmds, group[0]))
		}
		if len(words) == 0 {
			return usagef("no command given (see potluck --help)")
		}
		return usagef("unknown command %q (see potluck --help)", strings.Join(words, " "))
	}
	var g globals
	fs := &flagSet{FlagSet: flag.NewFlagSet("potluck "+cmd.path, flag.ContinueOnError),
		strings: map[string]*string{}, ints: map[string]*int{}, floats: map[string]*float64{},
		durs: map[string]*time.Duration{}, lists: map[string]*listFlag{}, bools: map[string]*bool{}}
	fs.SetOutput(io.Discard)
	g.register(fs.FlagSet)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseInterspersed(fs.FlagSet, args[used:])
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		fmt.Fprintf(e.stdout, "Usage: potluck %s [flags] %s\n\n%s\n\nFlags:\n", cmd.path, cmd.args, cmd.short)
		fs.PrintDefaults()
		return flag.ErrHelp
	}
	if err != nil {
		return usagef("%s: %v", cmd.path, err)
	}
	if len(pos) != cmd.nargs {
		if cmd.nargs == 0 {
			return usagef("%s takes no arguments, got %q", cmd.path, strings.Join(pos, " "))
		}
		return usagef("usage: potluck %s %s", cmd.path, cmd.args)
	}
	if err := g.resolve(e); err != nil {
		return err
	}
	client, err := apiclient.New(g.addr, g.token, apiclient.WithHTTPClient(httpClient()))
	if err != nil {
		return usageError{err.Error()}
	}
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	return cmd.run(&cmdCtx{ctx: ctx, env: e, g: g, fs: fs, args: pos, client: client})
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

func hasGroup(cmds []command, g string) bool {
	for _, c := range cmds {
		if strings.HasPrefix(c.path, g+" ") {
			return true
		}
	}
	return false
}

func subcommands(cmds []command, g string) string {
	var out []string
	for _, c := range cmds {
		if sub, ok := strings.CutPrefix(c.path, g+" "); ok {
			out = append(out, sub)
		}
	}
	return strings.Join(out, ", ")
}

// parseInterspersed parses flags anywhere among the positional arguments
// ("apps push hello.tar --name hello"); "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
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

// resolve fills address and token: flag, then environment, then config file.
func (g *globals) resolve(e env) error {
	path := g.config
	explicit := path != ""
	if path == "" {
		path = e.getenv("POTLUCK_CONFIG")
		explicit = path != ""
	}
	if path == "" {
		if dir := e.getenv("XDG_CONFIG_HOME"); dir != "" {
			path = filepath.Join(dir, "potluck", "config")
		} else if home := e.getenv("HOME"); home != "" {
			path = filepath.Join(home, ".config", "potluck", "config")
		}
	}
	var conf map[string]string
	if path != "" {
		var err error
		conf, err = readConfig(path)
		if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			return err
		}
	}
	pick := func(flagVal, envName, key, def string) string {
		if flagVal != "" {
			return flagVal
		}
		if v := e.getenv(envName); v != "" {
			return v
		}
		if v := conf[key]; v != "" {
			return v
		}
		return def
	}
	g.addr = pick(g.addr, "POTLUCK_ADDR", "addr", defaultAddr)
	g.token = pick(g.token, "POTLUCK_TOKEN", "token", "")
	if g.token == "" {
		return usagef("no token: pass --token, set POTLUCK_TOKEN, or put token = ... in %s", displayPath(path))
	}
	return nil
}

func displayPath(p string) string {
	if p == "" {
		return "~/.config/potluck/config"
	}
	return p
}

// readConfig reads "key = value" lines (# comments) with keys addr and token.
func readConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"'`)
		if !ok || (k != "addr" && k != "token") {
			return nil, fmt.Errorf("config file %s line %d: want addr = URL or token = TOKEN", path, line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return out, nil
}

func printUsage(w io.Writer, cmds []command, group string) {
	fmt.Fprintln(w, "Usage: potluck COMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		if group != "" && !strings.HasPrefix(c.path, group+" ") {
			continue
		}
		fmt.Fprintf(w, "  %-40s %s\n", strings.TrimSpace(c.path+" "+c.args), c.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --addr, --token, --config, --json and --timeout; see potluck COMMAND --help.")
	fmt.Fprintln(w, "Address and token come from the flags, POTLUCK_ADDR / POTLUCK_TOKEN, or the config file")
	fmt.Fprintln(w, "(~/.config/potluck/config, lines `addr = http://core:8400` and `token = ...`).")
}

// printJSON writes v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// httpClient bounds each phase of a call except the body: an unreachable or
// hung core fails in seconds, while uploads may take as long as they need
// and a watch's blocking query (at most 5 minutes) has room to answer.
func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 7 * time.Minute,
		IdleConnTimeout:       30 * time.Second,
	}}
}
