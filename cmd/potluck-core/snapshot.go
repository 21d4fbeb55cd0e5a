package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/core/api"
	"potluck/core/cluster"
	"potluck/internal/cli"
	"potluck/internal/jsonhttp"
)

// maxSnapshotBytes bounds a snapshot's state, on save and on restore (the
// API's own limit is --max-upload-mb).
const maxSnapshotBytes = 4 << 30

type snapshotOptions struct {
	addr, token, tokenFile, tlsCA string
	timeout                       time.Duration
}

// runSnapshot is `potluck-core snapshot save|restore FILE`: a client of a
// running cluster's API (operator token), for disaster recovery.
func runSnapshot(args []string, env cli.Env) error {
	const usage = "usage: potluck-core snapshot save|restore --addr URL --token-file F FILE"
	if len(args) == 0 || (args[0] != "save" && args[0] != "restore") {
		return cli.Usagef("%s", usage)
	}
	verb := args[0]
	var o snapshotOptions
	fs := cli.NewFlagSet("potluck-core snapshot "+verb, usage+"\n\n"+map[string]string{
		"save":    "Saves the cluster's whole replicated state, as the leader holds it after applying every committed write, into FILE.",
		"restore": "Replaces the whole replicated state of a running cluster (best a fresh one) with the snapshot in FILE.",
	}[verb], "See docs/operations.md, Backup and disaster recovery.")
	fs.StringVar(&o.addr, "addr", "http://127.0.0.1:8400", "API URL of any node of the cluster")
	fs.StringVar(&o.token, "token", "", "operator token (prefer --token-file or the environment)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the operator token")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA bundle to trust for an HTTPS --addr (default: system roots)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	pos, err := fs.ParseArgs(args[1:], env)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("%s: give one FILE", usage)
	}
	token, err := cli.Secret(o.token, o.tokenFile, "token-file")
	if err != nil {
		return err
	}
	if token == "" {
		return cli.Usagef("the operator token is required: --token-file or POTLUCK_TOKEN")
	}
	client, err := snapshotClient(o.tlsCA)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	url := strings.TrimSuffix(o.addr, "/") + "/v1/cluster/snapshot"
	if verb == "save" {
		return saveSnapshot(ctx, client, url, token, pos[0], env)
	}
	return restoreSnapshot(ctx, client, url, token, pos[0], env)
}

func snapshotClient(caFile string) (*http.Client, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := apiclient.LoadCAFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		conf.RootCAs = pool
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf, ResponseHeaderTimeout: time.Minute}}, nil
}

// saveSnapshot downloads into FILE.tmp, checks it, then renames it: FILE is
// either a whole, verified snapshot or absent.
func saveSnapshot(ctx context.Context, client *http.Client, url, token, file string, env cli.Env) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return fmt.Errorf("snapshot save: %w", jsonhttp.ErrorFrom(resp.StatusCode, data))
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(f, io.LimitReader(resp.Body, maxSnapshotBytes+cluster.MaxBackupHeader+1)); err != nil {
		f.Close()
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	h, err := checkSnapshotFile(tmp)
	if err != nil {
		return fmt.Errorf("snapshot save: the downloaded snapshot is not whole: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	fmt.Fprintf(env.Stdout, "snapshot of state index %d (%d bytes, written by %s at %s) saved to %s\n",
		h.Index, h.Size, h.Node, h.Created.Format(time.RFC3339), filepath.Clean(file))
	return nil
}

func checkSnapshotFile(path string) (cluster.BackupHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return cluster.BackupHeader{}, err
	}
	defer f.Close()
	h, _, err := cluster.ReadBackup(f, maxSnapshotBytes)
	return h, err
}

func restoreSnapshot(ctx context.Context, client *http.Client, url, token, file string, env cli.Env) error {
	if _, err := checkSnapshotFile(file); err != nil {
		return fmt.Errorf("snapshot restore: %s: %w", file, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, f)
	if err != nil {
		return err
	}
	req.ContentLength = info.Size()
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("snapshot restore: %w", jsonhttp.ErrorFrom(resp.StatusCode, data))
	}
	var v api.SnapshotView
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("snapshot restore: decoding the answer: %w", err)
	}
	fmt.Fprintf(env.Stdout, "cluster state replaced by the snapshot of state index %d (written by %s at %s)\n",
		v.Index, v.Node, v.Created.Format(time.RFC3339))
	return nil
}
