package checkwire

import "strings"

// How a header of a CheckRequest is read (docs/decisions.md, sections 6
// and 7). Envoy sends the original request's headers in one of two fields:
// the headers map (lower-case names, each once, repeated values
// comma-joined) or, with encode_raw_headers, header_map (one entry per
// header line, in order, in any case, the bytes in raw_value). Both are
// read, the map first. A header_map entry stands for its raw_value and its
// value: when they differ, that is two values, so that the ambiguity is
// seen rather than settled by picking one. Read applies this rule to the
// encoding; authz's test oracle applies it to the decoded message, and
// FuzzWireFields holds the two equal.

// HeaderMapKey reports whether a header_map entry's key names the header
// name (lower case): header_map keys match in any case.
func HeaderMapKey(key, name string) bool { return strings.EqualFold(key, name) }

// EntryValues returns the values one header_map entry stands for, in
// order, n of them (1 or 2): raw_value, unless empty, then value, unless
// empty or equal to raw_value. An entry with neither is one empty value.
func EntryValues[T string | []byte](value, raw T) (v [2]T, n int) {
	switch {
	case len(raw) == 0:
		return [2]T{value}, 1
	case len(value) == 0 || string(value) == string(raw):
		return [2]T{raw}, 1
	}
	return [2]T{raw, value}, 2
}
