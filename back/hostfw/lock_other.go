//go:build !unix

package hostfw

import "context"

// lockFile is a no-op where flock does not exist (nor iptables).
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
