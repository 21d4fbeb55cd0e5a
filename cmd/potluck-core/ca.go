package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"potluck/core/pki"
	"potluck/internal/cli"
)

const caUsage = "usage: potluck-core ca init --out DIR [--name NAME] | potluck-core ca issue-api --ca DIR --host NAME_OR_IP[,...] --out DIR"

// runCA handles `potluck-core ca init`: create the cluster CA that raft's
// mutual TLS trusts. The operator copies the directory to every core node
// (--cluster-ca) like a cluster secret. `ca issue-api` issues a core API
// certificate from a CA (see docs/operations.md, "TLS for the API").
func runCA(args []string, env cli.Env) error {
	if len(args) > 0 && args[0] == "issue-api" {
		return runIssueAPI(args[1:], env)
	}
	if len(args) == 0 || args[0] != "init" {
		return cli.Usagef(caUsage)
	}
	var out, name string
	fs := cli.NewFlagSet("potluck-core ca init", "Usage: potluck-core ca init --out DIR [--name NAME]\n\nCreates the cluster CA (ca.crt, ca.key with mode 0600) that core nodes use for raft's mutual TLS.",
		"Copy DIR to every core node and start each with --cluster-ca DIR. See docs/security.md.")
	fs.StringVar(&out, "out", "", "directory to write ca.crt and ca.key into (created with mode 0700)")
	fs.StringVar(&name, "name", "potluck", "cluster name recorded in the CA certificate")
	if err := fs.Parse(args[1:], env); err != nil {
		return err
	}
	if out == "" {
		return cli.Usagef("--out is required: the directory to write the CA into")
	}
	ca, err := pki.NewCA(name)
	if err != nil {
		return err
	}
	if err := ca.Save(out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "cluster CA written to %s (keep %s secret; copy the directory to every core node and pass --cluster-ca)\n",
		out, filepath.Join(out, pki.KeyFile))
	return nil
}

// runIssueAPI writes api.crt (the certificate, then the CA's) and api.key
// (mode 0600) for a core node's public API, plus ca.crt for clients.
func runIssueAPI(args []string, env cli.Env) error {
	var caDir, out string
	var names cli.StringList
	var lifetime time.Duration
	fs := cli.NewFlagSet("potluck-core ca issue-api", "Usage: potluck-core ca issue-api --ca DIR --host NAME_OR_IP[,...] --out DIR\n\nIssues a TLS certificate for a core node's public API (--tls-cert, --tls-key) from the CA in DIR.",
		"Agents verify it with --core-ca DIR/ca.crt, the CLI with --ca DIR/ca.crt. See docs/operations.md.")
	fs.StringVar(&caDir, "ca", "", "CA directory (from `potluck-core ca init`; a CA of its own for the API is best)")
	fs.Var(&names, "host", "comma-separated DNS names and IPs agents and the CLI use to reach this core node")
	fs.StringVar(&out, "out", "", "directory to write api.crt, api.key and ca.crt into")
	fs.DurationVar(&lifetime, "lifetime", pki.APILifetime, "how long the certificate is valid")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	if caDir == "" || out == "" || len(names) == 0 || lifetime <= 0 {
		return cli.Usagef("--ca, --host and --out are required, --lifetime positive")
	}
	ca, err := pki.Load(caDir)
	if err != nil {
		return fmt.Errorf("--ca: %w", err)
	}
	certPEM, keyPEM, err := ca.IssueAPI(names, lifetime)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"api.key", keyPEM, 0o600}, {"api.crt", certPEM, 0o644}, {"ca.crt", ca.CertPEM(), 0o644}} {
		if err := os.WriteFile(filepath.Join(out, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "API certificate for %s written to %s (start the core with --tls-cert %s --tls-key %s; give agents --core-ca and the CLI --ca %s)\n",
		strings.Join(names, ", "), out, filepath.Join(out, "api.crt"), filepath.Join(out, "api.key"), filepath.Join(out, "ca.crt"))
	return nil
}
