package order

import (
	"errors"
	"fmt"
)

// Errors of the use cases, with the contract's messages; the HTTP layer maps
// each to its status.
var (
	ErrOrderNotFound      = errors.New("order not found")
	ErrProductNotFound    = errors.New("product not found")
	ErrProductNotYetKnown = errors.New("product not available yet; retry shortly")
	ErrInsufficientStock  = errors.New("insufficient product stock")
	ErrRequestDuplicate   = errors.New("request duplicate")
	ErrAlreadyPaid        = errors.New("order already paid")
	ErrAlreadyCancelled   = errors.New("order already cancelled")
	ErrNotReserved        = errors.New("order stock is not reserved yet; try again shortly")
	ErrRequestReused      = errors.New("request_id was already used for another order")
	// The pending limits (Config.MaxPendingOrders, MaxPendingUnits): 409, the
	// state of the customer's other orders forbids this one.
	ErrTooManyPendingOrders = errors.New("too many pending orders")
	ErrTooManyPendingUnits  = errors.New("too many units in pending orders")
)

// ProductNotOnSaleError is an order line whose product the catalogue copy does
// not hold, or holds as deleted; errors.Is sees ErrProductNotFound in it. The
// HTTP answer names the product from ProductID.
type ProductNotOnSaleError struct{ ProductID int64 }

func (e *ProductNotOnSaleError) Error() string {
	return fmt.Sprintf("%s: %d", ErrProductNotFound, e.ProductID)
}

func (e *ProductNotOnSaleError) Unwrap() error { return ErrProductNotFound }

// ProductNotYetKnownError is an order line whose product the catalogue copy
// has not received yet, though it may exist: created a moment ago, its event
// is still on the way. errors.Is sees ErrProductNotYetKnown in it.
type ProductNotYetKnownError struct{ ProductID int64 }

func (e *ProductNotYetKnownError) Error() string {
	return fmt.Sprintf("%s: %d", ErrProductNotYetKnown, e.ProductID)
}

func (e *ProductNotYetKnownError) Unwrap() error { return ErrProductNotYetKnown }

// PendingLimitError refuses an order that would take its customer past a
// pending limit. Limit is ErrTooManyPendingOrders or ErrTooManyPendingUnits
// (the message of the answer, and what errors.Is sees); Detail tells the
// customer what the limit is and how far the order goes past it.
type PendingLimitError struct {
	Limit  error
	Detail string
}

func (e *PendingLimitError) Error() string { return e.Limit.Error() + ": " + e.Detail }

func (e *PendingLimitError) Unwrap() error { return e.Limit }
