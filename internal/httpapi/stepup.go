package httpapi

import (
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// Step-up (RFC 9470): the sensitive routes, admin and user alike, need a
// recent proof (of the second factor, for accounts that have one), or a
// one-time elevation.

// elevationHeader carries a one-time elevation token to a gated request,
// or asks a re-authentication for one ("one-time").
const elevationHeader = "Gatehouse-Elevation"

// stepUp refuses callers whose proof is older than --reauth-max-age, or
// below aal2 for an account with a second factor, with 401
// insufficient_user_authentication and the RFC 9470 challenge, before
// anything changes. A Gatehouse-Elevation token is consumed instead.
func (h *handler) stepUp(next authedHandler) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		elevation := r.Header.Get(elevationHeader)
		if elevation == oneTime {
			elevation = "" // a request for one, meaningful only at reauthenticate
		}
		if err := h.svc.RequireRecentAuth(r.Context(), p, elevation); err != nil {
			h.writeError(w, r, err)
			return
		}
		next(w, r, p)
	}
}
