package pki

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test")
	require.NoError(t, err)
	require.NoError(t, ca.Save(dir))
	require.ErrorContains(t, ca.Save(dir), "already exists", "a CA is never overwritten")

	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	loaded, err := Load(dir)
	require.NoError(t, err)
	require.True(t, loaded.Cert.Equal(ca.Cert))

	again, err := LoadOrCreate(dir, "test")
	require.NoError(t, err)
	require.True(t, again.Cert.Equal(ca.Cert), "LoadOrCreate keeps an existing CA")
}

func TestLoadErrors(t *testing.T) {
	ca, err := NewCA("a")
	require.NoError(t, err)
	other, err := NewCA("b")
	require.NoError(t, err)
	tests := []struct {
		name  string
		setup func(dir string)
		err   string
	}{
		{"missing", func(string) {}, "potluck-core ca init"},
		{"key readable by others", func(dir string) {
			require.NoError(t, ca.Save(dir))
			require.NoError(t, os.Chmod(filepath.Join(dir, KeyFile), 0o644))
		}, "chmod 600"},
		{"key of another CA", func(dir string) {
			require.NoError(t, ca.Save(dir))
			sub := filepath.Join(dir, "other")
			require.NoError(t, other.Save(sub))
			data, err := os.ReadFile(filepath.Join(sub, KeyFile))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, KeyFile), data, 0o600))
		}, "does not belong"},
		{"garbage certificate", func(dir string) {
			require.NoError(t, ca.Save(dir))
			require.NoError(t, os.WriteFile(filepath.Join(dir, CertFile), []byte("nope"), 0o644))
		}, "no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			_, err := Load(dir)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("a")
	require.NoError(t, err)
	stranger, err := NewCA("b")
	require.NoError(t, err)
	member, err := ca.IssueNode("core1", "127.0.0.1", "core1.example")
	require.NoError(t, err)
	require.Equal(t, []string{"core1", "core1.example"}, member.Leaf.DNSNames)
	outsider, err := stranger.IssueNode("core1")
	require.NoError(t, err)

	handshake := func(serverCert, clientCert tls.Certificate) error {
		server, _ := ca.MutualTLS(serverCert)
		_, client := ca.MutualTLS(clientCert)
		ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
		require.NoError(t, err)
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			done <- c.(*tls.Conn).Handshake()
		}()
		c, err := tls.Dial("tcp", ln.Addr().String(), client)
		if err == nil {
			c.Close()
		}
		serr := <-done
		if err != nil {
			return err
		}
		return serr
	}
	require.NoError(t, handshake(member, member))
	require.Error(t, handshake(member, outsider), "a client of another CA is refused")
	require.Error(t, handshake(outsider, member), "a server of another CA is refused")
}

func TestNodeToken(t *testing.T) {
	ca, err := NewCA("test")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, ca.Save(dir))
	copied, err := Load(dir)
	require.NoError(t, err)
	a, err := ca.NodeToken()
	require.NoError(t, err)
	b, err := copied.NodeToken()
	require.NoError(t, err)
	require.Equal(t, a, b, "every node holding the CA derives the same token")
	require.Regexp(t, `^node\.[A-Za-z0-9_-]{43}$`, a)
	other, err := NewCA("test")
	require.NoError(t, err)
	c, err := other.NodeToken()
	require.NoError(t, err)
	require.NotEqual(t, a, c, "another CA, another token")
}
