package main

import (
	"errors"
	"regexp"
	"sort"
	"strings"

	"potluck/apiclient"
)

// Flag names of the API fields a command sends: the API's 400 answers name
// its fields ("container_port is required"), the user typed flags (--port).
var (
	deployFlags = map[string]string{
		"app": "--app", "name": "--name", "domain": "--domain", "fronts": "--fronts", "backs": "--backs",
		"cpus": "--cpus", "memory_mb": "--memory", "disk_mb": "--disk", "container_port": "--port", "env": "--env",
		"placement": "placement (--policy, --requires, --spread, --max-per-host)",
	}
	httpsFlagTerms = map[string]string{"mode": "--https", "cert_pem": "--tls-cert", "key_pem": "--tls-key", "redirect_http": "--redirect-http", "hsts_max_age": "--hsts",
		"tls mode manual": "--tls-cert/--tls-key", "tls mode": "--https"}
	pushFlags  = map[string]string{"name": "--name", "container_port": "--port"}
	scaleFlags = map[string]string{"fronts": "--fronts", "backs": "--backs"}
	tokenFlags = map[string]string{"description": "--description", "ttl": "--ttl", "ttl_seconds": "--ttl", "scope": "--scope"}
)

// inFlagTerms rewrites the message of a 400 answer so that it names the
// command's flags instead of the API's fields. Other errors pass unchanged.
func inFlagTerms(err error, flags map[string]string) error {
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		return err
	}
	fields := make([]string, 0, len(flags))
	for f := range flags {
		fields = append(fields, regexp.QuoteMeta(f))
	}
	sort.Slice(fields, func(i, j int) bool { return len(fields[i]) > len(fields[j]) })
	// The API names the field at the start of each problem ("; "-joined);
	// elsewhere the same word is prose ("the app does not declare one").
	re := regexp.MustCompile(`(^|; )(` + strings.Join(fields, "|") + `)\b`)
	msg := re.ReplaceAllStringFunc(apiErr.Message, func(m string) string {
		sub := re.FindStringSubmatch(m)
		return sub[1] + flags[sub[2]]
	})
	return &apiclient.Error{Status: apiErr.Status, Message: msg}
}
