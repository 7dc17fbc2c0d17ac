package auth

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/tokens"
)

// bcrypt reads at most 72 bytes; the validator counts characters, so byte
// length is checked on its own.
const maxPasswordBytes = 72

type registerRequest struct {
	Email    string `json:"email" binding:"required,email,max=255"`
	Password string `json:"password" binding:"required,min=8,max=72"`
}

type verifyRequest struct {
	Email             string `json:"email" binding:"required,email,max=255"`
	VerificationToken string `json:"verification_token" binding:"required,len=6,number"`
}

type resendRequest struct {
	Email string `json:"email" binding:"required,email,max=255"`
}

// resetRequest asks for a reset code; a resetPassword spends it.
type resetRequest = resendRequest

type resetPasswordRequest struct {
	Email      string `json:"email" binding:"required,email,max=255"`
	ResetToken string `json:"reset_token" binding:"required,len=6,number"`
	Password   string `json:"password" binding:"required,min=8,max=72"`
}

type loginRequest struct {
	Email    string `json:"email" binding:"required,email,max=255"`
	Password string `json:"password" binding:"required,max=72"`
}

type verifiedUser struct {
	ID         int64  `json:"id"`
	Email      string `json:"email"`
	IsVerified bool   `json:"is_verified"`
}

// The answers that say nothing about the address's account: the e-mail says
// what happened.
const (
	msgCheckMail       = "check your e-mail"
	msgPasswordChanged = "password changed"
	msgAccountDeleted  = "account deleted"
)

type handlers struct {
	svc     *Service
	keys    tokens.KeySource
	limited *prometheus.CounterVec
	logger  *slog.Logger
}

func (h *handlers) routes(r gin.IRoutes) {
	r.POST("/register", h.register)
	r.POST("/verify", h.verify)
	r.POST("/resend-verification", h.resend)
	r.POST("/login", h.login)
	r.POST("/request-password-reset", h.requestPasswordReset)
	r.POST("/reset-password", h.resetPassword)
	r.POST("/delete-account", h.deleteAccount)
	r.GET("/.well-known/jwks.json", h.jwks)
}

// bindRegister and bindLogin add bcrypt's byte limit on passwords to the
// binding tags, which count characters.
func bindRegister(c *gin.Context) (registerRequest, bool) {
	req, ok := httpx.Bind[registerRequest](c)
	return req, ok && passwordFits(c, req.Password)
}

func bindLogin(c *gin.Context) (loginRequest, bool) {
	req, ok := httpx.Bind[loginRequest](c)
	return req, ok && passwordFits(c, req.Password)
}

func bindResetPassword(c *gin.Context) (resetPasswordRequest, bool) {
	req, ok := httpx.Bind[resetPasswordRequest](c)
	return req, ok && passwordFits(c, req.Password)
}

// register answers 202 whatever the address's state (Service.Register).
func (h *handlers) register(c *gin.Context) {
	req, ok := bindRegister(c)
	if !ok {
		return
	}
	if err := h.svc.Register(c.Request.Context(), req.Email, req.Password); err != nil {
		h.fail(c, err)
		return
	}
	httpx.Message(c, http.StatusAccepted, msgCheckMail)
}

// verify counts the guess against the client address too: through the
// gateway, which sets X-Forwarded-For to the address it sees.
func (h *handlers) verify(c *gin.Context) {
	req, ok := httpx.Bind[verifyRequest](c)
	if !ok {
		return
	}
	user, err := h.svc.Verify(c.Request.Context(), req.Email, req.VerificationToken, c.ClientIP())
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.OK(c, verifiedUser{ID: user.ID, Email: user.Email, IsVerified: user.IsVerified})
}

func (h *handlers) resend(c *gin.Context) {
	req, ok := httpx.Bind[resendRequest](c)
	if !ok {
		return
	}
	if err := h.svc.ResendVerification(c.Request.Context(), req.Email); err != nil {
		h.fail(c, err)
		return
	}
	httpx.Message(c, http.StatusOK, httpx.MsgSuccess)
}

// login and deleteAccount count wrong passwords against the client address
// too (as verify does).
func (h *handlers) login(c *gin.Context) {
	req, ok := bindLogin(c)
	if !ok {
		return
	}
	token, err := h.svc.Login(c.Request.Context(), req.Email, req.Password, c.ClientIP())
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.OK(c, token)
}

func (h *handlers) requestPasswordReset(c *gin.Context) {
	req, ok := httpx.Bind[resetRequest](c)
	if !ok {
		return
	}
	if err := h.svc.RequestPasswordReset(c.Request.Context(), req.Email); err != nil {
		h.fail(c, err)
		return
	}
	httpx.Message(c, http.StatusAccepted, msgCheckMail)
}

func (h *handlers) resetPassword(c *gin.Context) {
	req, ok := bindResetPassword(c)
	if !ok {
		return
	}
	if err := h.svc.ResetPassword(c.Request.Context(), req.Email, req.ResetToken, req.Password, c.ClientIP()); err != nil {
		h.fail(c, err)
		return
	}
	httpx.Message(c, http.StatusOK, msgPasswordChanged)
}

// deleteAccount takes a login's body: the account and its password.
func (h *handlers) deleteAccount(c *gin.Context) {
	req, ok := bindLogin(c)
	if !ok {
		return
	}
	if err := h.svc.DeleteAccount(c.Request.Context(), req.Email, req.Password, c.ClientIP()); err != nil {
		h.fail(c, err)
		return
	}
	httpx.Message(c, http.StatusOK, msgAccountDeleted)
}

// jwks serves the public keys as a bare JWKS document (not in the envelope):
// verifiers expect RFC 7517's shape. Keys not yet signing are included, which is
// the point of publishing them ahead of activation.
func (h *handlers) jwks(c *gin.Context) {
	doc, err := h.keys.KeySet().Public().MarshalJWKS(false)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=60")
	c.Data(http.StatusOK, "application/json", doc)
}

func passwordFits(c *gin.Context, password string) bool {
	if len(password) > maxPasswordBytes {
		httpx.Fail(c, http.StatusBadRequest, httpx.MsgValidation,
			httpx.FieldError{Field: "password", Message: "must be at most 72 bytes"})
		return false
	}
	return true
}

// fail maps a use case's error to the contract's status and message.
func (h *handlers) fail(c *gin.Context, err error) {
	var limit *LimitError
	switch {
	case errors.As(err, &limit):
		if h.limited != nil {
			h.limited.WithLabelValues(limit.Limit).Inc()
		}
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(limit.RetryAfter.Seconds()))))
		httpx.Fail(c, http.StatusTooManyRequests, limit.Error())
	case errors.Is(err, ErrInvalidCode):
		httpx.Fail(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrBadCredentials):
		httpx.Fail(c, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ErrNotVerified):
		httpx.Fail(c, http.StatusForbidden, err.Error())
	default:
		httpx.FailUnexpected(c, h.logger, err)
	}
}
