// Package lb is Potluck's data plane: a fasthttp reverse proxy that routes by
// Host header and balances each route over its backends with NGINX's
// upstream semantics (weighted round robin, max_fails / fail_timeout passive
// health, next-upstream retries). Backends are reached through a pluggable
// Dialer (plain TCP standalone, a meshnet node inside a Front), and the
// routing table can be swapped atomically at any time with Proxy.Update.
//
// The semantics, and where they knowingly differ from NGINX, are written
// down in docs/lb.md.
package lb
