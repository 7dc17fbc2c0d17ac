package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Var is one environment variable a process reads: the row of its -help and
// of docs/configuration.md.
type Var struct {
	Name        string
	Type        string
	Default     string // empty: none
	Required    bool
	Description string
}

// Section is a group of variables under one prefix (a service's, in the
// all-in-one binary, or the process's own).
type Section struct {
	Title  string
	Prefix string
	// Spec is a settings struct (or a pointer to one): only its type is read,
	// never its values, so a help text cannot carry a secret that was loaded
	// into it or set in the environment.
	Spec any
}

// Describe lists the variables spec's type reads under prefix, in field
// order, named exactly as Load reads them. Every field needs a desc tag
// (`desc:"..."`): the descriptions are the documentation, so one missing is
// an error that names the variable.
func Describe(prefix string, spec any) ([]Var, error) {
	t := reflect.TypeOf(spec)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("config: describe %T: not a struct", spec)
	}
	var vars []Var
	var errs []error
	describeType(prefix, t, &vars, &errs)
	return vars, errors.Join(errs...)
}

func describeType(prefix string, t reflect.Type, vars *[]Var, errs *[]error) {
	for i := range t.NumField() {
		field := t.Field(i)
		if !field.IsExported() || field.Tag.Get("ignored") == "true" {
			continue
		}
		key := keyOf(prefix, field)
		if nestedType(field.Type) {
			inner := key
			if field.Anonymous {
				inner = prefix
			}
			describeType(inner, field.Type, vars, errs)
			continue
		}
		desc := strings.TrimSpace(field.Tag.Get("desc"))
		if desc == "" {
			*errs = append(*errs, fmt.Errorf("config: %s (%s.%s) has no desc tag", key, t.Name(), field.Name))
		}
		def := field.Tag.Get("default")
		*vars = append(*vars, Var{
			Name: key, Type: typeName(field.Type), Default: def, Description: desc,
			Required: field.Tag.Get("required") == "true" && def == "",
		})
	}
}

// keyOf is the variable envconfig reads for field under prefix.
func keyOf(prefix string, field reflect.StructField) string {
	key := strings.ToUpper(field.Name)
	if tag := field.Tag.Get("envconfig"); tag != "" {
		key = strings.ToUpper(tag)
	} else if field.Tag.Get("split_words") == "true" {
		key = strings.ToUpper(strings.Join(camelWords.FindAllString(field.Name, -1), "_"))
	}
	if prefix != "" {
		key = prefix + "_" + key
	}
	return key
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	// decodesItself are the interfaces of a struct envconfig fills from one
	// variable (a time, a URL) rather than field by field.
	decodesItself = []reflect.Type{reflect.TypeFor[envconfig.Decoder](), reflect.TypeFor[envconfig.Setter](),
		reflect.TypeFor[encoding.TextUnmarshaler](), reflect.TypeFor[encoding.BinaryUnmarshaler]()}
)

// nestedType is isNested for a type: a struct of settings, not one that
// decodes itself.
func nestedType(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for _, iface := range decodesItself {
		if reflect.PointerTo(t).Implements(iface) {
			return false
		}
	}
	return true
}

// typeName says what a variable's value looks like, in the words of Load's
// error messages.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice:
		return "comma-separated " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	}
	return "string"
}

// DescribeAll describes every section; the error names every variable
// without a description.
func DescribeAll(sections []Section) ([][]Var, error) {
	all := make([][]Var, len(sections))
	var errs []error
	for i, s := range sections {
		vars, err := Describe(s.Prefix, s.Spec)
		all[i] = vars
		if err != nil {
			errs = append(errs, err)
		}
	}
	return all, errors.Join(errs...)
}

// HelpRequested reports whether args (a command line without the program's
// name) ask for help: -h, -help or --help.
func HelpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// PrintHelp writes usage, then each section's variables: name, type,
// default and description. Defaults come from the struct tags alone, never
// from the environment.
func PrintHelp(w io.Writer, usage string, sections []Section) error {
	all, err := DescribeAll(sections)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, strings.TrimSpace(usage))
	for i, s := range sections {
		fmt.Fprintln(w)
		title := s.Title
		if title == "" {
			title = "Environment variables"
		}
		fmt.Fprintf(w, "%s:\n", title)
		for _, v := range all[i] {
			fmt.Fprintf(w, "  %s (%s, %s)\n      %s\n", v.Name, v.Type, DefaultText(v), v.Description)
		}
	}
	return nil
}

// DefaultText is how a variable's default reads in help and docs.
func DefaultText(v Var) string {
	switch {
	case v.Required:
		return "required"
	case v.Default != "":
		return "default " + v.Default
	case v.Type == "bool":
		return "default false"
	}
	return "default empty"
}
