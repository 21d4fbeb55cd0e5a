package api

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFrontPublicURL: a Front registers where clients reach it; registering
// again (its next start) with another URL updates it; installations show it.
func TestFrontPublicURL(t *testing.T) {
	f := newFixture(t)
	body := func(url string) string {
		return fmt.Sprintf(`{"name":"f1","role":"front","public_key":%q,"cpus":1,"memory_mb":512,"disk_mb":1000,"endpoint":"203.0.113.1:51820","public_url":%q}`, testKey(1), url)
	}
	register := func(url string, want int) RegistrationView {
		tok := f.joinToken(`{}`)
		rec := f.do(request{method: http.MethodPost, path: "/v1/hosts", token: tok.Token, body: body(url)})
		require.Equal(t, want, rec.Code, rec.Body.String())
		return decodeAs[RegistrationView](t, rec)
	}
	require.Equal(t, "http://203.0.113.1", register("http://203.0.113.1", http.StatusCreated).Host.PublicURL)
	require.Equal(t, "https://edge.example.net:8443", register("https://edge.example.net:8443", http.StatusOK).Host.PublicURL)

	f.register("b1", "back", 2)
	f.call("POST", "/v1/apps", `{"name":"web","image":"registry.example/web:1","container_port":8080}`, http.StatusCreated, nil)
	var inst InstallationView
	f.call("POST", "/v1/installations", installationBody(""), http.StatusCreated, &inst)
	require.Equal(t, "https://edge.example.net:8443", inst.FrontViews[0].PublicURL)

	for _, bad := range []string{"ftp://x", "http://", "http://x/path", "203.0.113.1:80", "http://u:p@x"} {
		tok := f.joinToken(`{}`)
		rec := f.do(request{method: http.MethodPost, path: "/v1/hosts", token: tok.Token, body: body(bad)})
		require.Equal(t, http.StatusBadRequest, rec.Code, bad)
		require.Contains(t, errorOf(t, rec), "public_url must be the Front's public address as http(s)://host[:port]", bad)
	}
}
