package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/device"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Security events on the wire: the JSON form, paging, and the routes that
// list them (the user's own and, through adminEvents, everyone's).

type eventJSON struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	At        string `json:"at"`
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	Device    string `json:"device"`
	Detail    string `json:"detail"`
}

func toEventJSON(e store.Event) eventJSON {
	return eventJSON{ID: e.ID, Type: e.Type, At: e.At.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		UserID: e.UserID, SessionID: e.SessionID, IP: e.IP, UserAgent: e.UserAgent,
		Device: device.Parse(e.UserAgent).String(), Detail: e.Detail}
}

// limitParam reads ?limit= (1-500; default 50).
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, errInvalidRequest("limit must be an integer from 1 to 500.")
	}
	return n, nil
}

// myEvents is GET /v1/me/events: the caller's own security events. The
// user is the token's, never a parameter, so nobody reads another's log.
func (h *handler) myEvents(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	h.writeEvents(w, r, p.UserID, r.URL.Query().Get("type"))
}

// writeEvents answers one page of events, newest first, for the admin and
// the user route alike.
func (h *handler) writeEvents(w http.ResponseWriter, r *http.Request, userID, typ string) {
	q := r.URL.Query()
	limit, err := limitParam(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var cursor int64
	if c := q.Get("cursor"); c != "" {
		if cursor, err = strconv.ParseInt(c, 10, 64); err != nil || cursor <= 0 {
			h.writeError(w, r, errInvalidRequest("cursor is not one this server returned."))
			return
		}
	}
	list, next, err := h.svc.Events(r.Context(), auth.EventQuery{
		UserID: userID, Type: typ, Cursor: cursor, Limit: limit,
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]eventJSON, 0, len(list))
	for _, e := range list {
		out = append(out, toEventJSON(e))
	}
	var nextCursor *string
	if next > 0 {
		nextCursor = nullable(strconv.FormatInt(next, 10))
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": nextCursor})
}
