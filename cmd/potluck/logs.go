package main

import (
	"potluck/apiclient"
	"potluck/internal/cli"
)

// logsCmd prints an installation's container logs.
type logsCmd struct {
	follow   bool
	instance string
	since    string
	tail     int
}

func (l *logsCmd) register(fs *cli.FlagSet) {
	fs.BoolVar(&l.follow, "f", false, "follow: keep printing new lines (until Ctrl-C or --timeout)")
	fs.BoolVar(&l.follow, "follow", false, "same as -f")
	fs.StringVar(&l.instance, "instance", "", "one instance's logs (an id from installations show)")
	fs.StringVar(&l.since, "since", "", "lines since a duration ago (10m) or an RFC 3339 time")
	fs.IntVar(&l.tail, "tail", 0, "last N lines per instance (default 100; all with --since)")
}

func (l *logsCmd) run(c *cmdCtx) error {
	if l.tail < 0 {
		return cli.Usagef("--tail must be a number of lines")
	}
	return c.client.Logs(c.ctx, c.args[0], apiclient.LogQuery{Follow: l.follow, Instance: l.instance, Since: l.since, Tail: l.tail}, c.env.Stdout)
}
