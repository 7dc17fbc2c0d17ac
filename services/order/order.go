package order

import (
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/money"
	"github.com/kshop/kshop/services/platform/pg"
)

// Order is an order as the API shows it.
type Order struct {
	ID           int64         `json:"id"`
	TotalAmount  money.Money   `json:"total_amount"`
	Description  string        `json:"description"`
	Status       Status        `json:"status"`
	CancelReason *CancelReason `json:"cancel_reason"`
	Items        []Item        `json:"items"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`

	customerID  int64
	email       string
	stockStatus stockStatus
	// timersChained: the order's timers come one at a time, each scheduled by
	// the one before (timerChain); false for orders placed before that, whose
	// timers were all queued at placement.
	timersChained bool
}

// Status is where an order is in its life. The values are the API's and the
// orders.status column's, spelled only here; SQL takes them as parameters
// rather than spelling them again.
type Status string

const (
	StatusPending   Status = "PENDING"
	StatusPaid      Status = "PAID"
	StatusCompleted Status = "COMPLETED"
	StatusCancelled Status = "CANCELLED"
)

// statuses are the order statuses in the order of an order's life.
var statuses = []Status{StatusPending, StatusPaid, StatusCompleted, StatusCancelled}

// CancelReason says why an order was cancelled (orders.cancel_reason, the
// order-cancelled event, the cancellation e-mail and the metric's label).
type CancelReason string

const (
	CancelExpired    CancelReason = events.CancelExpired
	CancelOutOfStock CancelReason = events.CancelOutOfStock
	CancelCustomer   CancelReason = events.CancelCustomer
)

// stockStatus follows the product service's answer to the order's reservation
// (orders.stock_status): an order is payable once reserved.
type stockStatus string

const (
	stockPending  stockStatus = "pending"
	stockReserved stockStatus = "reserved"
	stockRejected stockStatus = "rejected"
)

// Item is one line of an order.
type Item struct {
	ID        int64       `json:"id"`
	ProductID int64       `json:"product_id"`
	Quantity  int64       `json:"quantity"`
	Price     money.Money `json:"price"`
	name      string
}

// Customer is who places and owns orders (from the gateway's identity headers).
type Customer struct {
	ID    int64
	Email string
}

// Line is what a client orders: a product and a quantity.
type Line struct {
	ProductID int64
	Quantity  int64
}

// Orders holds the order use cases.
type Orders struct {
	db      *pg.DB
	redis   redis.UniversalClient
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
}
