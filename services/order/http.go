package order

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
)

type createRequest struct {
	RequestID   string        `json:"request_id" binding:"required,min=1,max=64"`
	Description string        `json:"description" binding:"max=500"`
	Items       []itemRequest `json:"items" binding:"required,min=1,max=50,unique=ProductID,dive"`
}

type itemRequest struct {
	ProductID int64 `json:"product_id" binding:"required,min=1"`
	Quantity  int64 `json:"quantity" binding:"required,min=1,max=1000"`
}

type actionRequest struct {
	RequestID string `json:"request_id" binding:"required,min=1,max=64"`
	OrderID   int64  `json:"order_id" binding:"required,min=1"`
}

const (
	dateLayout   = "02-01-2006" // DD-MM-YYYY
	defaultLimit = 10
	maxLimit     = 25
	defaultDays  = 30
)

type handlers struct {
	orders *Orders
	logger *slog.Logger
	now    func() time.Time
}

func (h *handlers) routes(r gin.IRoutes) {
	user := identity.Require()
	r.POST("/orders", user, h.create)
	r.POST("/orders/pay", user, h.pay)
	r.POST("/orders/cancel", user, h.cancel)
	r.GET("/orders", user, h.list)
	r.GET("/orders/:id", user, h.get)
}

func customerOf(c *gin.Context) Customer {
	u := identity.FromContext(c)
	return Customer{ID: u.ID, Email: u.Email}
}

func (h *handlers) create(c *gin.Context) {
	req, ok := httpx.Bind[createRequest](c)
	if !ok {
		return
	}
	customer := customerOf(c)
	if customer.Email == "" {
		httpx.Fail(c, http.StatusUnauthorized, httpx.MsgUnauthorized)
		return
	}
	lines := make([]Line, len(req.Items))
	for i, it := range req.Items {
		lines[i] = Line(it)
	}
	order, created, err := h.orders.Create(c.Request.Context(), customer, req.RequestID, req.Description, lines)
	if err != nil {
		h.fail(c, err)
		return
	}
	if created {
		httpx.Created(c, order)
		return
	}
	httpx.OK(c, order)
}

func (h *handlers) pay(c *gin.Context) {
	req, ok := httpx.Bind[actionRequest](c)
	if !ok {
		return
	}
	answer, err := h.orders.Pay(c.Request.Context(), customerOf(c), req.RequestID, req.OrderID)
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.OK(c, answer)
}

func (h *handlers) cancel(c *gin.Context) {
	req, ok := httpx.Bind[actionRequest](c)
	if !ok {
		return
	}
	answer, err := h.orders.CancelByCustomer(c.Request.Context(), customerOf(c), req.RequestID, req.OrderID)
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.OK(c, answer)
}

func (h *handlers) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "id")
	if !ok {
		return
	}
	order, err := h.orders.Get(c.Request.Context(), customerOf(c).ID, id)
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.OK(c, order)
}

func (h *handlers) list(c *gin.Context) {
	q, ok := h.listQuery(c)
	if !ok {
		return
	}
	list, total, err := h.orders.List(c.Request.Context(), customerOf(c).ID, q)
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.Page(c, list, httpx.NewPaging(q.Page, q.Limit, total, c.Request.URL))
}

// listQuery reads the list's filters and paging, or writes the 400.
func (h *handlers) listQuery(c *gin.Context) (ListQuery, bool) {
	today := h.now().UTC().Truncate(24 * time.Hour)
	q := ListQuery{From: today.AddDate(0, 0, -defaultDays), To: today, Page: 1, Limit: defaultLimit}
	var problems []httpx.FieldError
	bad := func(field, message string) {
		problems = append(problems, httpx.FieldError{Field: field, Message: message})
	}
	readDate := func(name string, dst *time.Time) {
		if raw, ok := c.GetQuery(name); ok {
			d, err := time.Parse(dateLayout, raw)
			if err != nil {
				bad(name, "must be a date as DD-MM-YYYY")
				return
			}
			*dst = d
		}
	}
	readInt := func(name string, dst *int, high int) {
		if raw, ok := c.GetQuery(name); ok {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > high {
				bad(name, "must be an integer from 1 to "+strconv.Itoa(high))
				return
			}
			*dst = n
		}
	}
	readDate("start-date", &q.From)
	readDate("end-date", &q.To)
	readInt("page", &q.Page, 1_000_000)
	readInt("limit", &q.Limit, maxLimit)
	if len(problems) == 0 && q.To.Before(q.From) {
		bad("end-date", "must not be before start-date")
	}
	if status, ok := c.GetQuery("status"); ok {
		if s := Status(status); slices.Contains(statuses, s) {
			q.Status = s
		} else {
			names := make([]string, len(statuses))
			for i, s := range statuses {
				names[i] = string(s)
			}
			bad("status", "must be one of: "+strings.Join(names, ", "))
		}
	}
	if len(problems) > 0 {
		httpx.Fail(c, http.StatusBadRequest, httpx.MsgValidation, problems...)
		return ListQuery{}, false
	}
	return q, true
}

// fail maps a use case's error to the contract's status and message.
func (h *handlers) fail(c *gin.Context, err error) {
	var notOnSale *ProductNotOnSaleError
	var notYetKnown *ProductNotYetKnownError
	var overLimit *PendingLimitError
	switch {
	case errors.Is(err, ErrOrderNotFound):
		httpx.Fail(c, http.StatusNotFound, ErrOrderNotFound.Error())
	case errors.As(err, &notOnSale):
		httpx.Fail(c, http.StatusNotFound, ErrProductNotFound.Error(), httpx.FieldError{Field: "items", Message: strconv.FormatInt(notOnSale.ProductID, 10) + " is not a product on sale"})
	case errors.As(err, &notYetKnown):
		// The catalogue copy catches up within milliseconds (docs/order.md).
		c.Header("Retry-After", "1")
		httpx.Fail(c, http.StatusConflict, ErrProductNotYetKnown.Error(), httpx.FieldError{Field: "items", Message: strconv.FormatInt(notYetKnown.ProductID, 10) + " is not known to the order service yet; if it was just created, retry"})
	case errors.Is(err, ErrInsufficientStock):
		httpx.Fail(c, http.StatusConflict, ErrInsufficientStock.Error())
	case errors.As(err, &overLimit):
		httpx.Fail(c, http.StatusConflict, overLimit.Limit.Error(), httpx.FieldError{Field: "items", Message: overLimit.Detail})
	case errors.Is(err, ErrRequestDuplicate), errors.Is(err, ErrAlreadyPaid), errors.Is(err, ErrAlreadyCancelled),
		errors.Is(err, ErrNotReserved), errors.Is(err, ErrRequestReused):
		httpx.Fail(c, http.StatusConflict, err.Error())
	default:
		httpx.FailUnexpected(c, h.logger, err)
	}
}
