// Package config loads a process's settings from environment variables with a
// prefix (KSHOP_AUTH_DATABASE_URL, ...) and turns every mistake into one line that
// names the variable, so a misconfigured pod says exactly what to fix.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// Validator is implemented by settings with rules beyond their types.
type Validator interface {
	Validate() error
}

// Load fills spec (a pointer to a struct with envconfig tags) from PREFIX_*
// variables, then runs spec.Validate when spec has one.
func Load(prefix string, spec any) error {
	if err := requireSet(prefix, reflect.ValueOf(spec)); err != nil {
		return err
	}
	if err := envconfig.Process(prefix, spec); err != nil {
		return describe(err)
	}
	if v, ok := spec.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

var missingKey = regexp.MustCompile(`^required key (\S+) missing value$`)

// requireSet reports the first required variable that is not set, by the exact
// name envconfig reads (envconfig's own message names only the field's tag, and
// it would also accept the tag without the prefix, which hides mistakes).
func requireSet(prefix string, v reflect.Value) error {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	t := v.Type()
	for i := range t.NumField() {
		field := t.Field(i)
		if !field.IsExported() || field.Tag.Get("ignored") == "true" {
			continue
		}
		key := keyOf(prefix, field)
		fv := v.Field(i)
		if nestedType(fv.Type()) {
			inner := key
			if field.Anonymous {
				inner = prefix
			}
			if err := requireSet(inner, fv); err != nil {
				return err
			}
			continue
		}
		if field.Tag.Get("required") == "true" && field.Tag.Get("default") == "" {
			if _, ok := os.LookupEnv(key); !ok {
				return fmt.Errorf("config: %s is required but not set", key)
			}
		}
	}
	return nil
}

var camelWords = regexp.MustCompile(`([A-Z]+[a-z0-9]*?)(?:[A-Z][a-z]|$)|[A-Z]?[a-z0-9]+`)

// describe rewrites envconfig's errors into "config: VAR ..." lines.
func describe(err error) error {
	var parse *envconfig.ParseError
	if errors.As(err, &parse) {
		return fmt.Errorf("config: %s=%q is not a valid %s", parse.KeyName, parse.Value, friendlyType(parse.TypeName))
	}
	if m := missingKey.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("config: %s is required but not set", m[1])
	}
	return fmt.Errorf("config: %w", err)
}

func friendlyType(t string) string {
	switch t {
	case "time.Duration":
		return "duration (like 250ms, 10s, 4h)"
	case "bool":
		return "bool (true or false)"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	}
	return strings.TrimPrefix(t, "[]") + " value"
}

// Exit prints err on one line to standard error and ends the process with status
// 2; mains call it when configuration fails, before starting anything.
func Exit(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}
