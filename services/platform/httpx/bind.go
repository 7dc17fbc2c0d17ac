package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/binding"
	"github.com/go-playground/validator/v10"
)

var useJSONNames sync.Once

// validate is gin's validator, taught to report JSON field names.
func validate() *validator.Validate {
	v := binding.Validator.Engine().(*validator.Validate)
	useJSONNames.Do(func() {
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				return ""
			}
			if name == "" {
				return f.Name
			}
			return name
		})
	})
	return v
}

// BindJSON decodes the request body into dst strictly and validates it with its
// `binding` tags. On any problem it writes the contract's error response (415 not
// JSON, 400 missing body, 413 too large, 400 input validation error with a field
// per problem) and returns false; the handler then just returns.
func BindJSON(c *gin.Context, dst any) bool {
	if mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mediaType != "application/json" {
		Fail(c, http.StatusUnsupportedMediaType, MsgUnsupportedType)
		return false
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		failDecode(c, err)
		return false
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			Fail(c, http.StatusRequestEntityTooLarge, MsgBodyTooLarge)
			return false
		}
		Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: "body", Message: "must hold exactly one JSON value"})
		return false
	}
	if field, found := textWithNUL(reflect.ValueOf(dst), ""); found {
		if field == "" {
			field = "body"
		}
		Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: field, Message: "must not contain NUL characters"})
		return false
	}
	if err := validate().Struct(dst); err != nil {
		var invalid validator.ValidationErrors
		if errors.As(err, &invalid) {
			Fail(c, http.StatusBadRequest, MsgValidation, fieldErrors(invalid)...)
			return false
		}
		// Not a struct: nothing to validate by tags.
		var notStruct *validator.InvalidValidationError
		if !errors.As(err, &notStruct) {
			Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: "body", Message: err.Error()})
			return false
		}
	}
	return true
}

// textWithNUL finds the first string in v holding a NUL character and returns
// its JSON path ("items[2].note"). PostgreSQL cannot store NUL in text, so such a
// value would otherwise travel to the database and come back as a 500. Raw
// bytes (json.RawMessage) are the handler's to read.
func textWithNUL(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return textWithNUL(v.Elem(), path)
	case reflect.String:
		return path, strings.ContainsRune(v.String(), 0)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if p, found := textWithNUL(v.Field(i), name); found {
				return p, true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", false
		}
		for i := range v.Len() {
			if p, found := textWithNUL(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); found {
				return p, true
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			key := fmt.Sprint(iter.Key().Interface())
			if strings.ContainsRune(key, 0) {
				return path, true
			}
			if p, found := textWithNUL(iter.Value(), fmt.Sprintf("%s[%s]", path, key)); found {
				return p, true
			}
		}
	}
	return "", false
}

// Bind is BindJSON into a new T, for handlers whose decoding is nothing more.
func Bind[T any](c *gin.Context) (T, bool) {
	var req T
	ok := BindJSON(c, &req)
	return req, ok
}

func failDecode(c *gin.Context, err error) {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var wrongType *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		Fail(c, http.StatusBadRequest, MsgMissingBody)
	case errors.As(err, &tooLarge):
		Fail(c, http.StatusRequestEntityTooLarge, MsgBodyTooLarge)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: "body", Message: "must be valid JSON"})
	case errors.As(err, &wrongType):
		field := wrongType.Field
		if field == "" {
			field = "body"
		}
		Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: field, Message: "must be " + describeType(wrongType.Type)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if field == "" {
			Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: "body", Message: "holds a member with an empty name"})
			return
		}
		Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: field, Message: "is not a known field"})
	default:
		Fail(c, http.StatusBadRequest, MsgValidation, FieldError{Field: "body", Message: "must be valid JSON"})
	}
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}

// fieldErrors turns validator errors into contract errors: JSON paths such as
// items[0].quantity and messages a client can show.
func fieldErrors(errs validator.ValidationErrors) []FieldError {
	out := make([]FieldError, 0, len(errs))
	for _, e := range errs {
		path := e.Namespace()
		if _, rest, ok := strings.Cut(path, "."); ok {
			path = rest // drop the Go name of the top-level struct
		}
		out = append(out, FieldError{Field: path, Message: describeRule(e)})
	}
	return out
}

func describeRule(e validator.FieldError) string {
	kind := e.Kind()
	isText := kind == reflect.String
	isList := kind == reflect.Slice || kind == reflect.Array || kind == reflect.Map
	switch e.Tag() {
	case "required":
		return "is required"
	case "email":
		return "must be a valid email"
	case "min", "gte":
		switch {
		case isText:
			return fmt.Sprintf("must be at least %s characters", e.Param())
		case isList:
			return fmt.Sprintf("must have at least %s items", e.Param())
		}
		return "must be at least " + e.Param()
	case "max", "lte":
		switch {
		case isText:
			return fmt.Sprintf("must be at most %s characters", e.Param())
		case isList:
			return fmt.Sprintf("must have at most %s items", e.Param())
		}
		return "must be at most " + e.Param()
	case "gt":
		return "must be greater than " + e.Param()
	case "lt":
		return "must be less than " + e.Param()
	case "len":
		if isText {
			return fmt.Sprintf("must be exactly %s characters", e.Param())
		}
		return "must have exactly " + e.Param() + " items"
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(e.Param(), " ", ", ")
	case "numeric", "number":
		return "must contain only digits"
	case "unique":
		return "must not contain duplicates"
	}
	return "is invalid (" + e.Tag() + ")"
}

// PathID reads a numeric path parameter, or writes the contract's 400. Zero and
// negative ids are numbers: they reach the lookup and find nothing (404).
func PathID(c *gin.Context, name string) (int64, bool) {
	raw := c.Param(name)
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		Fail(c, http.StatusBadRequest, fmt.Sprintf("expected a numeric value but got '%s'", raw))
		return 0, false
	}
	return id, true
}
