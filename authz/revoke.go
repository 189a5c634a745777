package authz

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/extauthz/extauthz/internal/strictjson"
	"github.com/extauthz/extauthz/revocation"
)

// Revocation listing page sizes.
const (
	defaultRevocationPage = 100
	maxRevocationPage     = 1000
)

// revokeNames are the members of a revoke body: exactly one selector (the
// revocation kinds, in order) and an optional reason. Every member is a
// string: a subject id is "key=value" (revocation.KindSubject).
var revokeNames = func() []string {
	names := make([]string, 0, len(revocation.Kinds)+1)
	for _, k := range revocation.Kinds {
		names = append(names, string(k))
	}
	return append(names, "reason")
}()

// revoke records one revocation and answers 200 once the store has made it
// durable. It logs who (remote address, user agent), what (the kind and the
// value, a capability's id only) and why (the reason); never a capability.
func (h *APIHandler) revoke(w http.ResponseWriter, r *http.Request, body []byte) {
	values := make([]string, len(revokeNames))
	err := strictjson.Decode(body, "request", func(rd *strictjson.Reader) error {
		seen, err := rd.Object("", revokeNames, func(i int, p strictjson.Pointer) (err error) {
			values[i], err = rd.String(p)
			return err
		})
		if err == nil && onlyOneSelector(seen) < 0 {
			err = errors.New("exactly one selector (a revocation kind) is required")
		}
		return err
	})
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	i := onlyOneSelector(selectorBits(values))
	if i < 0 {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	actor := logField(r.RemoteAddr, maxLoggedField) + " " + logField(r.UserAgent(), maxLoggedField)
	e, err := revocation.NewEntry(revocation.Kinds[i], values[i], values[len(values)-1], actor, h.now())
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	if err := h.store.Revoke(e); err != nil {
		h.core.log.Error().Err(err).Str("kind", string(e.Kind)).Msg("revocation not stored")
		writeJSONError(w, http.StatusServiceUnavailable, string(ReasonRevocationUnavailable))
		return
	}
	h.core.log.Warn().Str("event", "revocation").Str("kind", string(e.Kind)).Str("value", e.Value).
		Str("reason", e.Reason).Str("remote_addr", logField(r.RemoteAddr, maxLoggedField)).
		Str("user_agent", logField(r.UserAgent(), maxLoggedField)).
		Int64("revoked_at", e.RevokedAt).Int64("expires_at", e.ExpiresAt).Msg("revoked")
	writeJSONValue(w, http.StatusOK, struct {
		Revoked revocation.Entry `json:"revoked"`
	}{e})
}

// selectorBits marks the selectors present with a non-empty value: an empty
// string selects nothing and is refused by NewEntry anyway.
func selectorBits(values []string) uint64 {
	var bits uint64
	for i := range revocation.Kinds {
		if values[i] != "" {
			bits |= 1 << i
		}
	}
	return bits
}

// onlyOneSelector is the index of the one selector in seen, or -1 when there
// is none or more than one.
func onlyOneSelector(seen uint64) int {
	sel := seen & (1<<len(revocation.Kinds) - 1)
	if sel == 0 || sel&(sel-1) != 0 {
		return -1
	}
	for i := range revocation.Kinds {
		if sel == 1<<i {
			return i
		}
	}
	return -1
}

// list answers one page of revocations, ordered by kind then value:
// ?limit=N (1…1000, default 100) and ?after=<next of the previous page>.
func (h *APIHandler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultRevocationPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRevocationPage {
			writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
			return
		}
		limit = n
	}
	cursor, ok := revocation.DecodeCursor(q.Get("after"))
	if !ok {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	page, next := h.store.Set().Page(cursor, limit)
	if page == nil {
		page = []revocation.Entry{}
	}
	writeJSONValue(w, http.StatusOK, struct {
		Revocations []revocation.Entry `json:"revocations"`
		Next        string             `json:"next,omitempty"`
	}{page, next})
}
