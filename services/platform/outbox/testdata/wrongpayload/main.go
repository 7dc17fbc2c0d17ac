// This program must not compile: it puts a payload on a topic bound to another
// payload type (TestAWrongPayloadDoesNotCompile builds it).
package main

import "github.com/kshop/kshop/services/platform/outbox"

type (
	priceChanged struct{ Cents int64 }
	orderPaid    struct{ OrderID int64 }
	priceTopic   struct{}
)

func (priceTopic) Name() string               { return "price-changed" }
func (priceTopic) Headers() map[string]string { return nil }
func (priceTopic) Carries(priceChanged)       {}

func main() {
	_ = outbox.Event(priceTopic{}, "1", orderPaid{OrderID: 1})
}
