// Package httpx is the HTTP foundation of every kshop service: a gin engine with
// the JSON envelope of the wire contract, request ids, recovery, body limits,
// tracing, RED metrics, health endpoints, strict JSON binding with per-field
// errors, and a server that shuts down gracefully.
package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Response is the envelope of every response body. Empty members are omitted.
type Response struct {
	Message string       `json:"message,omitempty"`
	Data    any          `json:"data,omitempty"`
	Paging  *Paging      `json:"paging,omitempty"`
	Errors  []FieldError `json:"errors,omitempty"`
}

// FieldError names an input field (by its JSON name) and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Paging describes one page of a list.
type Paging struct {
	Page      int   `json:"page"`
	Size      int   `json:"size"`
	TotalItem int   `json:"total_item"`
	TotalPage int   `json:"total_page"`
	Links     Links `json:"links"`
}

// Links are request-relative URLs to neighbouring pages; Prev and Next are empty
// strings at the ends.
type Links struct {
	Self  string `json:"self"`
	First string `json:"first"`
	Prev  string `json:"prev"`
	Next  string `json:"next"`
	Last  string `json:"last"`
}

// Literal messages of the wire contract.
const (
	MsgValidation      = "input validation error"
	MsgMissingBody     = "missing body request"
	MsgRouteNotFound   = "route not found"
	MsgUnauthorized    = "unauthorized"
	MsgForbidden       = "forbidden"
	MsgSuccess         = "success"
	MsgInternal        = "internal server error"
	MsgBodyTooLarge    = "request body too large"
	MsgUnsupportedType = "content type must be application/json"
	MsgMethodNotAllow  = "method not allowed"
)

// OK writes 200 with data.
func OK(c *gin.Context, data any) { c.PureJSON(http.StatusOK, Response{Data: data}) }

// Created writes 201 with data.
func Created(c *gin.Context, data any) { c.PureJSON(http.StatusCreated, Response{Data: data}) }

// Page writes 200 with a list and its paging.
func Page(c *gin.Context, data any, paging *Paging) {
	c.PureJSON(http.StatusOK, Response{Data: data, Paging: paging})
}

// Message writes status with only a message.
func Message(c *gin.Context, status int, msg string) { c.PureJSON(status, Response{Message: msg}) }

// Fail writes an error response and stops the handler chain.
func Fail(c *gin.Context, status int, msg string, fields ...FieldError) {
	c.Abort()
	c.PureJSON(status, Response{Message: msg, Errors: fields})
}

// StatusClientClosedRequest (nginx's 499) records a request whose client hung
// up before the answer. It is not a server error: counting it as 500 would
// raise the error rate that dashboards and alerts read whenever clients time out.
const StatusClientClosedRequest = 499

// FailUnexpected answers an error no case of the handler expected: 500, logged
// as an error, unless the client has gone away (its request's context is
// cancelled), which is 499 and logged at info; nobody reads that answer.
func FailUnexpected(c *gin.Context, logger *slog.Logger, err error) {
	ctx := c.Request.Context()
	if errors.Is(ctx.Err(), context.Canceled) {
		logger.InfoContext(ctx, "client closed the request", "route", c.FullPath(), "error", err)
		c.Abort()
		c.Status(StatusClientClosedRequest)
		return
	}
	logger.ErrorContext(ctx, "request failed", "route", c.FullPath(), "error", err)
	Fail(c, http.StatusInternalServerError, MsgInternal)
}

// NewPaging computes the paging of page (1-based) of size items out of total, with
// links built from the request URL u (other query parameters are kept).
func NewPaging(page, size, total int, u *url.URL) *Paging {
	if size < 1 {
		size = 1
	}
	pages := (total + size - 1) / size
	link := func(p int) string {
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("limit", strconv.Itoa(size))
		return u.Path + "?" + q.Encode()
	}
	last := pages
	if last < 1 {
		last = 1
	}
	links := Links{Self: link(page), First: link(1), Last: link(last)}
	if page > 1 {
		links.Prev = link(min(page-1, last))
	}
	if page < pages {
		links.Next = link(page + 1)
	}
	return &Paging{Page: page, Size: size, TotalItem: total, TotalPage: pages, Links: links}
}
