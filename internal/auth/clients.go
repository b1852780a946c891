package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Registered clients (API.md "Resource servers in any stack"): resource
// servers (the feed, introspection, revocation) and service clients
// (client_credentials tokens). They are stored as resource keys were;
// a resource key of an earlier release is a resource client whose
// client_id is its id.

// ClientSecretPrefix starts every client secret (resource keys of earlier
// releases start with ResourceKeyPrefix and keep working).
const ClientSecretPrefix = "ghs_"

// ErrInvalidClient: client authentication failed (RFC 6749 §5.2).
var ErrInvalidClient = errors.New("invalid client")

// ClientSpec is what `gatehouse clients add` registers.
type ClientSpec struct {
	Name        string
	Kind        string // store.ClientResource or store.ClientService
	Audience    string // an absolute URI, resource clients
	Role        string // service clients (default user)
	Permissions []string
}

// AddClient registers a client. The secret is returned once and stored
// only hashed.
func (s *Service) AddClient(ctx context.Context, spec ClientSpec) (string, store.ResourceKey, error) {
	if spec.Name == "" || len(spec.Name) > 64 {
		return "", store.ResourceKey{}, fmt.Errorf("%w: a name of 1 to 64 bytes is required", ErrInvalidRequest)
	}
	c := store.ResourceKey{ID: newID(), Name: spec.Name, Kind: spec.Kind, CreatedAt: s.now()}
	switch spec.Kind {
	case store.ClientResource:
		if spec.Role != "" || len(spec.Permissions) > 0 {
			return "", c, fmt.Errorf("%w: a resource client has no role or permissions (its tokens are users')", ErrInvalidRequest)
		}
		if spec.Audience != "" {
			if err := CheckAudiences([]string{spec.Audience}); err != nil {
				return "", c, fmt.Errorf("%w: audience %v", ErrInvalidRequest, err)
			}
			if len(spec.Audience) > MaxIssuerLength {
				return "", c, fmt.Errorf("%w: an audience of at most %d bytes", ErrInvalidRequest, MaxIssuerLength)
			}
			c.Audience = spec.Audience
		}
	case store.ClientService:
		c.Role = spec.Role
		if c.Role == "" {
			c.Role = store.RoleUser
		}
		if c.Role != store.RoleUser && c.Role != store.RoleAdmin {
			return "", c, fmt.Errorf("%w: role must be user or admin", ErrInvalidRequest)
		}
		perms, err := NormalizePermissions(spec.Permissions)
		if err != nil {
			return "", c, err
		}
		c.Permissions = perms
		if spec.Audience != "" {
			return "", c, fmt.Errorf("%w: a service client has no audience of its own", ErrInvalidRequest)
		}
	default:
		return "", c, fmt.Errorf("%w: kind must be resource or service", ErrInvalidRequest)
	}
	secret := ClientSecretPrefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	c.Hash = hashKey(secret)
	if err := s.resourceKeys.AddResourceKey(ctx, c); err != nil {
		return "", c, err
	}
	return secret, c, nil
}

// ListClients lists the registered clients (no secrets).
func (s *Service) ListClients(ctx context.Context) ([]store.ResourceKey, error) {
	return s.resourceKeys.ListResourceKeys(ctx)
}

// RemoveClient deletes a client. A service client's tokens are refused at
// once, here, on every instance and by every guard: its removal logs a
// cutoff for its id (its tokens' sub) in the same transaction.
func (s *Service) RemoveClient(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNotFound
	}
	c := s.cutoffAt(s.now())
	if err := s.resourceKeys.RemoveResourceKey(ctx, id, &c); err != nil {
		return s.notFound(err)
	}
	s.revoked.SetUserNotBefore(id, c.NotBefore, c.Until)
	s.afterRevocation(ctx)
	return nil
}

// Audiences is every registered audience: --audience and the resource
// clients' (RFC 8707 resource values a token may be narrowed to).
func (s *Service) Audiences(ctx context.Context) ([]string, error) {
	out := append([]string(nil), s.cfg.Audiences...)
	list, err := s.resourceKeys.ListResourceKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Audience != "" && !slices.Contains(out, c.Audience) {
			out = append(out, c.Audience)
		}
	}
	return out, nil
}

// audienceFor is the aud of a token: every configured audience, or the
// one asked for (resource), which must be registered.
func (s *Service) audienceFor(ctx context.Context, resource string) (token.Audience, error) {
	if resource == "" {
		return s.cfg.Audiences, nil
	}
	list, err := s.Audiences(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(list, resource) {
		return nil, ErrInvalidTarget
	}
	return token.Audience{resource}, nil
}

// AuthenticateClient checks a client's secret (and, when the caller named
// it, its client_id): a configured resource key, a stored client or a
// resource key of an earlier release. Constant time in the secret.
func (s *Service) AuthenticateClient(ctx context.Context, clientID, secret string) (store.ResourceKey, error) {
	if secret == "" || len(secret) > 256 {
		return store.ResourceKey{}, ErrInvalidClient
	}
	h := hashKey(secret)
	for _, k := range s.staticKeys {
		if subtle.ConstantTimeCompare(h, k) == 1 {
			if clientID != "" && clientID != "resource" {
				return store.ResourceKey{}, ErrInvalidClient
			}
			return store.ResourceKey{ID: "resource", Name: "configured resource key", Kind: store.ClientResource}, nil
		}
	}
	if !strings.HasPrefix(secret, ResourceKeyPrefix) && !strings.HasPrefix(secret, ClientSecretPrefix) {
		return store.ResourceKey{}, ErrInvalidClient
	}
	c, err := s.resourceKeys.FindResourceKey(ctx, h)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.ResourceKey{}, ErrInvalidClient
	case err != nil:
		return store.ResourceKey{}, err
	case clientID != "" && subtle.ConstantTimeCompare([]byte(clientID), []byte(c.ID)) != 1:
		return store.ResourceKey{}, ErrInvalidClient
	}
	return c, nil
}

// CheckResource reports whether resource is a registered audience
// (ErrInvalidTarget otherwise). Callers check before changing anything.
func (s *Service) CheckResource(ctx context.Context, resource string) error {
	_, err := s.audienceFor(ctx, resource)
	return err
}

// Narrow re-issues t's access token for one registered audience (RFC
// 8707): the session is not narrowed, the token is.
func (s *Service) Narrow(ctx context.Context, t Tokens, resource string) (Tokens, error) {
	aud, err := s.audienceFor(ctx, resource)
	if err != nil {
		return t, err
	}
	if t.claims.ID == "" {
		return t, errors.New("narrow: tokens not issued by this service")
	}
	t.claims.Audience = aud
	if t.AccessToken, err = s.keys.Sign(t.claims); err != nil {
		return t, err
	}
	return t, nil
}

// ErrInvalidScope: a requested scope the client does not have.
var ErrInvalidScope = errors.New("scope not granted to this client")

// ClientCredentials issues a service client's access token (RFC 6749
// §4.4): sub and client_id are the client's id, its role and permissions
// (or the subset scope asks for), no session and no refresh token. sid is
// the client's id too (verifiers require one); nothing revokes it but the
// client's removal, which is a cutoff for its id. jkt binds it to a DPoP
// key when the request carried a proof.
func (s *Service) ClientCredentials(ctx context.Context, c store.ResourceKey, resource string, scope []string, jkt string) (Tokens, error) {
	if c.Kind != store.ClientService {
		return Tokens{}, ErrUnauthorizedClient
	}
	aud, err := s.audienceFor(ctx, resource)
	if err != nil {
		return Tokens{}, err
	}
	perms := c.Permissions
	if scope != nil {
		for _, p := range scope {
			if !slices.Contains(c.Permissions, p) {
				return Tokens{}, ErrInvalidScope
			}
		}
		perms = scope
	}
	now := s.now()
	iat := now.Truncate(time.Microsecond)
	exp := accessExpiry(now.Add(s.cfg.AccessTTL))
	claims := token.Claims{
		Issuer: s.cfg.Issuer, Audience: aud, ClientID: c.ID, Subject: c.ID, SessionID: c.ID,
		ID: newID(), IssuedAt: token.NumericDate{Time: iat}, ExpiresAt: token.NumericDate{Time: exp},
		Role: c.Role, Permissions: perms, Confirmation: confirmation(jkt),
	}
	at, err := s.keys.Sign(claims)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: at, AccessExpiresAt: exp, IssuedAt: now, claims: claims,
		Session: store.Session{DPoPJKT: jkt},
		User:    store.User{ID: c.ID, Username: c.Name, Role: c.Role, Permissions: perms}}, nil
}
