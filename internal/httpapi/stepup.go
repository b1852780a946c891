package httpapi

import (
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// Step-up (RFC 9470): the sensitive routes, admin and user alike, need a
// recent proof of the password.

// stepUp refuses callers whose auth_time is older than --reauth-max-age
// with 401 insufficient_user_authentication and the RFC 9470 challenge,
// before anything changes.
func (h *handler) stepUp(next authedHandler) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		if err := h.svc.RequireRecentAuth(p); err != nil {
			h.writeError(w, r, err)
			return
		}
		next(w, r, p)
	}
}
