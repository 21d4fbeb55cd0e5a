package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/internal/cli"
)

func TestHTTPSFlags(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(cert, []byte("CERT"), 0o600))
	require.NoError(t, os.WriteFile(key, []byte("KEY"), 0o600))
	tests := []struct {
		args    []string
		want    *apiclient.TLSRequest
		wantErr string
	}{
		{args: nil, want: nil},
		{args: []string{"--https", "auto"}, want: &apiclient.TLSRequest{Mode: "acme"}},
		{args: []string{"--https", "auto", "--redirect-http", "--hsts", "365d"}, want: &apiclient.TLSRequest{Mode: "acme", RedirectHTTP: true, HSTSMaxAge: 365 * 24 * 3600}},
		{args: []string{"--redirect-http"}, want: &apiclient.TLSRequest{Mode: "acme", RedirectHTTP: true}},
		{args: []string{"--https", "off"}, want: &apiclient.TLSRequest{Mode: "off"}},
		{args: []string{"--tls-cert", cert, "--tls-key", key, "--hsts", "24h"}, want: &apiclient.TLSRequest{Mode: "manual", CertPEM: "CERT", KeyPEM: "KEY", HSTSMaxAge: 86400}},
		{args: []string{"--https", "yes"}, wantErr: `--https "yes": use auto or off`},
		{args: []string{"--tls-cert", cert}, wantErr: "--tls-cert and --tls-key go together"},
		{args: []string{"--https", "off", "--redirect-http"}, wantErr: "need HTTPS"},
		{args: []string{"--https", "auto", "--hsts", "a year"}, wantErr: `--hsts "a year"`},
		{args: []string{"--tls-cert", filepath.Join(dir, "missing"), "--tls-key", key}, wantErr: "--tls-cert: open"},
	}
	for _, tc := range tests {
		t.Run(tc.wantErr+" "+filepath.Base(filepath.Join(tc.args...)), func(t *testing.T) {
			var h httpsFlags
			fs := cli.NewFlagSet("potluck deploy", "", "")
			h.register(fs)
			require.NoError(t, fs.Parse(tc.args, cli.Env{Lookup: cli.MapLookup(nil), Stdout: io.Discard, Stderr: io.Discard}))
			got, err := h.request()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestHTTPSSummary(t *testing.T) {
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   apiclient.Installation
		want string
	}{
		{apiclient.Installation{}, ""},
		{apiclient.Installation{TLS: &apiclient.TLSOptions{Mode: "acme"}}, "https: automatic certificate (ACME); certificate: not reported by a Front yet"},
		{apiclient.Installation{TLS: &apiclient.TLSOptions{Mode: "acme", RedirectHTTP: true, HSTSMaxAge: time.Hour},
			TLSStatus: &apiclient.TLSStatus{State: "valid", NotAfter: &until}},
			"https: automatic certificate (ACME) (HTTP redirects to HTTPS, HSTS 1h0m0s); certificate valid until 2027-03-01T00:00:00Z"},
		{apiclient.Installation{TLS: &apiclient.TLSOptions{Mode: "acme"}, TLSStatus: &apiclient.TLSStatus{State: "error", Error: "NXDOMAIN", NextAttempt: &until}},
			"https: automatic certificate (ACME); certificate ERROR: NXDOMAIN (next attempt 2027-03-01T00:00:00Z)"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, httpsSummary(&tc.in))
	}
}
