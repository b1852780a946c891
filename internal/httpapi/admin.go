package httpapi

import (
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// admin wraps a handler for role=admin callers; everyone else with a valid
// token gets 403 forbidden. The role is the token's: a demoted admin's
// token was already refused by the revocation check in authed.
func (h *handler) admin(next authedHandler) http.HandlerFunc {
	return h.authed(func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		if !p.IsAdmin() {
			h.writeError(w, r, errForbidden)
			return
		}
		next(w, r, p)
	})
}

// adminStepUp is admin for the routes that change something: they also
// need a recent proof of the password (API.md "Step-up").
func (h *handler) adminStepUp(next authedHandler) http.HandlerFunc {
	return h.admin(h.stepUp(next))
}

// nullable turns "" into JSON null (next_cursor on the last page).
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (h *handler) adminListUsers(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	limit, err := limitParam(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	users, next, err := h.svc.ListUsers(r.Context(), r.URL.Query().Get("cursor"), r.URL.Query().Get("q"), limit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		out = append(out, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "next_cursor": nullable(next)})
}

func (h *handler) adminGetUser(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	u, err := h.svc.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": toUserJSON(u)})
}

type createUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (h *handler) adminCreateUser(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	var in createUserRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	if in.Role == "" {
		in.Role = store.RoleUser
	}
	u, err := h.svc.CreateUser(r.Context(), in.Username, in.Password, in.Role)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": toUserJSON(u)})
}

type updateUserRequest struct {
	Role        *string   `json:"role"`
	Disabled    *bool     `json:"disabled"`
	Permissions *[]string `json:"permissions"`
	Password    *string   `json:"password"`
}

func (h *handler) adminUpdateUser(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	var in updateUserRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	if in.Permissions != nil && *in.Permissions == nil {
		h.writeError(w, r, errInvalidRequest("permissions must be a list (use [] for none)."))
		return
	}
	u, err := h.svc.ChangeUser(r.Context(), r.PathValue("id"), auth.UserChange{
		Role: in.Role, Disabled: in.Disabled, Permissions: in.Permissions, Password: in.Password,
	}, h.meta(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": toUserJSON(u)})
}

func (h *handler) adminDeleteUser(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if err := h.svc.DeleteUser(r.Context(), r.PathValue("id"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) adminUserSessions(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	list, err := h.svc.UserSessions(r.Context(), r.PathValue("id"))
	h.writeSessions(w, r, list, p.SessionID, err)
}

func (h *handler) adminRevokeUserSessions(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if _, err := h.svc.RevokeUserSessions(r.Context(), r.PathValue("id"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) adminRevokeSession(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if err := h.svc.RevokeSession(r.Context(), r.PathValue("id"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) adminRevokeAll(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if _, err := h.svc.RevokeAll(r.Context(), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) adminEvents(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	q := r.URL.Query()
	h.writeEvents(w, r, q.Get("user_id"), q.Get("type"))
}
