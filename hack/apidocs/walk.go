package main

// The walk is the order in which the generated collection and .http file call
// the API: a journey that needs nothing but `make run` (or the e2e test's
// platform) and leaves nothing behind, so it can be sent again and again. Each
// step names its operation by operationId; everything else about the request
// (method, path, which security it needs, what it is for) comes from the
// OpenAPI document, and a step may only expect a status the document lists for
// its operation. Every operation of the document must be in the walk.

// step is one request.
type step struct {
	name   string // unique: Postman reruns a request by its name
	folder string
	op     string // operationId; "" for a read of the mail inbox
	path   map[string]string
	query  [][2]string
	as     string // "admin", "customer" or "": whose token goes in Authorization
	header [][2]string
	body   string // JSON with {{variables}}
	status int
	// capture copies values of the answer into variables for later steps.
	capture []capture
	// retry sends the request again while the answer is retryStatus: the
	// platform is eventually consistent between services (Kafka), and a client
	// that has just created something may have to ask twice.
	retry *retry
	// freshEmail makes the step draw a new customer address first, so every
	// run of the collection registers an account of its own.
	freshEmail bool
	// inbox reads the newest e-mail to this address whose subject contains
	// inboxSubject from Mailpit (`make run`'s mail catcher).
	inbox, inboxSubject string
	note                string // why the step is there, when its status is not the obvious one
}

type capture struct {
	variable string
	// from is a JSON path into the body (data.id), or "header:ETag".
	from string
	// digits keeps only the six-digit code (of a mail's subject).
	digits bool
}

type retry struct {
	status, times, pauseMillis int
	why                        string
}

const (
	folderOperations = "operations"
	folderAccounts   = "accounts"
	folderProducts   = "products"
	folderOrders     = "orders"
	folderCleanUp    = "clean-up"
)

// The mail subjects the inbox steps look for (services/mail/templates).
const (
	subjectVerification = "verification code"
	subjectReset        = "password reset code"
)

var walk = []step{
	{name: "Health (the original platform's form)", folder: folderOperations, op: "health", status: 200},
	{name: "Liveness", folder: folderOperations, op: "liveness", status: 200},
	{name: "Readiness", folder: folderOperations, op: "readiness", status: 200},
	{name: "The OpenAPI document", folder: folderOperations, op: "getOpenAPI", status: 200},
	{name: "The public keys of access tokens (JWKS)", folder: folderOperations, op: "getKeys", status: 200},

	{name: "Register the admin", folder: folderAccounts, op: "register", status: 202,
		body: `{"email": "{{admin_email}}", "password": "{{admin_password}}"}`},
	{name: "Read the admin's verification code", folder: folderAccounts, inbox: "{{admin_email}}", inboxSubject: subjectVerification,
		capture: []capture{{variable: "admin_code", from: "messages.0.Subject", digits: true}}},
	{name: "Verify the admin", folder: folderAccounts, op: "verify", status: 200,
		body: `{"email": "{{admin_email}}", "verification_token": "{{admin_code}}"}`},
	{name: "Log in as the admin", folder: folderAccounts, op: "login", status: 200,
		body:    `{"email": "{{admin_email}}", "password": "{{admin_password}}"}`,
		capture: []capture{{variable: "admin_token", from: "data.access_token"}}},
	{name: "Register a customer", folder: folderAccounts, op: "register", status: 202, freshEmail: true,
		body: `{"email": "{{customer_email}}", "password": "{{customer_password}}"}`},
	{name: "Log in before verifying", folder: folderAccounts, op: "login", status: 403,
		body: `{"email": "{{customer_email}}", "password": "{{customer_password}}"}`,
		note: "An account logs in only once its address is verified."},
	{name: "Read the customer's verification code", folder: folderAccounts, inbox: "{{customer_email}}", inboxSubject: subjectVerification,
		capture: []capture{{variable: "customer_code", from: "messages.0.Subject", digits: true}}},
	{name: "Verify with a malformed code", folder: folderAccounts, op: "verify", status: 400,
		body: `{"email": "{{customer_email}}", "verification_token": "12ab"}`,
		note: "errors names verification_token."},
	{name: "Verify the customer", folder: folderAccounts, op: "verify", status: 200,
		body: `{"email": "{{customer_email}}", "verification_token": "{{customer_code}}"}`},
	{name: "Ask for a new code for an address without an account", folder: folderAccounts, op: "resendVerification", status: 200,
		body: `{"email": "nobody-{{customer_email}}"}`,
		note: "The answer is the same for every address (a new code, \"you already have an account\", or nothing at all, as here), so nobody learns who has an account."},
	{name: "Log in with a wrong password", folder: folderAccounts, op: "login", status: 401,
		body: `{"email": "{{customer_email}}", "password": "not-the-password"}`},
	{name: "Ask for a password reset", folder: folderAccounts, op: "requestPasswordReset", status: 202,
		body:  `{"email": "{{customer_email}}"}`,
		retry: &retry{status: 429, times: 40, pauseMillis: 250, why: "One e-mail per address per KSHOP_AUTH_RESEND_COOLDOWN (5 s under make run), and the registration's code was one: ask again."}},
	{name: "Read the password reset code", folder: folderAccounts, inbox: "{{customer_email}}", inboxSubject: subjectReset,
		capture: []capture{{variable: "reset_code", from: "messages.0.Subject", digits: true}}},
	{name: "Reset the password", folder: folderAccounts, op: "resetPassword", status: 200,
		body: `{"email": "{{customer_email}}", "reset_token": "{{reset_code}}", "password": "{{customer_new_password}}"}`},
	{name: "Log in as the customer", folder: folderAccounts, op: "login", status: 200,
		body:    `{"email": "{{customer_email}}", "password": "{{customer_new_password}}"}`,
		capture: []capture{{variable: "customer_token", from: "data.access_token"}}},

	{name: "Create a product without a token", folder: folderProducts, op: "createProduct", status: 401,
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "12.50", "quantity": 5}`},
	{name: "Create a product as a customer", folder: folderProducts, op: "createProduct", status: 403, as: "customer",
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "12.50", "quantity": 5}`},
	{name: "Create a product with a bad price", folder: folderProducts, op: "createProduct", status: 400, as: "admin",
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "12.505", "quantity": 5}`,
		note: "errors names price: at most two decimals."},
	{name: "Create a product", folder: folderProducts, op: "createProduct", status: 201, as: "admin",
		body:    `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "12.50", "quantity": 5}`,
		capture: []capture{{variable: "product_id", from: "data.id"}}},
	{name: "Get the product", folder: folderProducts, op: "getProduct", status: 200, path: map[string]string{"id": "{{product_id}}"},
		capture: []capture{{variable: "etag", from: "header:ETag"}}},
	{name: "Get a product by a non-numeric id", folder: folderProducts, op: "getProduct", status: 400, path: map[string]string{"id": "kopi"}},
	{name: "Get a product that does not exist", folder: folderProducts, op: "getProduct", status: 404, path: map[string]string{"id": "999999999"}},
	{name: "Search products", folder: folderProducts, op: "searchProducts", status: 200,
		query: [][2]string{{"name", "kopi"}, {"page", "1"}, {"limit", "10"}}},
	{name: "Search with a limit too large", folder: folderProducts, op: "searchProducts", status: 400,
		query: [][2]string{{"limit", "100"}}},
	{name: "Replace the product without If-Match", folder: folderProducts, op: "replaceProduct", status: 428, as: "admin",
		path: map[string]string{"id": "{{product_id}}"},
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "14.00", "quantity": 10}`},
	{name: "Replace the product", folder: folderProducts, op: "replaceProduct", status: 200, as: "admin",
		path: map[string]string{"id": "{{product_id}}"}, header: [][2]string{{"If-Match", "{{etag}}"}},
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "14.00", "quantity": 10}`},
	{name: "Read the product's history", folder: folderProducts, op: "getProductHistory", status: 200, as: "admin",
		path: map[string]string{"id": "{{product_id}}"}, query: [][2]string{{"page", "1"}, {"limit", "10"}},
		note: "Newest first: the replace above (\"updated\" for the price, \"adjusted\" for the stock), then \"created\"."},
	{name: "Read a product's history as a customer", folder: folderProducts, op: "getProductHistory", status: 403, as: "customer",
		path: map[string]string{"id": "{{product_id}}"}},
	{name: "Replace the product at a version already replaced", folder: folderProducts, op: "replaceProduct", status: 412, as: "admin",
		path: map[string]string{"id": "{{product_id}}"}, header: [][2]string{{"If-Match", "{{etag}}"}},
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "15.00", "quantity": 10}`,
		note: "The answer holds the product as it is now and its ETag, to which a client reapplies its change."},
	{name: "Replace a product that does not exist", folder: folderProducts, op: "replaceProduct", status: 404, as: "admin",
		path: map[string]string{"id": "999999999"}, header: [][2]string{{"If-Match", `"1"`}},
		body: `{"name": "Kopi Luwak", "description": "roasted beans, 250 g", "price": "14.00", "quantity": 10}`},

	{name: "List orders without a token", folder: folderOrders, op: "listOrders", status: 401},
	{name: "Place an order", folder: folderOrders, op: "placeOrder", status: 201, as: "customer",
		body:    `{"request_id": "collection-order-1", "description": "for the office", "items": [{"product_id": {{product_id}}, "quantity": 2}]}`,
		capture: []capture{{variable: "order_id", from: "data.id"}},
		retry:   &retry{status: 404, times: 40, pauseMillis: 250, why: "The order service learns of a new product from Kafka, a moment after it was created: ask again."}},
	{name: "Place the same order again", folder: folderOrders, op: "placeOrder", status: 200, as: "customer",
		body: `{"request_id": "collection-order-1", "description": "for the office", "items": [{"product_id": {{product_id}}, "quantity": 2}]}`,
		note: "The same request_id from the same customer answers the order it placed: a client may retry safely."},
	{name: "Place an order with duplicate products", folder: folderOrders, op: "placeOrder", status: 400, as: "customer",
		body: `{"request_id": "collection-order-bad", "items": [{"product_id": {{product_id}}, "quantity": 1}, {"product_id": {{product_id}}, "quantity": 1}]}`},
	{name: "Place an order for more than the stock", folder: folderOrders, op: "placeOrder", status: 409, as: "customer",
		body: `{"request_id": "collection-order-too-many", "items": [{"product_id": {{product_id}}, "quantity": 1000}]}`},
	{name: "Get the order", folder: folderOrders, op: "getOrder", status: 200, as: "customer", path: map[string]string{"id": "{{order_id}}"}},
	{name: "Get an order that does not exist", folder: folderOrders, op: "getOrder", status: 404, as: "customer", path: map[string]string{"id": "999999999"}},
	{name: "List the pending orders", folder: folderOrders, op: "listOrders", status: 200, as: "customer",
		query: [][2]string{{"status", "PENDING"}, {"page", "1"}, {"limit", "10"}}},
	{name: "List orders with a malformed date", folder: folderOrders, op: "listOrders", status: 400, as: "customer",
		query: [][2]string{{"start-date", "2026-01-01"}}, note: "Dates are DD-MM-YYYY."},
	{name: "Pay the order", folder: folderOrders, op: "payOrder", status: 200, as: "customer",
		body:  `{"request_id": "collection-pay-1", "order_id": {{order_id}}}`,
		retry: &retry{status: 409, times: 40, pauseMillis: 250, why: "An order can be paid once the product service has reserved its stock (through Kafka): ask again."}},
	{name: "Pay the order again with the same request_id", folder: folderOrders, op: "payOrder", status: 200, as: "customer",
		body: `{"request_id": "collection-pay-1", "order_id": {{order_id}}}`},
	{name: "Cancel the paid order", folder: folderOrders, op: "cancelOrder", status: 409, as: "customer",
		body: `{"request_id": "collection-cancel-1", "order_id": {{order_id}}}`, note: "Only a pending order can be cancelled."},
	{name: "Place a second order", folder: folderOrders, op: "placeOrder", status: 201, as: "customer",
		body:    `{"request_id": "collection-order-2", "items": [{"product_id": {{product_id}}, "quantity": 1}]}`,
		capture: []capture{{variable: "second_order_id", from: "data.id"}}},
	{name: "Cancel the second order", folder: folderOrders, op: "cancelOrder", status: 200, as: "customer",
		body: `{"request_id": "collection-cancel-2", "order_id": {{second_order_id}}}`,
		note: "Its reserved stock goes back to the product."},
	{name: "Pay the cancelled order", folder: folderOrders, op: "payOrder", status: 409, as: "customer",
		body: `{"request_id": "collection-pay-2", "order_id": {{second_order_id}}}`},
	{name: "Pay an order that does not exist", folder: folderOrders, op: "payOrder", status: 404, as: "customer",
		body: `{"request_id": "collection-pay-3", "order_id": 999999999}`},

	{name: "Delete the product", folder: folderCleanUp, op: "deleteProduct", status: 200, as: "admin", path: map[string]string{"id": "{{product_id}}"}},
	{name: "Delete the product again", folder: folderCleanUp, op: "deleteProduct", status: 404, as: "admin", path: map[string]string{"id": "{{product_id}}"}},
	{name: "Delete the customer's account with a wrong password", folder: folderCleanUp, op: "deleteAccount", status: 401,
		body: `{"email": "{{customer_email}}", "password": "not-the-password"}`},
	{name: "Delete the customer's account", folder: folderCleanUp, op: "deleteAccount", status: 200,
		body: `{"email": "{{customer_email}}", "password": "{{customer_new_password}}"}`},
	{name: "Use the deleted customer's token", folder: folderCleanUp, op: "listOrders", status: 401, as: "customer",
		retry: &retry{status: 200, times: 40, pauseMillis: 250, why: "The gateway may go on trusting a token for a few seconds after a check found it valid (KSHOP_GATEWAY_REVOCATION_CACHE): ask again."},
		note:  "Deleting an account revokes its tokens at the gateway."},
	{name: "Delete the admin's account", folder: folderCleanUp, op: "deleteAccount", status: 200,
		body: `{"email": "{{admin_email}}", "password": "{{admin_password}}"}`,
		note: "The admin address stays an admin address: registering it again makes a new admin account."},
}
