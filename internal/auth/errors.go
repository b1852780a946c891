package auth

import "errors"

// Domain errors. internal/httpapi maps each to one API error code in one
// table; nothing else decides what a client sees.
var (
	ErrInvalidRequest       = errors.New("invalid request")
	ErrWeakPassword         = errors.New("password does not meet the length requirements")
	ErrUsernameTaken        = errors.New("username taken")
	ErrRegistrationDisabled = errors.New("registration disabled")
	ErrInvalidCredentials   = errors.New("invalid credentials")
	ErrAccountDisabled      = errors.New("account disabled")
	ErrInvalidToken         = errors.New("invalid access token")
	ErrTokenExpired         = errors.New("access token expired")
	ErrTokenRevoked         = errors.New("access token revoked")
	ErrInvalidRefreshToken  = errors.New("invalid refresh token")
	ErrRefreshTokenReused   = errors.New("refresh token reused")
	ErrSessionExpired       = errors.New("session expired")
	ErrSessionRevoked       = errors.New("session revoked")
	ErrNotFound             = errors.New("not found")
	ErrRateLimited          = errors.New("rate limited")
	// ErrStepUpRequired: the operation needs a recent proof of the
	// password (auth_time within ReauthMaxAge); see StepUpError.
	ErrStepUpRequired = errors.New("recent authentication required")
	// ErrLastAdmin refuses deleting, demoting or disabling the last
	// enabled admin.
	ErrLastAdmin = errors.New("last enabled admin")
	// ErrMFARequired: the password was right and the account has a second
	// factor; see MFARequiredError for the ticket.
	ErrMFARequired = errors.New("second factor required")
	// ErrInvalidMFACode: a wrong or replayed code, or a failed WebAuthn
	// assertion.
	ErrInvalidMFACode = errors.New("invalid second factor")
	// ErrMFAEnrollmentRequired: the account's role requires a second
	// factor and it has none yet (--require-mfa).
	ErrMFAEnrollmentRequired = errors.New("second factor enrolment required")
	// ErrDPoPMismatch: a DPoP-bound session's refresh came without a
	// proof by its key (or with another key's). Nothing changed.
	ErrDPoPMismatch = errors.New("the session is bound to another DPoP key")
	// ErrInvalidTarget: a resource (RFC 8707) that is not a registered
	// audience.
	ErrInvalidTarget = errors.New("unknown resource")
	// ErrUnauthorizedClient: the client may not use this grant.
	ErrUnauthorizedClient = errors.New("client not allowed this grant")
)
