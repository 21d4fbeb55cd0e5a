package main

import (
	"fmt"
	"os"
	"time"

	"potluck/core/dnsserve"
	"potluck/internal/cli"
)

// dnsOptions are the flags of the adaptive DNS server (docs/dns.md).
type dnsOptions struct {
	listen   string
	zones    cli.StringList
	ns       cli.Repeated
	ttl      time.Duration
	rules    string
	interval time.Duration
	timeout  time.Duration
	rate     float64
}

func dnsFlags(fs *cli.FlagSet, o *dnsOptions) {
	fs.StringVar(&o.listen, "dns-listen", "", "serve the adaptive DNS for --dns-zone on this address, UDP and TCP, e.g. :53 (empty: off; docs/dns.md)")
	fs.Var(&o.zones, "dns-zone", "zone delegated to the core nodes, holding the installations' domains, e.g. apps.example.org (repeatable)")
	fs.Var(&o.ns, "dns-ns", "a name server of the zone (a core node), NAME[=ADDR[,ADDR]], e.g. ns1.apps.example.org=203.0.113.1; addresses are answered for names inside the zone (glue) (repeatable; the first is the SOA's)")
	fs.DurationVar(&o.ttl, "dns-ttl", dnsserve.DefaultTTL, "TTL of address and negative answers: how long resolvers may keep a Front that has died")
	fs.StringVar(&o.rules, "dns-rules", "", "file of client-subnet-to-region rules, one per line: CIDR REGION [REGION...] (nearest first)")
	fs.DurationVar(&o.interval, "dns-check-interval", dnsserve.DefaultCheckInterval, "how often the DNS server checks each Front's public URL")
	fs.DurationVar(&o.timeout, "dns-check-timeout", dnsserve.DefaultCheckTimeout, "how long one check of a Front may take")
	fs.Float64Var(&o.rate, "dns-rate", dnsserve.DefaultRate, "UDP queries per second one client address may send (twice that at once); beyond it queries are dropped (0: no limit)")
}

// config is the DNS server's configuration ("" address: off).
func (o *dnsOptions) config() (string, dnsserve.Config, error) {
	var cfg dnsserve.Config
	if o.listen == "" {
		if len(o.zones) > 0 || len(o.ns) > 0 || o.rules != "" {
			return "", cfg, cli.Usagef("--dns-zone, --dns-ns and --dns-rules need --dns-listen")
		}
		return "", cfg, nil
	}
	if len(o.zones) == 0 || len(o.ns) == 0 {
		return "", cfg, cli.Usagef("--dns-listen needs --dns-zone (what the operator delegates) and --dns-ns (the names the delegation points at)")
	}
	cfg.Zones, cfg.TTL = o.zones, o.ttl
	cfg.Check.Interval, cfg.Check.Timeout = o.interval, o.timeout
	switch {
	case o.rate < 0:
		return "", cfg, cli.Usagef("--dns-rate must not be negative (0: no limit)")
	case o.rate == 0:
		cfg.Rate = -1
	default:
		cfg.Rate, cfg.Burst = o.rate, 2*o.rate
	}
	for _, s := range o.ns {
		ns, err := dnsserve.ParseNameServer(s)
		if err != nil {
			return "", cfg, &cli.UsageError{Err: fmt.Errorf("--dns-ns: %w", err)}
		}
		cfg.NameServers = append(cfg.NameServers, ns)
	}
	if o.rules != "" {
		f, err := os.Open(o.rules)
		if err != nil {
			return "", cfg, fmt.Errorf("--dns-rules: %w", err)
		}
		defer f.Close()
		if cfg.Rules, err = dnsserve.ParseRules(f); err != nil {
			return "", cfg, fmt.Errorf("--dns-rules %s: %w", o.rules, err)
		}
	}
	return o.listen, cfg, nil
}
