package amqp_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kshop/kshop/services/platform/amqp"
	"github.com/kshop/kshop/services/platform/testenv"
	"github.com/kshop/kshop/services/platform/tlstest"
)

// The password holds every character that means something in a URL.
const hostilePassword = `p@ss/w:rd%41?#[x] ü`

// newUser creates a user of this test's own with hostilePassword and returns the
// URL of its virtual host, without credentials (as the chart renders it).
func newUser(t *testing.T) (base, user string) {
	t.Helper()
	user = "kshop-test-" + testenv.RandomSuffix()
	return testenv.NewAMQPUser(t, user, hostilePassword), user
}

// roundTrip publishes a message through a connection dialled with cfg and
// consumes it again.
func roundTrip(t *testing.T, cfg amqp.Config) {
	t.Helper()
	dial, err := cfg.DialURL()
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dial)
	exchange, queue := workQueue(t, conn)
	c := &collector{}
	run(t, amqp.NewConsumer(conn, amqp.ConsumerConfig{Queue: queue}, c.handle, quiet))
	if err := amqp.NewPublisher(conn).Publish(context.Background(), amqp.Message{Exchange: exchange, RoutingKey: "work", Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the message", func() bool { return c.count() == 1 })
}

func TestSeparateCredentialsReachTheBroker(t *testing.T) {
	base, user := newUser(t)
	roundTrip(t, amqp.Config{URL: base, Username: user, Password: hostilePassword})
}

func TestWrongPasswordIsRefused(t *testing.T) {
	base, user := newUser(t)
	dial, err := amqp.Config{URL: base, Username: user, Password: hostilePassword + "x"}.DialURL()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial(dial)
	if err == nil {
		conn.Close()
		t.Fatal("the broker let a wrong password in")
	}
	if !errors.Is(err, amqp091.ErrCredentials) {
		t.Fatalf("dial error = %v, want the broker's refusal of the credentials", err)
	}
}

// amqps:// is TLS with the host name verified; a private CA comes as the
// cacertfile query parameter. A proxy puts TLS in front of the test broker.
func TestAMQPSWithAPrivateCA(t *testing.T) {
	base, user := newUser(t)
	ca := tlstest.NewCA(t)
	plain, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := func(caFile string) string {
		u := *plain
		u.Scheme, u.Host, u.RawQuery = "amqps", ca.Proxy(t, plain.Host, "127.0.0.1"), url.Values{"cacertfile": {caFile}}.Encode()
		return u.String()
	}
	roundTrip(t, amqp.Config{URL: tlsURL(ca.File), Username: user, Password: hostilePassword})

	untrusted, err := amqp.Config{URL: tlsURL(tlstest.NewCA(t).File), Username: user, Password: hostilePassword}.DialURL()
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := amqp091.Dial(untrusted); err == nil {
		conn.Close()
		t.Fatal("amqps accepted a certificate from a CA it was not given")
	}
}
