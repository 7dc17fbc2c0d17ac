package order

import (
	"errors"
)

// Errors of the use cases, with the contract's messages; the HTTP layer maps
// each to its status.
var (
	ErrOrderNotFound     = errors.New("order not found")
	ErrProductNotFound   = errors.New("product not found")
	ErrInsufficientStock = errors.New("insufficient product stock")
	ErrRequestDuplicate  = errors.New("request duplicate")
	ErrAlreadyPaid       = errors.New("order already paid")
	ErrAlreadyCancelled  = errors.New("order already cancelled")
	ErrNotReserved       = errors.New("order stock is not reserved yet; try again shortly")
	ErrRequestReused     = errors.New("request_id was already used for another order")
	// The pending limits (Config.MaxPendingOrders, MaxPendingUnits): 409, the
	// state of the customer's other orders forbids this one.
	ErrTooManyPendingOrders = errors.New("too many pending orders")
	ErrTooManyPendingUnits  = errors.New("too many units in pending orders")
)
