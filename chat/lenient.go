package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// Where the API's shapes are only assumed (see the package doc), an answer
// of another shape must not fail a call that the API carried out, nor a
// listing or an export. A body is first decoded as usual; only when that
// fails on a type does it go through decodeLenient, field by field: a value
// of an unexpected JSON type leaves its field empty and yields a Warning.
// Chat and FeedItem keep their raw JSON, so nothing the API said is lost.

// Warning reports a value of an API answer whose JSON type was not the one
// assumed. The typed field was left empty (zero or nil); the raw JSON is
// kept in Response.Body, and in Chat.Raw and FeedItem.Raw. It carries no
// value, so that logging it cannot leak content.
type Warning struct {
	Op    string // the call: "list_chats", "feed", ...
	Field string // JSON path in the body, such as "list[].archived"
	Want  string // the JSON type assumed: "number", "string", "boolean", "array", "object"
	Got   string // the JSON type received
}

func (w Warning) String() string {
	return "chat: " + w.Op + ": field " + w.Field + " is " + article(w.Got) + ", not " + article(w.Want) + "; left empty, kept as returned"
}

func article(t string) string {
	if t == "" {
		return "unknown"
	}
	if strings.IndexByte("aeiou", t[0]) >= 0 {
		return "an " + t
	}
	return "a " + t
}

// errNotObject: the body is not a JSON object, so it is not the API's.
var errNotObject = errors.New("body is not a JSON object")

// errBrokenObject: the body starts as a JSON object but is not valid JSON,
// most likely cut short on the way rather than sent by another service.
var errBrokenObject = errors.New("body is not valid JSON")

// rawKeeper is a type that keeps its raw JSON (Chat, FeedItem).
type rawKeeper interface{ keepRaw([]byte) }

// decodeBody decodes a 2xx body into out, a pointer to a struct. It fails
// only when the body is not a JSON object (errNotObject) or not valid JSON
// (errBrokenObject).
func decodeBody(op string, data []byte, out any) ([]Warning, error) {
	err := json.Unmarshal(data, out)
	if err == nil {
		return nil, nil
	}
	switch {
	case jsonType(data) != "object":
		return nil, errNotObject
	case !json.Valid(data):
		return nil, errBrokenObject
	}
	d := lenient{op: op}
	v := reflect.ValueOf(out).Elem()
	v.SetZero()
	d.value(bytes.TrimSpace(data), v, "")
	return d.warns, nil
}

type lenient struct {
	op    string
	warns []Warning
}

func (d *lenient) warn(path string, t reflect.Type, data []byte) {
	if path == "" {
		path = "(body)"
	}
	d.warns = append(d.warns, Warning{Op: d.op, Field: path, Want: wantType(t), Got: jsonType(data)})
}

// value decodes data into v (addressable), leaving v zero where the JSON
// type does not fit.
func (d *lenient) value(data []byte, v reflect.Value, path string) {
	if json.Unmarshal(data, v.Addr().Interface()) == nil {
		return
	}
	v.SetZero()
	switch v.Kind() {
	case reflect.Pointer:
		// A pointer to a scalar stays nil: a zero behind it would read as a
		// value the API gave (an "archived" of 0, say).
		if v.Type().Elem().Kind() != reflect.Struct || jsonType(data) != "object" {
			d.warn(path, v.Type().Elem(), data)
			return
		}
		e := reflect.New(v.Type().Elem())
		d.value(data, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		var fields map[string]json.RawMessage
		if json.Unmarshal(data, &fields) != nil || fields == nil {
			d.warn(path, v.Type(), data)
			return
		}
		d.fields(fields, v, path)
		if k, ok := v.Addr().Interface().(rawKeeper); ok {
			k.keepRaw(data)
		}
	case reflect.Slice:
		var elems []json.RawMessage
		if json.Unmarshal(data, &elems) != nil || elems == nil {
			d.warn(path, v.Type(), data)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(elems), len(elems))
		for i, el := range elems {
			d.value(el, s.Index(i), path+"[]")
		}
		v.Set(s)
	default:
		d.warn(path, v.Type(), data)
	}
}

// fields decodes an object's members into the struct v's fields, looking
// into embedded structs as encoding/json does.
func (d *lenient) fields(m map[string]json.RawMessage, v reflect.Value, path string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			d.fields(m, v.Field(i), path)
			continue
		}
		if name == "" {
			name = f.Name
		}
		raw, ok := m[name]
		if !ok {
			for k, r := range m {
				if strings.EqualFold(k, name) {
					raw, ok = r, true
					break
				}
			}
		}
		if !ok {
			continue
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		d.value(raw, v.Field(i), p)
	}
}

// jsonType names the JSON type of a value by its first byte.
func jsonType(data []byte) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "empty body"
	}
	switch data[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return "not JSON"
}

// wantType names the JSON type a Go type decodes from.
func wantType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Pointer:
		return wantType(t.Elem())
	}
	return "object"
}
