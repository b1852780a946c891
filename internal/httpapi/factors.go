package httpapi

// Second factors (API.md "Second factors (MFA)"): the caller's factors and
// recovery codes, the login's second step, passkey sign-in, and the
// admin's reset.

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

type factorJSON struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	Label      string  `json:"label"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	Active     bool    `json:"active"`
}

type factorRefJSON struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Label string `json:"label"`
}

func toFactorJSON(f store.Factor) factorJSON {
	out := factorJSON{ID: f.ID, Type: f.Type, Label: f.Label, CreatedAt: rfc3339(f.CreatedAt), Active: f.Active}
	if !f.LastUsedAt.IsZero() {
		s := rfc3339(f.LastUsedAt)
		out.LastUsedAt = &s
	}
	return out
}

func (h *handler) listFactors(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	list, left, err := h.svc.Factors(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]factorJSON, 0, len(list))
	for _, f := range list {
		out = append(out, toFactorJSON(f))
	}
	writeJSON(w, http.StatusOK, map[string]any{"factors": out, "recovery_codes_left": left})
}

type labelRequest struct {
	Label string `json:"label"`
}

func (h *handler) enrollTOTP(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in labelRequest
	if err := decodeJSON(w, r, &in, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	e, err := h.svc.EnrollTOTP(r.Context(), p, in.Label)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"factor": toFactorJSON(e.Factor), "secret": e.Secret, "otpauth_uri": e.URI})
}

type codeRequest struct {
	Code string `json:"code"`
}

func (h *handler) verifyFactor(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in codeRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	f, codes, err := h.svc.VerifyFactor(r.Context(), p, r.PathValue("id"), in.Code, h.meta(r))
	h.writeEnrolled(w, r, http.StatusOK, f, codes, err)
}

// writeEnrolled answers an enrolment: the factor, and the recovery codes
// when it is the account's first (shown this once).
func (h *handler) writeEnrolled(w http.ResponseWriter, r *http.Request, status int, f store.Factor, codes []string, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := map[string]any{"factor": toFactorJSON(f)}
	if codes != nil {
		out["recovery_codes"] = codes
	}
	writeJSON(w, status, out)
}

func (h *handler) webauthnRegisterOptions(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in labelRequest
	if err := decodeJSON(w, r, &in, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	opts, err := h.svc.WebAuthnRegisterOptions(r.Context(), p, in.Label)
	h.writeOptions(w, r, opts, err)
}

func (h *handler) writeOptions(w http.ResponseWriter, r *http.Request, opts any, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, opts)
}

// rawBody reads a body that must be one JSON object (a WebAuthn response,
// whose fields the domain's parser checks).
func rawBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, errInvalidRequest("Content-Type must be application/json.")
	}
	body = bytes.TrimSpace(body)
	if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		return nil, errInvalidRequest("The body must be a JSON object.")
	}
	return body, nil
}

func (h *handler) enrollWebAuthn(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	body, err := rawBody(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	f, codes, err := h.svc.EnrollWebAuthn(r.Context(), p, body, h.meta(r))
	h.writeEnrolled(w, r, http.StatusCreated, f, codes, err)
}

func (h *handler) removeFactor(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := h.svc.RemoveFactor(r.Context(), p, r.PathValue("id"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) regenerateCodes(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	codes, err := h.svc.RegenerateRecoveryCodes(r.Context(), p, h.meta(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

func (h *handler) adminResetMFA(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if err := h.svc.ResetMFA(r.Context(), r.PathValue("id"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- the login's second step and passkey sign-in (public) ---

type mfaRequest struct {
	MFAToken string          `json:"mfa_token"`
	Code     string          `json:"code"`
	WebAuthn json.RawMessage `json:"webauthn"`
	Resource string          `json:"resource"`
}

func (h *handler) completeMFA(w http.ResponseWriter, r *http.Request) {
	tr, _, err := requestedTransport(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var in mfaRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	if in.MFAToken == "" {
		h.writeError(w, r, errInvalidRequest("mfa_token is required."))
		return
	}
	if err := h.checkResource(r, in.Resource); err != nil {
		h.writeError(w, r, err)
		return
	}
	t, err := h.svc.CompleteMFA(r.Context(), in.MFAToken, in.Code, rawOrNil(in.WebAuthn), h.meta(r))
	if err == nil {
		t, err = h.narrow(r, t, in.Resource)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeTokens(w, t, tr)
}

type mfaTokenRequest struct {
	MFAToken string `json:"mfa_token"`
}

func (h *handler) mfaWebAuthnOptions(w http.ResponseWriter, r *http.Request) {
	var in mfaTokenRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	opts, err := h.svc.MFAWebAuthnOptions(r.Context(), in.MFAToken)
	h.writeOptions(w, r, opts, err)
}

func (h *handler) passkeyOptions(w http.ResponseWriter, r *http.Request) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	opts, err := h.svc.PasskeyOptions(r.Context())
	h.writeOptions(w, r, opts, err)
}

type passkeyRequest struct {
	Assertion json.RawMessage `json:"assertion"`
}

func (h *handler) passkeyLogin(w http.ResponseWriter, r *http.Request) {
	tr, _, err := requestedTransport(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var in passkeyRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	t, err := h.svc.PasskeyLogin(r.Context(), rawOrNil(in.Assertion), h.meta(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeTokens(w, t, tr)
}

func (h *handler) reauthWebAuthnOptions(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	opts, err := h.svc.ReauthWebAuthnOptions(r.Context(), p)
	h.writeOptions(w, r, opts, err)
}
