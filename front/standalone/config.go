// Package standalone runs potluck-front without a core: it loads listeners,
// routes and health parameters from a YAML file, serves them with lb, and
// reloads the routing table on SIGHUP or when the file changes. An invalid
// new file is refused with a logged reason and the old table keeps serving.
package standalone

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"potluck/front"
	"potluck/internal/human"
	"potluck/lb"
)

// File is the YAML document as written by the operator. Durations and sizes
// are strings so that errors can name the field they came from.
type File struct {
	Listen []string `yaml:"listen"`
	// Workers runs the Front as this many processes (front/workers):
	// `workers: 4`, or `workers: auto` for one per core; default 1.
	Workers *FileWorkers `yaml:"workers"`
	// TLS: HTTPS listeners with certificates from files (SNI picks one).
	TLS         *FileTLS `yaml:"tls"`
	Admin       *string  `yaml:"admin"`
	AccessLog   bool     `yaml:"access_log"`
	MaxBodySize string   `yaml:"max_body_size"`
	// RequestBuffering holds request bodies whole before they are sent
	// (default true); false streams them (lb.Options.StreamRequestBodies).
	RequestBuffering *bool  `yaml:"request_buffering"`
	TempDir          string `yaml:"temp_dir"`
	Scheme           string `yaml:"scheme"`
	// MaxClientConns bounds open client connections (lb.Options.MaxClientConns).
	MaxClientConns int          `yaml:"max_client_conns"`
	Timeouts       FileTimeouts `yaml:"timeouts"`
	Health         FileHealth   `yaml:"health"`
	Pool           FilePool     `yaml:"backend_pool"`
	Routes         []FileRoute  `yaml:"routes"`
}

// FileWorkers is `workers: N` or `workers: auto`.
type FileWorkers struct {
	N    int
	Auto bool
}

// UnmarshalYAML accepts a whole number or "auto".
func (w *FileWorkers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && strings.EqualFold(n.Value, "auto") {
		w.Auto = true
		return nil
	}
	if err := n.Decode(&w.N); err != nil {
		return fmt.Errorf("workers: %q is not a number of processes or auto", n.Value)
	}
	return nil
}

// MaxWorkers bounds workers.
const MaxWorkers = 64

// FileTLS is HTTPS with the operator's certificates: HTTP/1.1 and h2 (ALPN).
type FileTLS struct {
	Listen       []string   `yaml:"listen"`
	Certificates []FileCert `yaml:"certificates"`
	// H2Server picks the HTTP/2 server: "go" or "native" (front/h2);
	// empty: front.DefaultH2Server.
	H2Server string `yaml:"h2_server"`
}

// FileCert is a PEM certificate chain and its key.
type FileCert struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// FileTimeouts are the backend and client timeouts.
type FileTimeouts struct {
	Connect      string `yaml:"connect"`
	Send         string `yaml:"send"`
	Read         string `yaml:"read"`
	ClientIdle   string `yaml:"client_idle"`
	ClientHeader string `yaml:"client_header"`
	ClientBody   string `yaml:"client_body"`
	ClientSend   string `yaml:"client_send"`
}

// FileHealth holds defaults for every backend and the extra failure kinds.
type FileHealth struct {
	MaxFails    *int     `yaml:"max_fails"`
	FailTimeout string   `yaml:"fail_timeout"`
	FailOn      []string `yaml:"fail_on"`
}

// FilePool bounds each backend's connections.
type FilePool struct {
	MaxConns    int    `yaml:"max_conns"`
	IdleTimeout string `yaml:"idle_timeout"`
	RetryBuffer string `yaml:"retry_buffer"`
	// Pipeline > 0 pipelines requests over this many connections per
	// backend (lb.Options.PipelineBackends); 0 = off.
	Pipeline      int `yaml:"pipeline"`
	PipelineDepth int `yaml:"pipeline_depth"`
	// PipelineStall is lb.Options.PipelineStall.
	PipelineStall string `yaml:"pipeline_stall"`
	// PipelineBusy is lb.Options.PipelineBusy.
	PipelineBusy int `yaml:"pipeline_busy"`
}

// FileRoute maps host names to backends.
type FileRoute struct {
	Name     string        `yaml:"name"`
	Hosts    []string      `yaml:"hosts"`
	Default  bool          `yaml:"default"`
	Backends []FileBackend `yaml:"backends"`
}

// FileBackend is one server; in YAML either "host:port" or a mapping.
type FileBackend struct {
	Addr        string `yaml:"addr"`
	Weight      int    `yaml:"weight"`
	MaxFails    *int   `yaml:"max_fails"`
	FailTimeout string `yaml:"fail_timeout"`
}

// UnmarshalYAML accepts the short form `- 10.0.0.1:8080`.
func (b *FileBackend) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Addr = n.Value
		return nil
	}
	type plain FileBackend
	return n.Decode((*plain)(b))
}

// Config is a validated configuration, ready for lb.
type Config struct {
	// Workers is the number of worker processes; 1 serves in this one.
	Workers int
	Listen  []string
	// TLSListen serve HTTPS with TLSCertificates (files loaded at start
	// and at every reload of listeners: a restart).
	TLSListen       []string
	TLSCertificates []tls.Certificate
	H2Server        front.H2Server
	Admin           string // "" disables the admin listener
	Options         lb.Options
	Routes          []lb.Route
}

// DefaultAdmin is the admin listener when the file does not name one.
const DefaultAdmin = "127.0.0.1:9080"

// Load reads and validates a config file.
func Load(path string) (*Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, data, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, data, nil
}

// Parse decodes and validates a YAML document. Errors name the field, e.g.
// `routes[0].backends[1].fail_timeout: "20" is not a duration (e.g. 20s)`.
func Parse(data []byte) (*Config, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	return f.validate()
}

func (f *File) validate() (*Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	dur := func(field, s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			bad(field, "%q is not a positive duration (e.g. 20s, 500ms)", s)
			return def
		}
		return d
	}
	cfg := &Config{Admin: DefaultAdmin, Workers: 1}
	switch w := f.Workers; {
	case w == nil:
	case w.Auto:
		cfg.Workers = min(runtime.NumCPU(), MaxWorkers)
	case w.N < 1 || w.N > MaxWorkers:
		bad("workers", "%d is outside 1..%d (or auto: one per core)", w.N, MaxWorkers)
	default:
		cfg.Workers = w.N
	}
	if len(f.Listen) == 0 {
		f.Listen = []string{":80"}
	}
	for i, l := range f.Listen {
		if _, _, err := net.SplitHostPort(l); err != nil {
			bad(fmt.Sprintf("listen[%d]", i), "%q is not host:port (e.g. :80)", l)
		}
	}
	cfg.Listen = f.Listen
	if f.TLS != nil {
		if len(f.TLS.Listen) == 0 {
			bad("tls.listen", "give at least one address (e.g. :443)")
		}
		for i, l := range f.TLS.Listen {
			if _, _, err := net.SplitHostPort(l); err != nil {
				bad(fmt.Sprintf("tls.listen[%d]", i), "%q is not host:port (e.g. :443)", l)
			}
		}
		if len(f.TLS.Certificates) == 0 {
			bad("tls.certificates", "give at least one {cert: FILE, key: FILE}")
		}
		for i, c := range f.TLS.Certificates {
			pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
			if err != nil {
				bad(fmt.Sprintf("tls.certificates[%d]", i), "%v", err)
				continue
			}
			cfg.TLSCertificates = append(cfg.TLSCertificates, pair)
		}
		cfg.TLSListen = f.TLS.Listen
		if k, err := front.ParseH2Server(f.TLS.H2Server); err != nil {
			bad("tls.h2_server", "%v", err)
		} else {
			cfg.H2Server = k
		}
	}
	if f.Admin != nil {
		cfg.Admin = *f.Admin
		if cfg.Admin != "" {
			if _, _, err := net.SplitHostPort(cfg.Admin); err != nil {
				bad("admin", "%q is not host:port (e.g. 127.0.0.1:9080), or \"\" to disable", cfg.Admin)
			}
		}
	}
	o := &cfg.Options
	o.AccessLog = f.AccessLog
	o.Scheme = f.Scheme
	if f.Scheme != "" && f.Scheme != "http" && f.Scheme != "https" {
		bad("scheme", "%q must be http or https", f.Scheme)
	}
	o.MaxBodySize = lb.DefaultMaxBodySize
	if f.MaxBodySize != "" {
		n, err := parseSize(f.MaxBodySize)
		if err != nil {
			bad("max_body_size", "%v", err)
		}
		o.MaxBodySize = n
	}
	if f.RequestBuffering != nil {
		o.StreamRequestBodies = !*f.RequestBuffering
	}
	if f.TempDir != "" {
		if st, err := os.Stat(f.TempDir); err != nil || !st.IsDir() {
			bad("temp_dir", "%q is not a directory", f.TempDir)
		}
		o.TempDir = f.TempDir
	}
	o.Timeouts.Connect = dur("timeouts.connect", f.Timeouts.Connect, lb.DefaultConnectTimeout)
	o.Timeouts.Send = dur("timeouts.send", f.Timeouts.Send, lb.DefaultSendTimeout)
	o.Timeouts.Read = dur("timeouts.read", f.Timeouts.Read, lb.DefaultReadTimeout)
	o.ClientIdleTimeout = dur("timeouts.client_idle", f.Timeouts.ClientIdle, lb.DefaultClientIdle)
	o.ClientHeaderTimeout = dur("timeouts.client_header", f.Timeouts.ClientHeader, lb.DefaultClientHeader)
	o.ClientBodyTimeout = dur("timeouts.client_body", f.Timeouts.ClientBody, lb.DefaultClientBody)
	o.ClientSendTimeout = dur("timeouts.client_send", f.Timeouts.ClientSend, lb.DefaultClientSend)
	if f.MaxClientConns < 0 {
		bad("max_client_conns", "%d is negative (0 = default %d)", f.MaxClientConns, lb.DefaultMaxClientConns)
	}
	o.MaxClientConns = f.MaxClientConns
	if o.MaxClientConns == 0 {
		o.MaxClientConns = lb.DefaultMaxClientConns
	}
	o.IdleConnTimeout = dur("backend_pool.idle_timeout", f.Pool.IdleTimeout, lb.DefaultIdleConnTime)
	if f.Pool.MaxConns < 0 {
		bad("backend_pool.max_conns", "%d is negative", f.Pool.MaxConns)
	}
	o.MaxConnsPerBackend = f.Pool.MaxConns
	if f.Pool.Pipeline < 0 || f.Pool.Pipeline > 64 {
		bad("backend_pool.pipeline", "%d is outside 0..64 (0 = off)", f.Pool.Pipeline)
	}
	if f.Pool.PipelineDepth < 0 || f.Pool.PipelineDepth > 1024 {
		bad("backend_pool.pipeline_depth", "%d is outside 0..1024 (0 = default %d)", f.Pool.PipelineDepth, lb.DefaultPipelineDepth)
	}
	o.PipelineBackends = f.Pool.Pipeline
	o.PipelineDepth = f.Pool.PipelineDepth
	o.PipelineStall = dur("backend_pool.pipeline_stall", f.Pool.PipelineStall, lb.DefaultPipelineStall)
	if f.Pool.PipelineBusy < 0 || f.Pool.PipelineBusy > 1024 {
		bad("backend_pool.pipeline_busy", "%d is outside 0..1024 (0 = default %d; 1 pipelines every request)", f.Pool.PipelineBusy, lb.DefaultPipelineBusy)
	}
	o.PipelineBusy = f.Pool.PipelineBusy
	if f.Pool.RetryBuffer != "" {
		n, err := parseSize(f.Pool.RetryBuffer)
		if err != nil || n < 0 || n > 64<<20 {
			bad("backend_pool.retry_buffer", "%q must be a size up to 64MiB", f.Pool.RetryBuffer)
		}
		o.RetryBuffer = int(n)
	}
	for i, k := range f.Health.FailOn {
		switch strings.ToLower(k) {
		case "5xx", "http_5xx":
			o.FailOn |= lb.FailOn5xx
		case "429", "http_429":
			o.FailOn |= lb.FailOn429
		default:
			bad(fmt.Sprintf("health.fail_on[%d]", i), "%q is not one of 5xx, 429", k)
		}
	}
	defMaxFails := lb.DefaultMaxFails
	if f.Health.MaxFails != nil {
		defMaxFails = *f.Health.MaxFails
		if defMaxFails < 0 {
			bad("health.max_fails", "%d is negative (0 disables marking down)", defMaxFails)
		}
	}
	defFailTimeout := dur("health.fail_timeout", f.Health.FailTimeout, lb.DefaultFailTimeout)

	if len(f.Routes) == 0 {
		bad("routes", "at least one route is needed")
	}
	for i, r := range f.Routes {
		lr := lb.Route{Name: r.Name, Hosts: r.Hosts, Default: r.Default}
		for j, b := range r.Backends {
			at := fmt.Sprintf("routes[%d].backends[%d]", i, j)
			mf := defMaxFails
			if b.MaxFails != nil {
				mf = *b.MaxFails
				if mf < 0 {
					bad(at+".max_fails", "%d is negative (0 disables marking down)", mf)
				}
			}
			if mf == 0 {
				mf = lb.DisableHealth
			}
			if b.Weight < 0 {
				bad(at+".weight", "%d is negative", b.Weight)
				b.Weight = 0
			}
			lr.Backends = append(lr.Backends, lb.Backend{
				Addr:        b.Addr,
				Weight:      b.Weight,
				MaxFails:    mf,
				FailTimeout: dur(at+".fail_timeout", b.FailTimeout, defFailTimeout),
			})
		}
		cfg.Routes = append(cfg.Routes, lr)
	}
	if len(errs) == 0 {
		if err := lb.ValidateRoutes(cfg.Routes); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseSize reads 1048576, 512k, 1m, 1MiB, 2GiB (human.ParseSize, a bare
// number is bytes) or "unlimited" (-1).
func parseSize(s string) (int64, error) {
	if t := strings.ToLower(strings.TrimSpace(s)); t == "unlimited" || t == "-1" {
		return -1, nil
	}
	n, err := human.ParseSize(s, 1)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (e.g. 1MiB, 512k, unlimited)", s)
	}
	return n, nil
}
