package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// immutableHint explains members FSx's update request does not have.
var immutableHint = map[string]string{
	"FileSystemPath":              "the paths of an association cannot change: delete it and create a new one",
	"DataRepositoryPath":          "the paths of an association cannot change: delete it and create a new one",
	"BatchImportMetaDataOnCreate": "it applies only when an association is created; run an IMPORT_METADATA_FROM_REPOSITORY task instead",
}

// DecodeRequest decodes a request body into v strictly: an unknown member, a
// value of the wrong type or trailing data is a BadRequest naming the member
// and the operation (as aws's "Unknown parameter in input" does).
func DecodeRequest(operation string, body io.Reader, v any) error {
	var raw bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(body, &raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return BadRequestf("%s: the request body is empty: send a JSON object", operation)
		case errors.As(err, &te):
			return BadRequestf("%s: member %s must be a JSON %s, not %s", operation, te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if h, ok := immutableHint[name]; ok && strings.HasPrefix(operation, "Update") {
				return BadRequestf("%s has no member %s: %s", operation, name, h)
			}
			return BadRequestf("%s has no member %s: check the spelling (members are case-sensitive)", operation, name)
		}
		return BadRequestf("%s: the request body is not valid JSON: %v", operation, err)
	}
	if dec.More() {
		return BadRequestf("%s: the request body has data after the JSON object: send one object", operation)
	}
	// encoding/json matches member names without regard to case; FSx does
	// not, so check the names exactly.
	return checkMemberCase(operation, raw.Bytes(), reflect.TypeOf(v))
}

func checkMemberCase(operation string, body []byte, t reflect.Type) error {
	var tree any
	if err := json.Unmarshal(body, &tree); err != nil {
		return nil // already decoded once; cannot happen
	}
	return walkCase(operation, tree, t)
}

func walkCase(operation string, v any, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, e := range x {
				if err := walkCase(operation, e, t.Elem()); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(Time{}) {
			return nil
		}
		for k, e := range x {
			f, ok := fieldByJSONName(t, k)
			if !ok {
				if h, ok := immutableHint[k]; ok && strings.HasPrefix(operation, "Update") {
					return BadRequestf("%s has no member %s: %s", operation, k, h)
				}
				return BadRequestf("%s has no member %s: check the spelling (members are case-sensitive)", operation, k)
			}
			if err := walkCase(operation, e, f.Type); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if n == "-" {
			continue
		}
		if n == "" {
			n = f.Name
		}
		if n == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	}
	return "number"
}

// EncodeError writes e's JSON body; handlers set the status from HTTPStatus.
func EncodeError(e *APIError) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		return []byte(fmt.Sprintf(`{"__type":"InternalServerError","Message":%q}`, err.Error()))
	}
	return bytes.TrimSpace(b)
}
