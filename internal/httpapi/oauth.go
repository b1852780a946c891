package httpapi

import (
	"net/http"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The OAuth side of Gatehouse for clients in any stack (API.md "Resource
// servers in any stack"): the metadata document and the token endpoint.

const tokenPath = "/v1/oauth/token"

// metadata is RFC 8414's document, served at both well-known names (the
// OIDC discovery name too: client libraries look for either). Gatehouse
// issues no ID tokens and has no authorization endpoint: the fields say
// only what it does.
func (h *handler) metadata(w http.ResponseWriter, r *http.Request) {
	iss := strings.TrimSuffix(h.svc.Config().Issuer, "/")
	auths := []string{"client_secret_basic", "client_secret_post"}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                h.svc.Config().Issuer,
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"token_endpoint":                        iss + tokenPath,
		"introspection_endpoint":                iss + "/v1/oauth/introspect",
		"revocation_endpoint":                   iss + "/v1/oauth/revoke",
		"token_endpoint_auth_methods_supported": append([]string{"none"}, auths...),
		"introspection_endpoint_auth_methods_supported":    auths,
		"revocation_endpoint_auth_methods_supported":       auths,
		"grant_types_supported":                            []string{"refresh_token", "client_credentials"},
		"response_types_supported":                         []string{},
		"scopes_supported":                                 []string{},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{h.svc.Keys().Alg()},
		"token_endpoint_auth_signing_alg_values_supported": []string{},
		"dpop_signing_alg_values_supported":                dpop.Algorithms,
		"authorization_response_iss_parameter_supported":   false,
	})
}

// oauthTokenResponse is RFC 6749 §5.1's.
type oauthTokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// single returns a form parameter given at most once (RFC 6749 §3.2: no
// parameter may repeat); "" when absent.
func single(r *http.Request, name string) (string, error) {
	switch v := r.PostForm[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", errInvalidRequest("The " + name + " parameter is repeated.")
}

// token is POST /v1/oauth/token: refresh_token (the public first-party
// client: rotation and reuse detection as /v1/auth/refresh) and
// client_credentials (service clients). Errors are RFC 6749 §5.2's.
func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		h.writeError(w, r, err)
		return
	}
	var params [3]string
	for i, name := range []string{"grant_type", "resource", "scope"} {
		v, err := single(r, name)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		params[i] = v
	}
	grant, resource, scope := params[0], params[1], params[2]
	// A client that authenticates must do so correctly, whatever the grant.
	var client *store.ResourceKey
	if r.Header.Get("Authorization") != "" || r.PostForm.Has("client_secret") {
		c, err := h.authenticateClient(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		client = &c
	}
	if resource != "" {
		if err := h.svc.CheckResource(r.Context(), resource); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	var t auth.Tokens
	switch grant {
	case "refresh_token":
		rt, err := single(r, "refresh_token")
		if err == nil && rt == "" {
			err = errInvalidRequest("refresh_token is required.")
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if scope != "" {
			h.writeError(w, r, auth.ErrInvalidScope)
			return
		}
		if t, err = h.svc.Refresh(r.Context(), rt, h.meta(r)); err != nil {
			h.writeError(w, r, err)
			return
		}
	case "client_credentials":
		if client == nil {
			h.writeError(w, r, auth.ErrInvalidClient)
			return
		}
		var want []string
		if scope != "" {
			want = strings.Fields(scope)
		}
		var err error
		if t, err = h.svc.ClientCredentials(r.Context(), *client, resource, want, proofKey(r.Context())); err != nil {
			h.writeError(w, r, err)
			return
		}
		resource = "" // narrowed when issued
	case "":
		h.writeError(w, r, errInvalidRequest("grant_type is required."))
		return
	default:
		h.writeError(w, r, errUnsupportedGrant)
		return
	}
	if resource != "" {
		var err error
		if t, err = h.svc.Narrow(r.Context(), t, resource); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	typ := "Bearer"
	if t.Session.DPoPJKT != "" {
		typ = "DPoP"
	}
	out := oauthTokenResponse{AccessToken: t.AccessToken, TokenType: typ,
		ExpiresIn: secondsUntil(t.AccessExpiresAt, t.IssuedAt), RefreshToken: t.RefreshToken}
	if grant == "client_credentials" {
		out.Scope = strings.Join(t.User.Permissions, " ")
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, out)
}

var errUnsupportedGrant = &apiError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be refresh_token or client_credentials."}

// tokenEndpointError is an error as the token endpoint answers it (RFC
// 6749 §5.2, RFC 9449 §5): a refresh token that cannot be used is
// invalid_grant, DPoP refusals are 400.
func tokenEndpointError(ae *apiError) *apiError {
	switch ae.code {
	case "invalid_refresh_token", "refresh_token_reused", "session_expired", "session_revoked", "account_disabled":
		return &apiError{http.StatusBadRequest, "invalid_grant", ae.description}
	case "invalid_dpop_proof", "use_dpop_nonce":
		return &apiError{http.StatusBadRequest, ae.code, ae.description}
	}
	return ae
}
