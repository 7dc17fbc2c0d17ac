// Package all is the list of kshop's commands with their services'
// configurations, for hack/configdoc (docs/configuration.md) and the
// all-in-one binary. It links every service; the commands import only
// package binaries and their own service.
package all

//go:generate go run ../../../../hack/configdoc -root ../../../..

import (
	"github.com/kshop/kshop/services/auth"
	"github.com/kshop/kshop/services/cmd/binaries"
	"github.com/kshop/kshop/services/controller"
	"github.com/kshop/kshop/services/gateway"
	"github.com/kshop/kshop/services/mail"
	"github.com/kshop/kshop/services/order"
	"github.com/kshop/kshop/services/platform/config"
	"github.com/kshop/kshop/services/product"
)

// The commands, in the order of the configuration reference.
var (
	Gateway    = binaries.Gateway(gateway.Prefix, gateway.Config{})
	Auth       = binaries.Auth(auth.Prefix, auth.Config{})
	Product    = binaries.Product(product.Prefix, product.Config{})
	Order      = binaries.Order(order.Prefix, order.Config{})
	Mail       = binaries.Mail(mail.Prefix, mail.Config{})
	Controller = binaries.Controller(controller.Prefix, controller.Config{})
	Kshop      = binaries.Kshop(
		config.Section{Title: "The gateway service (KSHOP_GATEWAY_*)", Prefix: gateway.Prefix, Spec: gateway.Config{}},
		config.Section{Title: "The auth service (KSHOP_AUTH_*)", Prefix: auth.Prefix, Spec: auth.Config{}},
		config.Section{Title: "The product service (KSHOP_PRODUCT_*)", Prefix: product.Prefix, Spec: product.Config{}},
		config.Section{Title: "The order service (KSHOP_ORDER_*)", Prefix: order.Prefix, Spec: order.Config{}},
		config.Section{Title: "The mail service (KSHOP_MAIL_*)", Prefix: mail.Prefix, Spec: mail.Config{}},
	)
	Binaries = []binaries.Binary{Gateway, Auth, Product, Order, Mail, Controller, Kshop, binaries.Loadgen}
)
