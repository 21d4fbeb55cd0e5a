package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/internal/cli"
)

// httpsFlags are an installation's HTTPS settings as deploy's flags.
type httpsFlags struct {
	fs              *cli.FlagSet
	mode            string
	cert, key       string
	redirect        bool
	hsts            string
	certPEM, keyPEM string
}

func (h *httpsFlags) register(fs *cli.FlagSet) {
	h.fs = fs
	fs.StringVar(&h.mode, "https", "", "serve the domain over HTTPS: auto (the Fronts obtain and renew a certificate, e.g. from Let's Encrypt) or off; --tls-cert/--tls-key use your own")
	fs.StringVar(&h.cert, "tls-cert", "", "PEM file of your certificate chain for the domain (with --tls-key; instead of --https auto)")
	fs.StringVar(&h.key, "tls-key", "", "PEM file of the certificate's private key")
	fs.BoolVar(&h.redirect, "redirect-http", false, "answer plain HTTP with a redirect to HTTPS (needs HTTPS)")
	fs.StringVar(&h.hsts, "hsts", "", "send Strict-Transport-Security for this long, e.g. 365d or 24h (needs HTTPS; 0: off)")
}

// given reports whether any HTTPS flag was given.
func (h *httpsFlags) given() bool {
	found := false
	h.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "https", "tls-cert", "tls-key", "redirect-http", "hsts":
			found = true
		}
	})
	return found
}

// request turns the flags into the API's request; nil when none was given.
func (h *httpsFlags) request() (*apiclient.TLSRequest, error) {
	if !h.given() {
		return nil, nil
	}
	req := &apiclient.TLSRequest{RedirectHTTP: h.redirect}
	switch h.mode {
	case "auto":
		req.Mode = "acme"
	case "off":
		req.Mode = "off"
	case "":
		req.Mode = "acme"
	default:
		return nil, cli.Usagef("--https %q: use auto or off (--tls-cert and --tls-key for your own certificate)", h.mode)
	}
	if (h.cert == "") != (h.key == "") {
		return nil, cli.Usagef("--tls-cert and --tls-key go together")
	}
	if h.cert != "" {
		if h.mode != "" {
			return nil, cli.Usagef("--tls-cert uses your certificate; leave out --https %s", h.mode)
		}
		req.Mode = "manual"
		cert, err := os.ReadFile(h.cert)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
		key, err := os.ReadFile(h.key)
		if err != nil {
			return nil, fmt.Errorf("--tls-key: %w", err)
		}
		req.CertPEM, req.KeyPEM = string(cert), string(key)
	}
	if h.hsts != "" {
		d, err := parseDays(h.hsts)
		if err != nil || d < 0 {
			return nil, cli.Usagef("--hsts %q: want a duration such as 365d or 24h", h.hsts)
		}
		req.HSTSMaxAge = int64(d / time.Second)
	}
	if req.Mode == "off" && (req.RedirectHTTP || req.HSTSMaxAge > 0) {
		return nil, cli.Usagef("--redirect-http and --hsts need HTTPS (--https auto or --tls-cert)")
	}
	return req, nil
}

// parseDays is time.ParseDuration that also takes whole days ("365d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// httpsSummary is one line on an installation's HTTPS, "" without it.
func httpsSummary(in *apiclient.Installation) string {
	if in.TLS == nil || in.TLS.Mode == "" || in.TLS.Mode == "off" {
		return ""
	}
	mode := map[string]string{"acme": "automatic certificate (ACME)", "manual": "your certificate"}[in.TLS.Mode]
	var opts []string
	if in.TLS.RedirectHTTP {
		opts = append(opts, "HTTP redirects to HTTPS")
	}
	if in.TLS.HSTSMaxAge > 0 {
		opts = append(opts, "HSTS "+in.TLS.HSTSMaxAge.String())
	}
	line := "https: " + mode
	if len(opts) > 0 {
		line += " (" + strings.Join(opts, ", ") + ")"
	}
	st := in.TLSStatus
	switch {
	case st == nil:
		line += "; certificate: not reported by a Front yet"
	case st.State == "valid" && st.NotAfter != nil:
		line += "; certificate valid until " + st.NotAfter.UTC().Format(time.RFC3339)
	case st.State == "error":
		line += "; certificate ERROR: " + st.Error
		if st.NextAttempt != nil {
			line += " (next attempt " + st.NextAttempt.UTC().Format(time.RFC3339) + ")"
		}
	default:
		line += "; certificate " + st.State
	}
	return line
}
