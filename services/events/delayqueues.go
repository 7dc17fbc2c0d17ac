package events

import "time"

//go:generate go run ../../hack/topologygen -root ../..

// DelayQueueUnit is one unit DelayQueueName may write a delay in.
type DelayQueueUnit struct {
	Suffix string
	Unit   time.Duration
}

// DelayQueueNaming is Route.DelayQueueName's rule as data, for what cannot
// call it: the Helm chart names the delay queues of the timers an operator
// configures, and hack/topologygen writes this rule into the chart for it. A
// name is the route's queue, the infix and the delay, truncated to the last
// unit, written in the first unit (the largest) that divides it.
func DelayQueueNaming() (infix string, unitsLargestFirst []DelayQueueUnit) {
	for _, u := range delayQueueUnitsInOrder {
		unitsLargestFirst = append(unitsLargestFirst, DelayQueueUnit{Suffix: u.suffix, Unit: u.unit})
	}
	return delayQueueInfix, unitsLargestFirst
}
