package order

// orderCounters count the orders' transitions for metrics; the hooks run only
// after the transaction that made the change committed.
type orderCounters struct {
	paid, completed func()
	cancelled       func(reason CancelReason)
}

func (c orderCounters) countPaid() {
	if c.paid != nil {
		c.paid()
	}
}

func (c orderCounters) countCompleted() {
	if c.completed != nil {
		c.completed()
	}
}

func (c orderCounters) countCancelled(reason CancelReason) {
	if c.cancelled != nil {
		c.cancelled(reason)
	}
}
