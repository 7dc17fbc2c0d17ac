package controller

import (
	"strings"
	"testing"
	"time"
)

func TestConfigRefusesARotationThatCannotPropagate(t *testing.T) {
	ok := Config{Namespace: "kshop", KeyAlgorithm: "EdDSA", RotationPeriod: 168 * time.Hour, PropagationDelay: 10 * time.Minute, TokenLifetime: time.Hour, Grace: 15 * time.Minute}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"period shorter than propagation": func(c *Config) { c.RotationPeriod = 5 * time.Minute },
		"HMAC keys":                       func(c *Config) { c.KeyAlgorithm = "HS256" },
		"no token lifetime":               func(c *Config) { c.TokenLifetime = 0 },
	} {
		c := ok
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "KSHOP_CONTROLLER_") {
			t.Errorf("%s: %v, want an error naming the variable", name, err)
		}
	}
	if p := ok.Policy(); p.Period != ok.RotationPeriod || p.TokenLifetime != time.Hour || p.Grace != 15*time.Minute {
		t.Fatalf("policy %+v", p)
	}
}
