package chart_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/events"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/testenv"
)

// The rendered permissions on a real RabbitMQ: each user is created with the
// patterns the chart gives it, then does what its service does at start and at
// work (the controller applies the rendered topology document; auth, mail and
// order declare their topology; auth and order publish; mail and order consume
// and dead-letter), and is refused what belongs to another service.
func TestTheRenderedRabbitMQPermissionsLetEachServiceWorkAndNoMore(t *testing.T) {
	ctx := context.Background()
	objects := render(t, "--set", "rabbitmq.users.enabled=true")
	// urls are each user's, created with the rendered patterns.
	urls := map[string]string{}
	for _, user := range []string{"controller", "auth", "mail", "order"} {
		p := find(objects, "Permission", releaseName+"-rabbitmq-"+user)
		if p == nil {
			t.Fatalf("no Permission for %s", user)
		}
		perm := func(name string) string {
			v, _, _ := unstructured.NestedString(p.Object, "spec", "permissions", name)
			return v
		}
		name := "kshop-" + user + "-" + testenv.RandomSuffix()
		password := testenv.RandomSuffix()
		u, err := url.Parse(testenv.NewAMQPUserWithPermissions(t, name, password, perm("configure"), perm("write"), perm("read")))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(name, password)
		urls[user] = u.String()
	}
	conns := map[string]*amqp091.Connection{}
	dial := func(user string) *amqp091.Connection {
		t.Helper()
		if c := conns[user]; c != nil && !c.IsClosed() {
			return c
		}
		conn, err := amqp091.Dial(urls[user])
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		conns[user] = conn
		return conn
	}
	refused := func(err error) bool {
		var amqpErr *amqp091.Error
		return errors.As(err, &amqpErr) && amqpErr.Code == amqp091.AccessRefused
	}
	// publish sends one message with confirms, so a refusal is seen.
	publish := func(conn *amqp091.Connection, exchange, key string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.Confirm(false); err != nil {
			return err
		}
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp091.Publishing{Body: []byte("{}")})
		if err != nil {
			return err
		}
		// A refused publish closes the channel, and closing it also ends
		// every pending confirm, unacknowledged: both cases below can be
		// ready at once, so only an ack counts as accepted.
		select {
		case <-confirm.Done():
			if confirm.Acked() {
				return nil
			}
		case <-time.After(10 * time.Second):
			return errors.New("no confirm")
		}
		select {
		case e, open := <-closed:
			if open {
				return e
			}
		case <-time.After(10 * time.Second):
		}
		return errors.New("not acknowledged, and the channel did not say why")
	}
	consume := func(conn *amqp091.Connection, queue string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		_, err = ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
		return err
	}

	// The controller first, as in a release: it makes the whole topology.
	var doc string
	for _, o := range objects {
		if o.GetKind() == "ConfigMap" && o.GetLabels()[controller.TopologyLabel] == controller.TopologyRabbitMQ {
			doc, _, _ = unstructured.NestedString(o.Object, "data", controller.TopologyKey)
		}
	}
	out, err := controller.RabbitMQBroker{URL: urls["controller"]}.Apply(ctx, doc)
	if err != nil || len(out.Problems) > 0 || len(out.Changes) == 0 {
		t.Fatalf("the controller cannot apply the topology document: %v %v (changes %v)", err, out.Problems, out.Changes)
	}

	// Each service declares its topology at start (the same, idempotently).
	for _, c := range []struct {
		user     string
		topology amqp.Topology
	}{
		{"auth", auth.Topology()},
		{"mail", mail.Topology()},
		{"order", order.Topology(order.DefaultReminderDelays, order.DefaultExpiryDelay)},
	} {
		if err := amqp.DeclareTopology(dial(c.user), c.topology); err != nil {
			t.Errorf("%s cannot declare its own topology: %v", c.user, err)
		}
	}

	// At work.
	allowed := []struct {
		what string
		err  error
	}{
		{"auth publishes a verification mail", publish(dial("auth"), events.ExchangeNotifications, events.RoutingVerification)},
		{"order publishes a payment reminder", publish(dial("order"), events.ExchangePayments, events.RoutingPaymentReminder)},
		{"order starts a timer (a delay queue, by the default exchange)", publish(dial("order"), "", events.TimerOrderReminder.DelayQueueName(order.DefaultReminderDelays[0]))},
		{"order consumes its timers", consume(dial("order"), events.QueueOrderExpiry)},
		{"mail consumes verification mails", consume(dial("mail"), events.QueueVerification)},
		{"mail dead-letters one", publish(dial("mail"), "", amqp.DeadLetterQueue(events.QueueVerification))},
	}
	for _, a := range allowed {
		if a.err != nil {
			t.Errorf("%s: %v", a.what, a.err)
		}
	}
	forbidden := []struct {
		what string
		err  error
	}{
		{"mail publishes a verification mail as auth would", publish(dial("mail"), events.ExchangeNotifications, events.RoutingVerification)},
		{"auth publishes to the orders exchange", publish(dial("auth"), events.ExchangeOrders, events.RoutingOrderExpiry)},
		{"auth consumes order timers", consume(dial("auth"), events.QueueOrderExpiry)},
		{"mail consumes order timers", consume(dial("mail"), events.QueueOrderReminder)},
		{"order consumes verification mails", consume(dial("order"), events.QueueVerification)},
		{"auth declares a queue of its choosing", amqp.DeclareTopology(dial("auth"), amqp.Topology{Queues: []amqp.Queue{{Name: "stolen"}}})},
	}
	for _, f := range forbidden {
		if !refused(f.err) {
			t.Errorf("%s: %v, want ACCESS_REFUSED", f.what, f.err)
		}
	}
}
