package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// TLSRequest is an installation's HTTPS settings (PUT
// /v1/installations/NAME/tls, or "tls" on create; docs/https.md).
type TLSRequest struct {
	Mode         string `json:"mode"` // acme, manual or off
	RedirectHTTP bool   `json:"redirect_http,omitempty"`
	HSTSMaxAge   int64  `json:"hsts_max_age,omitempty"` // seconds
	CertPEM      string `json:"cert_pem,omitempty"`     // manual only
	KeyPEM       string `json:"key_pem,omitempty"`
}

// TLSOptions is how an installation is served over HTTPS.
type TLSOptions struct {
	Mode         string        `json:"mode"`
	RedirectHTTP bool          `json:"redirect_http,omitempty"`
	HSTSMaxAge   time.Duration `json:"hsts_max_age,omitempty"`
}

// TLSStatus is the Fronts' last word on an installation's certificate.
type TLSStatus struct {
	State       string     `json:"state"` // obtaining, valid, error
	Error       string     `json:"error,omitempty"`
	Issuer      string     `json:"issuer,omitempty"`
	NotAfter    *time.Time `json:"not_after,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Host        string     `json:"host"`
	Updated     time.Time  `json:"updated"`
}

// SetInstallationTLS replaces an installation's HTTPS settings.
func (c *Client) SetInstallationTLS(ctx context.Context, name string, req TLSRequest) (*Installation, error) {
	var in Installation
	_, err := c.do(ctx, http.MethodPut, "/v1/installations/"+url.PathEscape(name)+"/tls", nil, req, &in)
	return &in, err
}
