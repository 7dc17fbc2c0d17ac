// Package identity reads who is calling from the headers the gateway sets after it
// verified the caller's token (docs/api.md#identity-behind-the-gateway). Services
// behind the gateway trust these headers because only the gateway can reach them
// (a NetworkPolicy in Kubernetes) and because the gateway strips any the client
// sent.
package identity

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/httpx"
)

// The headers the gateway sets.
const (
	HeaderUserID = "X-User-ID"
	HeaderEmail  = "X-User-Email"
	HeaderRoles  = "X-User-Roles"
)

// Roles granted by the auth service.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// User is the authenticated caller.
type User struct {
	ID    int64
	Email string
	Roles []string
}

// HasRole reports whether the user holds role.
func (u User) HasRole(role string) bool { return slices.Contains(u.Roles, role) }

// FromRequest reads the caller; ok is false when the headers are missing or
// malformed (a positive numeric id is required).
func FromRequest(r *http.Request) (User, bool) {
	id, err := strconv.ParseInt(r.Header.Get(HeaderUserID), 10, 64)
	if err != nil || id <= 0 {
		return User{}, false
	}
	u := User{ID: id, Email: r.Header.Get(HeaderEmail)}
	for _, role := range strings.Split(r.Header.Get(HeaderRoles), ",") {
		if role = strings.TrimSpace(role); role != "" {
			u.Roles = append(u.Roles, role)
		}
	}
	return u, true
}

// Header sets u on outgoing headers, as the gateway does.
func (u User) Header(h http.Header) {
	h.Set(HeaderUserID, strconv.FormatInt(u.ID, 10))
	h.Set(HeaderEmail, u.Email)
	h.Set(HeaderRoles, strings.Join(u.Roles, ","))
}

const contextKey = "kshop.identity"

// Require lets a request through only with an identity (else 401 unauthorized)
// and, when roles are given, only if the user holds one of them (else 403
// forbidden). Handlers read the user with FromContext.
func Require(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, ok := FromRequest(c.Request)
		if !ok {
			httpx.Fail(c, http.StatusUnauthorized, httpx.MsgUnauthorized)
			c.Abort()
			return
		}
		if len(roles) > 0 && !slices.ContainsFunc(roles, u.HasRole) {
			httpx.Fail(c, http.StatusForbidden, httpx.MsgForbidden)
			c.Abort()
			return
		}
		c.Set(contextKey, u)
		c.Next()
	}
}

// FromContext returns the user Require stored.
func FromContext(c *gin.Context) User {
	u, _ := c.Get(contextKey)
	user, _ := u.(User)
	return user
}
