package main

import (
	"fmt"
	"path/filepath"

	"potluck/core/pki"
	"potluck/internal/cli"
)

// runCA handles `potluck-core ca init`: create the cluster CA that raft's
// mutual TLS trusts. The operator copies the directory to every core node
// (--cluster-ca) like a cluster secret.
func runCA(args []string, env cli.Env) error {
	if len(args) == 0 || args[0] != "init" {
		return cli.Usagef("usage: potluck-core ca init --out DIR [--name NAME]")
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
