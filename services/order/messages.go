package order

import (
	"github.com/kshop/kshop/services/events"
)

func mailItems(items []Item) []events.MailItem {
	out := make([]events.MailItem, len(items))
	for i, it := range items {
		out[i] = events.MailItem{ProductID: it.ProductID, Name: it.name, Quantity: it.Quantity, Price: it.Price}
	}
	return out
}
