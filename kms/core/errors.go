package core

import (
	"fmt"
	"strings"

	"github.com/ppml/ppml/kms/api"
)

// Kind classifies an operation's failure; a transport maps it to its own
// status (the HTTP layer: 400, 401, 403, 404, 409, 413, 429, 503, 500).
type Kind uint8

const (
	KindInternal     Kind = iota // a fault of the service (store, randomness): not the caller's
	KindBadRequest               // the request is malformed or names something invalid
	KindUnauthorized             // no valid API token
	KindForbidden                // the caller's role may not do this
	KindNotFound                 // no such tenant, token, key, policy or entry (for this caller)
	KindConflict                 // it exists already, or contradicts the caller's view
	KindTooLarge                 // a body or document over its limit
	KindRateLimited              // too many requests or outstanding challenges
	KindDenied                   // a release refused, with the rule for each key
	KindUnavailable              // the service is sealed
)

// Error is an operation's failure as its caller sees it: a kind, a stable
// snake_case code and a message (api.Error on the wire).
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// Denials lists each refused key of a KindDenied error.
	Denials []api.Denial
}

func (e *Error) Error() string { return e.Message }

// API is the error's wire form.
func (e *Error) API() api.Error {
	return api.Error{Code: e.Code, Message: e.Message, Denials: e.Denials}
}

// Errorf returns an *Error of kind with code and a formatted message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(err error) *Error {
	if err == api.ErrTooLarge {
		return Errorf(KindTooLarge, "too_large", "%v", err)
	}
	return Errorf(KindBadRequest, "bad_request", "%v", err)
}

// check validates a typed request as the wire decoder does, for callers
// that build requests themselves.
func check(req interface{ Check() error }) error {
	if err := req.Check(); err != nil {
		return badRequest(err)
	}
	return nil
}

func notFound(format string, args ...any) *Error {
	return Errorf(KindNotFound, "not_found", format, args...)
}

// Require returns a KindForbidden error unless the caller has one of roles.
func Require(who *Caller, roles ...string) error {
	if who == nil {
		return Errorf(KindUnauthorized, "unauthorized", "missing API token (Authorization: Bearer TOKEN)")
	}
	for _, r := range roles {
		if r == who.Role {
			return nil
		}
	}
	return Errorf(KindForbidden, "forbidden", "this operation needs role %s; the token's tenant %s has role %s", strings.Join(roles, " or "), who.Tenant, who.Role)
}
