package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/front"
	"potluck/internal/acmetest"
	"potluck/internal/dockertest"
	"potluck/internal/localcluster"
)

// tlsInstallation is what the test reads of an installation's HTTPS.
type tlsInstallation struct {
	URL       string `json:"url"`
	TLSStatus *struct {
		State       string     `json:"state"`
		Error       string     `json:"error"`
		NextAttempt *time.Time `json:"next_attempt"`
		NotAfter    *time.Time `json:"not_after"`
	} `json:"tls_status"`
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// TestHTTPSWithACME: a Front obtains a certificate for an installation's
// domain from a real ACME server (Pebble, challenges on loopback), stores
// it in the core, and serves the app over HTTPS with HTTP/2 and HTTP/1.1,
// the chain verified against Pebble's root; plain HTTP redirects and HSTS
// is sent. A domain that does not resolve to the Front fails once, shows
// the error on the installation and is not retried in a loop.
func TestHTTPSWithACME(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a minute with Docker and Pebble")
	}
	tarball := dockertest.SampleImage(t) // skips without a Docker Engine
	pebble := acmetest.New(t)

	s := newSystem(t, 1, 10*time.Second)
	f, err := s.c.StartFrontHTTPS(t.Context(), "front1", front.HTTPSConfig{
		ACMEDirectory: pebble.Directory, ACMERoots: pebble.APIRoots, Email: "ops@e2e.test",
	})
	require.NoError(t, err)
	s.front = f
	// A second Front of the installation: Pebble's validation reaches
	// only front1's ports, so when front2 takes the store's lock and
	// orders the certificate, front1 answers the challenge from the store.
	f2, err := s.c.StartFrontHTTPS(t.Context(), "front2", front.HTTPSConfig{
		ACMEDirectory: pebble.Directory, ACMERoots: pebble.APIRoots, Email: "ops@e2e.test",
	})
	require.NoError(t, err)
	s.backs = append(s.backs, s.startBack(0, backDirs(t, 1)[0]))
	pebble.Start(t, port(t, f.Addr), port(t, f.TLSAddr))
	s.waitReady("front1", "front2", "back1")

	const site = "secure.e2e.test"
	pebble.AddHost(site)
	require.NoError(t, s.c.PushTarball(t.Context(), "web", tarball, 8080))
	start := time.Now()
	require.Equal(t, 201, s.api(http.MethodPost, "/v1/installations", map[string]any{
		"name": "secure", "app": "web", "fronts": 2, "backs": 1, "domain": site, "cpus": 0.25, "memory_mb": 64, "disk_mb": 64,
		"tls": map[string]any{"mode": "acme", "redirect_http": true, "hsts_max_age": 3600},
	}, nil))
	require.Eventually(t, func() bool { return len(s.runningOn("secure")) == 1 }, 90*time.Second, 250*time.Millisecond, "instance never ran")

	roots := pebble.IssuerRoots(t)
	dialFront := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, f.TLSAddr)
	}
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: dialFront, ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: dialFront, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	var lastErr error
	require.Eventually(t, func() bool {
		resp, err := h2.Get("https://" + site + "/")
		if err != nil {
			lastErr = err
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 90*time.Second, 500*time.Millisecond, "never served over HTTPS with a certificate Pebble issued: %v", &lastErr)
	t.Logf("certificate obtained through the Front and served %.1fs after the installation was created", time.Since(start).Seconds())

	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  string
	}{{"h2", h2, "HTTP/2.0"}, {"http/1.1", h1, "HTTP/1.1"}} {
		t.Run("app over HTTPS with "+tc.name, func(t *testing.T) {
			resp, err := tc.client.Get("https://" + site + "/")
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, tc.proto, resp.Proto)
			require.NotEmpty(t, body)
			require.NotEmpty(t, resp.TLS.VerifiedChains, "chain verified against Pebble's root")
			require.NoError(t, resp.TLS.PeerCertificates[0].VerifyHostname(site))
			require.Equal(t, "max-age=3600", resp.Header.Get("Strict-Transport-Security"))
		})
	}

	t.Run("every Front serves the same certificate", func(t *testing.T) {
		serial := func(addr string) string {
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: site})
			if err != nil {
				return err.Error()
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}
		require.Eventually(t, func() bool { return serial(f.TLSAddr) == serial(f2.TLSAddr) }, 30*time.Second, 250*time.Millisecond,
			"front1 and front2 serve different certificates: %s vs %s", serial(f.TLSAddr), serial(f2.TLSAddr))
		t.Logf("orders started: front1 %d, front2 %d (one Front orders, the other loads it from the core)",
			f.Front.CertificateAttempts(site), f2.Front.CertificateAttempts(site))
		require.Equal(t, 1, f.Front.CertificateAttempts(site)+f2.Front.CertificateAttempts(site))
	})

	t.Run("no private key in the clear in the replicated state", func(t *testing.T) {
		st := s.c.Core(0).Node.FSM.State()
		require.NotEmpty(t, st.Certs)
		for k, e := range st.Certs {
			require.NotContains(t, string(e.Value), "PRIVATE KEY", k)
			require.NotContains(t, string(e.Value), "BEGIN", k)
		}
	})

	t.Run("plain HTTP redirects to HTTPS", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+f.Addr+"/path?q=1", nil)
		req.Host = site
		noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
		require.Equal(t, "https://"+site+":"+strconv.Itoa(port(t, f.TLSAddr))+"/path?q=1", resp.Header.Get("Location"))
	})

	t.Run("an unknown server name fails the handshake", func(t *testing.T) {
		_, err := h2.Get("https://other.e2e.test/")
		require.Error(t, err)
	})

	t.Run("the installation shows the certificate", func(t *testing.T) {
		var v tlsInstallation
		require.Eventually(t, func() bool {
			require.Equal(t, 200, s.api(http.MethodGet, "/v1/installations/secure", nil, &v))
			return v.TLSStatus != nil && v.TLSStatus.State == "valid"
		}, 10*time.Second, 200*time.Millisecond)
		require.Equal(t, "https://"+site+"/", v.URL)
		require.NotNil(t, v.TLSStatus.NotAfter)
		require.True(t, v.TLSStatus.NotAfter.After(time.Now().Add(24*time.Hour)))
	})

	t.Run("an uploaded certificate is served", func(t *testing.T) {
		const own = "own.e2e.test"
		require.Equal(t, 201, s.api(http.MethodPost, "/v1/installations", map[string]any{
			"name": "own", "app": "web", "fronts": 1, "backs": 1, "domain": own, "cpus": 0.25, "memory_mb": 64, "disk_mb": 64,
		}, nil))
		// The operator's CA runs an OCSP responder: the Front staples its
		// answer (certmagic fetches it when it caches the certificate).
		oc := acmetest.CertificateWithOCSP(t, own)
		ca := oc.Roots
		require.Equal(t, 200, s.api(http.MethodPut, "/v1/installations/own/tls", map[string]any{
			"mode": "manual", "cert_pem": string(oc.ChainPEM), "key_pem": string(oc.KeyPEM),
		}, nil))
		var v tlsInstallation
		require.Eventually(t, func() bool {
			require.Equal(t, 200, s.api(http.MethodGet, "/v1/installations/own", nil, &v))
			return v.TLSStatus != nil && v.TLSStatus.State == "valid"
		}, 30*time.Second, 200*time.Millisecond, "the Front never loaded the uploaded certificate")
		frontAddr := f.TLSAddr
		if !s.servedBy("own", "front1") {
			frontAddr = f2.TLSAddr
		}
		c, err := tls.Dial("tcp", frontAddr, &tls.Config{RootCAs: ca, ServerName: own})
		require.NoError(t, err, "the uploaded certificate verifies against its own CA")
		staple := c.ConnectionState().OCSPResponse
		c.Close()
		require.NotEmpty(t, staple, "no OCSP response stapled")
		require.NoError(t, oc.CheckStaple(staple))
		require.Positive(t, oc.Requests.Load())

		// HTTPS off: the Front stops serving the certificate, and the
		// core's store drops it with its key and the status.
		require.Equal(t, 200, s.api(http.MethodPut, "/v1/installations/own/tls", map[string]any{"mode": "off"}, nil))
		require.Eventually(t, func() bool {
			c, err := tls.Dial("tcp", frontAddr, &tls.Config{RootCAs: ca, ServerName: own})
			if err == nil {
				c.Close()
			}
			return err != nil
		}, 10*time.Second, 100*time.Millisecond, "the Front still serves the certificate of an installation whose HTTPS is off")
		st := s.c.Core(0).Node.FSM.State()
		for k := range st.Certs {
			require.NotContains(t, k, own, "store key of an installation whose HTTPS is off")
		}
		require.Nil(t, st.TLSStatus[own])
	})

	t.Run("a domain not pointing at the Front fails once and backs off", func(t *testing.T) {
		const lost = "lost.e2e.test" // not added to Pebble's DNS: NXDOMAIN
		require.Equal(t, 201, s.api(http.MethodPost, "/v1/installations", map[string]any{
			"name": "lost", "app": "web", "fronts": 2, "backs": 1, "domain": lost, "cpus": 0.25, "memory_mb": 64, "disk_mb": 64,
			"tls": map[string]any{"mode": "acme"},
		}, nil))
		var v tlsInstallation
		require.Eventually(t, func() bool {
			require.Equal(t, 200, s.api(http.MethodGet, "/v1/installations/lost", nil, &v))
			return v.TLSStatus != nil && v.TLSStatus.State == "error"
		}, 60*time.Second, 250*time.Millisecond, "the error never reached the installation")
		t.Logf("lost.e2e.test: %s (next attempt %v)", v.TLSStatus.Error, v.TLSStatus.NextAttempt)
		require.NotEmpty(t, v.TLSStatus.Error)
		require.NotNil(t, v.TLSStatus.NextAttempt)
		require.True(t, v.TLSStatus.NextAttempt.After(time.Now().Add(30*time.Second)), "next attempt at least ~1 min away")
		attempts := f.Front.CertificateAttempts(lost) + f2.Front.CertificateAttempts(lost)
		time.Sleep(15 * time.Second)
		require.Equal(t, attempts, f.Front.CertificateAttempts(lost)+f2.Front.CertificateAttempts(lost), "orders were retried in a loop")
		require.Equal(t, 1, attempts)
	})
}

// servedBy reports whether the named Front serves an installation.
func (s *system) servedBy(installation, frontName string) bool {
	for _, fd := range s.installation(installation).FrontDetails {
		if fd.Name == frontName {
			return true
		}
	}
	return false
}

// acmeSite starts one core, an HTTPS Front configured by cfg against
// pebble and one Back, and installs the sample app as name on site with an
// ACME certificate. It returns the Front.
func acmeSite(t *testing.T, pebble *acmetest.Pebble, cfg front.HTTPSConfig, tarball, name, site string) *localcluster.FrontHost {
	t.Helper()
	s := newSystem(t, 1, 10*time.Second)
	cfg.ACMEDirectory, cfg.ACMERoots = pebble.Directory, pebble.APIRoots
	f, err := s.c.StartFrontHTTPS(t.Context(), "front1", cfg)
	require.NoError(t, err)
	s.front = f
	s.backs = append(s.backs, s.startBack(0, backDirs(t, 1)[0]))
	pebble.Start(t, port(t, f.Addr), port(t, f.TLSAddr))
	s.waitReady("front1", "back1")
	pebble.AddHost(site)
	require.NoError(t, s.c.PushTarball(t.Context(), "web", tarball, 8080))
	require.Equal(t, 201, s.api(http.MethodPost, "/v1/installations", map[string]any{
		"name": name, "app": "web", "fronts": 1, "backs": 1, "domain": site, "cpus": 0.25, "memory_mb": 64, "disk_mb": 64,
		"tls": map[string]any{"mode": "acme"},
	}, nil))
	return f
}

// TestHTTPSChallengeTypes: each ACME challenge type alone gets the
// certificate through the Front: HTTP-01 on its HTTP port, TLS-ALPN-01 on
// its HTTPS port (acme-tls/1 in ALPN).
func TestHTTPSChallengeTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: Docker and Pebble")
	}
	tarball := dockertest.SampleImage(t) // skips without a Docker Engine
	for _, tc := range []struct {
		name string
		cfg  front.HTTPSConfig
	}{
		{"http-01", front.HTTPSConfig{DisableTLSALPN01: true}},
		{"tls-alpn-01", front.HTTPSConfig{DisableHTTP01: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pebble := acmetest.New(t)
			site := tc.name + ".e2e.test"
			f := acmeSite(t, pebble, tc.cfg, tarball, "site", site)
			roots := pebble.IssuerRoots(t)
			var lastErr error
			require.Eventually(t, func() bool {
				c, err := tls.Dial("tcp", f.TLSAddr, &tls.Config{RootCAs: roots, ServerName: site})
				if err != nil {
					lastErr = err
					return false
				}
				c.Close()
				return true
			}, 60*time.Second, 250*time.Millisecond, "no certificate with %s alone: %v", tc.name, &lastErr)
		})
	}
}

// TestHTTPSRenewal: a certificate is renewed before it expires and every
// request keeps being served over a valid one (Pebble issues 30-second
// certificates; the Front checks every second).
func TestHTTPSRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: Docker and Pebble")
	}
	tarball := dockertest.SampleImage(t) // skips without a Docker Engine
	pebble := acmetest.New(t)
	pebble.Validity = 30 * time.Second
	const site = "renew.e2e.test"
	f := acmeSite(t, pebble, front.HTTPSConfig{RenewCheckInterval: time.Second}, tarball, "renew", site)
	roots := pebble.IssuerRoots(t)
	leaf := func() (serial string, notAfter time.Time, err error) {
		c, err := tls.Dial("tcp", f.TLSAddr, &tls.Config{RootCAs: roots, ServerName: site})
		if err != nil {
			return "", time.Time{}, err
		}
		defer c.Close()
		cert := c.ConnectionState().PeerCertificates[0]
		return cert.SerialNumber.String(), cert.NotAfter, nil
	}
	var first string
	var firstExpiry time.Time
	require.Eventually(t, func() bool {
		var err error
		first, firstExpiry, err = leaf()
		return err == nil
	}, 60*time.Second, 250*time.Millisecond, "no first certificate")
	// Until it expires, every handshake verifies; a new certificate comes
	// before the old one's end.
	for time.Now().Before(firstExpiry) {
		serial, _, err := leaf()
		require.NoError(t, err, "a handshake failed while the certificate was being renewed")
		if serial != first {
			t.Logf("renewed %.1fs before the first certificate expired", time.Until(firstExpiry).Seconds())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the certificate expired at %s without being renewed", firstExpiry)
}
