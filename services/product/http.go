package product

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/shopspring/decimal"

	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/httpx"
	"github.com/kshop/kshop/services/platform/identity"
)

// Limits of the contract (docs/api.md#products).
const (
	maxNameChars        = 255
	maxDescriptionChars = 5000
	maxQuantity         = 1_000_000
	defaultLimit        = 10
	maxLimit            = 25
)

var maxPrice = decimal.RequireFromString("99999999.99")

// productRequest keeps every field optional at the JSON level so that a missing
// field is reported by name, and takes the price raw so that "12.345" or "abc"
// is reported as the price's problem rather than the body's.
type productRequest struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Price       json.RawMessage `json:"price"`
	Quantity    *int64          `json:"quantity"`
}

func (r productRequest) fields() (Fields, []httpx.FieldError) {
	var f Fields
	var problems []httpx.FieldError
	bad := func(field, message string) {
		problems = append(problems, httpx.FieldError{Field: field, Message: message})
	}

	switch {
	case r.Name == nil:
		bad("name", "is required")
	case utf8.RuneCountInString(*r.Name) < 1 || utf8.RuneCountInString(*r.Name) > maxNameChars:
		bad("name", "must be 1 to 255 characters")
	default:
		f.Name = *r.Name
	}
	switch {
	case r.Description == nil || *r.Description == "":
		bad("description", "is required")
	case utf8.RuneCountInString(*r.Description) > maxDescriptionChars:
		bad("description", "must be at most 5000 characters")
	default:
		f.Description = *r.Description
	}
	var price money.Money
	switch {
	case len(r.Price) == 0:
		bad("price", "is required")
	case json.Unmarshal(r.Price, &price) != nil:
		bad("price", "must be a decimal number or string, such as 25000 or \"25000.00\"")
	case !price.IsPositive():
		bad("price", "must be greater than 0")
	case !price.Equal(price.Round(2)):
		bad("price", "must have at most 2 decimals")
	case price.GreaterThan(maxPrice):
		bad("price", "must be at most 99999999.99")
	default:
		f.Price = price
	}
	switch {
	case r.Quantity == nil:
		bad("quantity", "is required")
	case *r.Quantity < 0 || *r.Quantity > maxQuantity:
		bad("quantity", "must be between 0 and 1000000")
	default:
		f.Quantity = *r.Quantity
	}
	return f, problems
}

type handlers struct {
	catalogue *Catalogue
	logger    *slog.Logger
}

func (h *handlers) routes(r gin.IRoutes) {
	r.GET("/products", h.search)
	r.GET("/products/:id", h.get)
	admin := identity.Require(identity.RoleAdmin)
	r.POST("/products", admin, h.create)
	r.PUT("/products/:id", admin, h.update)
	r.DELETE("/products/:id", admin, h.delete)
	r.GET("/products/:id/history", admin, h.history)
}

// fresh tells whether a read must see every committed write: an admin's
// must, as admins are who change products and would otherwise not find what
// they just created or changed while the replica catches up. Their reads are
// few; everyone else's may be as stale as the replica is allowed to lag.
// Only an identity the gateway vouched for counts (identity.Authenticate
// refused the request otherwise).
func fresh(c *gin.Context) bool {
	return identity.FromContext(c).HasRole(identity.RoleAdmin)
}

// bindFields decodes a product's four fields, or writes the 400.
func bindFields(c *gin.Context) (Fields, bool) {
	var req productRequest
	if !httpx.BindJSON(c, &req) {
		return Fields{}, false
	}
	f, problems := req.fields()
	if len(problems) > 0 {
		httpx.Fail(c, http.StatusBadRequest, httpx.MsgValidation, problems...)
		return Fields{}, false
	}
	return f, true
}

func (h *handlers) create(c *gin.Context) {
	f, ok := bindFields(c)
	if !ok {
		return
	}
	p, err := h.catalogue.Create(c.Request.Context(), identity.FromContext(c).ID, f)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header(headerETag, p.ETag())
	httpx.Created(c, p)
}

// update replaces a product, only at the version the client read: the quantity
// it sends is absolute, and stock moves under it with every reservation and
// release. If-Match carries the ETag of the read; without one the answer is
// 428, with a stale one 412 with the product as it is now.
func (h *handlers) update(c *gin.Context) {
	id, ok := httpx.PathID(c, "id")
	if !ok {
		return
	}
	f, ok := bindFields(c)
	if !ok {
		return
	}
	versions, ok := ifMatch(c)
	if !ok {
		return
	}
	p, err := h.catalogue.Update(c.Request.Context(), identity.FromContext(c).ID, id, versions, f)
	var changed *ChangedError
	if errors.As(err, &changed) {
		c.Header(headerETag, changed.Current.ETag())
		c.Abort()
		c.PureJSON(http.StatusPreconditionFailed, httpx.Response{Message: ErrChanged.Error(), Data: changed.Current, Errors: []httpx.FieldError{{
			Field:   headerIfMatch,
			Message: "matches no current version: the product is now at ETag " + changed.Current.ETag() + " (data holds it); apply your change to that and send again with that ETag",
		}}})
		return
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header(headerETag, p.ETag())
	httpx.OK(c, p)
}

const (
	headerETag    = "ETag"
	headerIfMatch = "If-Match"
	// MsgPreconditionRequired is the 428's message.
	MsgPreconditionRequired = "precondition required"
)

// ETag is the product's entity tag: its version, which grows with every change
// of any field, stock included.
func (p Product) ETag() string { return `"` + strconv.FormatInt(p.version, 10) + `"` }

// ifMatch reads If-Match as the versions the client read, or writes the 428
// when it names none ("*" names none either: it would match whatever the
// product became since).
func ifMatch(c *gin.Context) ([]int64, bool) {
	versions, conditional := versionsOf(c.Request.Header.Values(headerIfMatch))
	if !conditional {
		httpx.Fail(c, http.StatusPreconditionRequired, MsgPreconditionRequired, httpx.FieldError{
			Field:   headerIfMatch,
			Message: "must hold the ETag of the product as read (GET /products/:id), so that changes made since, such as an order's reservation, are not overwritten",
		})
		return nil, false
	}
	return versions, true
}

// versionsOf reads If-Match's entity tags as versions. Only strong tags of a
// version count, as If-Match compares strongly: a weak or foreign tag matches
// no version. conditional is false when the header holds no tag but "*".
func versionsOf(headers []string) (versions []int64, conditional bool) {
	versions = []int64{}
	for _, header := range headers {
		for _, tag := range strings.Split(header, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "" || tag == "*" {
				continue
			}
			conditional = true
			if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
				continue
			}
			// Tags compare as text: "007" is not the tag of version 7.
			digits := tag[1 : len(tag)-1]
			if v, err := strconv.ParseInt(digits, 10, 64); err == nil && v >= 0 && strconv.FormatInt(v, 10) == digits {
				versions = append(versions, v)
			}
		}
	}
	return versions, conditional
}

func (h *handlers) delete(c *gin.Context) {
	id, ok := httpx.PathID(c, "id")
	if !ok {
		return
	}
	if err := h.catalogue.Delete(c.Request.Context(), identity.FromContext(c).ID, id); err != nil {
		h.fail(c, err)
		return
	}
	httpx.Message(c, http.StatusOK, httpx.MsgSuccess)
}

func (h *handlers) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "id")
	if !ok {
		return
	}
	p, err := h.catalogue.Get(c.Request.Context(), id, fresh(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Header(headerETag, p.ETag())
	httpx.OK(c, p)
}

func (h *handlers) search(c *gin.Context) {
	q, ok := searchQuery(c)
	if !ok {
		return
	}
	list, total, err := h.catalogue.Search(c.Request.Context(), q, fresh(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.Page(c, list, httpx.NewPaging(q.Page, q.Limit, total, c.Request.URL))
}

// history lists a product's changes, newest first, paged like every list.
func (h *handlers) history(c *gin.Context) {
	id, ok := httpx.PathID(c, "id")
	if !ok {
		return
	}
	q := Query{Page: 1, Limit: defaultLimit}
	problems := readPaging(c, &q)
	if len(problems) > 0 {
		httpx.Fail(c, http.StatusBadRequest, httpx.MsgValidation, problems...)
		return
	}
	list, total, err := h.catalogue.History(c.Request.Context(), id, q.Page, q.Limit)
	if err != nil {
		h.fail(c, err)
		return
	}
	httpx.Page(c, list, httpx.NewPaging(q.Page, q.Limit, total, c.Request.URL))
}

// readPaging reads page and limit into q, returning what is wrong with them.
func readPaging(c *gin.Context, q *Query) []httpx.FieldError {
	var problems []httpx.FieldError
	readInt := func(name string, dst *int, low, high int) {
		raw, present := c.GetQuery(name)
		if !present {
			return
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < low || n > high {
			problems = append(problems, httpx.FieldError{Field: name, Message: "must be an integer from " + strconv.Itoa(low) + " to " + strconv.Itoa(high)})
			return
		}
		*dst = n
	}
	readInt("page", &q.Page, 1, 1_000_000)
	readInt("limit", &q.Limit, 1, maxLimit)
	return problems
}

// searchQuery reads the search's text and paging, or writes the 400.
func searchQuery(c *gin.Context) (Query, bool) {
	q := Query{Name: c.Query("name"), Description: c.Query("description"), Page: 1, Limit: defaultLimit}
	problems := readPaging(c, &q)
	if utf8.RuneCountInString(q.Name) > maxNameChars {
		problems = append(problems, httpx.FieldError{Field: "name", Message: "must be at most 255 characters"})
	}
	if utf8.RuneCountInString(q.Description) > maxDescriptionChars {
		problems = append(problems, httpx.FieldError{Field: "description", Message: "must be at most 5000 characters"})
	}
	if len(problems) > 0 {
		httpx.Fail(c, http.StatusBadRequest, httpx.MsgValidation, problems...)
		return Query{}, false
	}
	return q, true
}

func (h *handlers) fail(c *gin.Context, err error) {
	if errors.Is(err, ErrNotFound) {
		httpx.Fail(c, http.StatusNotFound, err.Error())
		return
	}
	httpx.FailUnexpected(c, h.logger, err)
}
