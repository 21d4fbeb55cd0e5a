package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"potluck/internal/cli"
	"potluck/internal/version"
)

const defaultAddr = "http://127.0.0.1:8400"

// env is the process the CLI runs in; tests supply their own.
type env struct {
	cli.Env
	stderrIsTTY bool
}

// globals are the flags every command accepts.
type globals struct {
	addr, token, config string
	ca                  string // PEM CA bundle the core API's certificate chains to
	json                bool
	timeout             time.Duration
}

func (g *globals) register(fs *cli.FlagSet) {
	fs.StringVar(&g.addr, "addr", "", "core API address (config file: addr; default "+defaultAddr+")")
	fs.StringVar(&g.token, "token", "", "operator token (config file: token); prefer the environment or the config file")
	fs.StringVar(&g.ca, "ca", "", "PEM file of the CA that signed the core API's TLS certificate (config file: ca; default: the system roots)")
	fs.StringVar(&g.config, "config", "", "config file (default $XDG_CONFIG_HOME/potluck/config, else ~/.config/potluck/config)")
	fs.BoolVar(&g.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&g.timeout, "timeout", 0, "give up after this long (0 = no limit)")
}

// command is one leaf command such as "apps push".
type command struct {
	path     string // "apps push"
	args     string // positional arguments for the usage line
	short    string
	nargs    int    // number of positional arguments
	optional int    // how many more may follow
	cmd      runner // the command's flags and action
}

// runner is a command's own flags and its action. The flags are fields of
// the implementing struct, so the action reads them typed: a misspelt flag
// does not compile.
type runner interface {
	register(fs *cli.FlagSet)
	run(c *cmdCtx) error
}

// action is the runner of a command without flags of its own.
type action func(c *cmdCtx) error

func (action) register(*cli.FlagSet) {}
func (a action) run(c *cmdCtx) error { return a(c) }

// cmdCtx is what a command's run gets.
type cmdCtx struct {
	ctx    context.Context
	env    env
	g      globals
	args   []string
	client *apiclient.Client
}

// run executes the command line and returns the exit code: 0 success,
// 1 failure (API, network, file), 2 bad usage. Every error is one line on
// stderr.
func run(ctx context.Context, args []string, e env) int {
	return cli.Exit(e.Stderr, "potluck", dispatch(ctx, args, e))
}

// globalTakesValue reports whether the global flag name takes a value as the
// next argument (every global flag but the booleans).
func globalTakesValue(name string) bool {
	fs := cli.NewFlagSet("potluck", "", "")
	(&globals{}).register(fs)
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// leadingFlagsLast moves global flags given before the command
// ("potluck --json hosts ls") behind it, where the flag set parses them.
func leadingFlagsLast(args []string) []string {
	var flags []string
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		name := strings.TrimLeft(args[i], "-")
		flags = append(flags, args[i])
		if !strings.Contains(name, "=") && globalTakesValue(name) && i+1 < len(args) {
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
		if len(args) == 0 || isHelp(args[0]) {
			printUsage(e.Stdout, cmds, "")
			return flag.ErrHelp
		}
		if args[0] == "--version" || args[0] == "-version" {
			fmt.Fprintln(e.Stdout, "potluck", version.Get())
			return cli.ErrVersion
		}
		// A group name alone ("apps") or with --help lists its subcommands.
		group := words
		if len(group) > 0 && hasGroup(cmds, group[0]) {
			if len(group) == 1 {
				if len(args) > 1 && isHelp(args[1]) {
					printUsage(e.Stdout, cmds, group[0])
					return flag.ErrHelp
				}
				return cli.Usagef("%s needs a subcommand: %s (see potluck %s --help)", group[0], subcommands(cmds, group[0]), group[0])
			}
			return cli.Usagef("unknown command %q (potluck %s has: %s)", strings.Join(group, " "), group[0], subcommands(cmds, group[0]))
		}
		if len(words) == 0 {
			return cli.Usagef("no command given (see potluck --help)")
		}
		return cli.Usagef("unknown command %q (see potluck --help)", strings.Join(words, " "))
	}
	fs, g := commandFlags(cmd)
	pos, err := fs.ParseArgs(args[used:], e.Env)
	if cli.Done(err) {
		return err
	}
	if err != nil {
		return cli.Usagef("%s: %w", cmd.path, err)
	}
	if len(pos) < cmd.nargs || len(pos) > cmd.nargs+cmd.optional {
		if cmd.nargs == 0 {
			return cli.Usagef("%s takes no arguments, got %q", cmd.path, strings.Join(pos, " "))
		}
		return cli.Usagef("usage: potluck %s %s", cmd.path, cmd.args)
	}
	if err := g.resolve(e); err != nil {
		return err
	}
	var roots *x509.CertPool
	if g.ca != "" {
		if roots, err = apiclient.LoadCAFile(g.ca); err != nil {
			return cli.Usagef("--ca: %w", err)
		}
	}
	client, err := apiclient.New(g.addr, g.token, apiclient.WithHTTPClient(httpClient(roots)))
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	return cmd.cmd.run(&cmdCtx{ctx: ctx, env: e, g: *g, args: pos, client: client})
}

// commandFlags is the flag set of cmd: the global flags, whose environment
// twins are POTLUCK_ADDR and so on, and the command's own, whose twins carry
// the command's name (POTLUCK_DEPLOY_MEMORY for deploy --memory), so that an
// agent's POTLUCK_NAME or POTLUCK_MEMORY in the same shell never leaks into a
// command.
func commandFlags(cmd *command) (*cli.FlagSet, *globals) {
	fs := cli.NewFlagSet("potluck "+cmd.path,
		fmt.Sprintf("Usage: potluck %s [flags] %s\n\n%s", cmd.path, cmd.args, cmd.short), "")
	g := &globals{}
	g.register(fs)
	global := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { global[f.Name] = true })
	cmd.cmd.register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !global[f.Name] {
			fs.SetEnvName(f.Name, cli.EnvName(strings.ReplaceAll(cmd.path, " ", "-")+"-"+f.Name))
		}
	})
	return fs, g
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

// resolve fills address and token: flag or its environment twin (set by
// Parse), then the config file, then the default.
func (g *globals) resolve(e env) error {
	path := g.config
	explicit := path != ""
	if path == "" {
		if dir := e.Getenv("XDG_CONFIG_HOME"); dir != "" {
			path = filepath.Join(dir, "potluck", "config")
		} else if home := e.Getenv("HOME"); home != "" {
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
	pick := func(given, key, def string) string {
		if given != "" {
			return given
		}
		if v := conf[key]; v != "" {
			return v
		}
		return def
	}
	g.addr = pick(g.addr, "addr", defaultAddr)
	g.token = pick(g.token, "token", "")
	g.ca = pick(g.ca, "ca", "")
	if g.token == "" {
		return cli.Usagef("no token: pass --token, set POTLUCK_TOKEN, or put token = ... in %s", displayPath(path))
	}
	return nil
}

func displayPath(p string) string {
	if p == "" {
		return "~/.config/potluck/config"
	}
	return p
}

// readConfig reads "key = value" lines (# comments) with keys addr, token
// and ca.
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
		if !ok || (k != "addr" && k != "token" && k != "ca") {
			return nil, fmt.Errorf("config file %s line %d: want addr = URL, token = TOKEN or ca = PEM FILE", path, line)
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
	fmt.Fprintln(w, "Every command takes --addr, --token, --ca, --config, --json and --timeout; see potluck COMMAND --help.")
	fmt.Fprintln(w, "Address, token and CA come from the flags, POTLUCK_ADDR / POTLUCK_TOKEN / POTLUCK_CA, or the config file")
	fmt.Fprintln(w, "(~/.config/potluck/config, lines `addr = https://core:8400`, `token = ...` and `ca = /path/ca.pem`).")
	fmt.Fprintln(w, "Every flag has a POTLUCK_* environment twin (the flag wins); potluck --version prints the build.")
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
func httpClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, // nil roots: the system's
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 7 * time.Minute,
		IdleConnTimeout:       30 * time.Second,
	}}
}
