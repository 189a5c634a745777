package checkwire

import (
	"errors"
	"iter"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file reads a CheckRequest straight from its protobuf encoding,
// without building the message. protobuf-go decodes every header Envoy
// sends into Go values (a map through reflection, or a message per raw
// header, with an allocation per key and value); the adapter reads six
// headers and a few attributes, and decoding the rest was a quarter of the
// live server's CPU, more than the decision (BENCHMARKS.md, "Side by side
// over gRPC").
//
// The reader must never see a different request than protobuf-go would:
// it accepts exactly the encodings proto.Unmarshal accepts, and for them
// yields exactly what authz's oracle reads from the decoded message
// (fieldsOf in authz's tests). That is what FuzzWireFields checks on
// arbitrary bytes. In detail:
//   - a message field seen twice is merged; a scalar seen twice keeps the
//     last value; a map entry keeps the last value for its key, and an entry
//     whose key or value is missing has "" there;
//   - a field whose wire type does not fit its declaration is an unknown
//     field, skipped;
//   - every string field of every message, read or not, must be valid
//     UTF-8 (the files are proto3), and every field must be well-formed
//     wire format, down to unknown groups and packed numbers: the fields
//     the adapter does not read are walked with their descriptors;
//   - messages nest at most protoRecursionLimit deep, counted as
//     protobuf-go counts them (a map entry is one level).

// protoRecursionLimit is protobuf-go's default nesting limit, which the
// gRPC codec uses.
const protoRecursionLimit = 10000

// ErrInvalid is the error for an encoding protobuf-go would refuse.
var ErrInvalid = errors.New("authz: CheckRequest: invalid wire format")

// The headers a Reader reads, by slot.
const (
	SlotAuthority = iota
	SlotPath
	SlotScheme
	SlotAuthorization
	SlotCapability
	SlotIdentity
	NumSlots
)

// Fields is what the gRPC adapter reads of a CheckRequest: the HTTP
// attributes, the peer's principal, two context extensions, and every
// value of the headers of each slot, in the order of the header rule
// (HeaderMapKey, EntryValues). Nothing is read when the request has no
// HTTP attributes (HasHTTP false).
type Fields struct {
	HasHTTP                           bool
	Method, Host, Path, Scheme        string
	Principal, ExtScheme, ExtIdentity string
	Headers                           [NumSlots][]string
	// Extra holds the first value of each of Reader.Extra ("" if absent).
	Extra []string
	// Named holds every value of each of Reader.Named, by the header rule
	// as for a slot (nil if absent); nil when Reader.Named is.
	Named [][]string
}

// Reader says what to read of a CheckRequest. It is not changed once in
// use.
type Reader struct {
	// Headers are the lower-case header names read, by slot; "" reads
	// none.
	Headers [NumSlots]string
	// SchemeExtension and IdentityExtension are the context extensions
	// read into ExtScheme and ExtIdentity; "" reads none.
	SchemeExtension, IdentityExtension string
	// Extra are lower-case header names of which the first value is kept
	// (Fields.Extra); nil for none.
	Extra []string
	// Named are lower-case header names of which every value is kept
	// (Fields.Named): the headers a route profile accepts its capability
	// in. nil for none.
	Named []string
}

// Descriptors of the messages the reader walks field by field; everything
// else is walked generically (walkMessage).
var (
	descAttributes  = (*authv3.AttributeContext)(nil).ProtoReflect().Descriptor()
	descPeer        = (*authv3.AttributeContext_Peer)(nil).ProtoReflect().Descriptor()
	descRequest     = (*authv3.AttributeContext_Request)(nil).ProtoReflect().Descriptor()
	descHTTP        = (*authv3.AttributeContext_HttpRequest)(nil).ProtoReflect().Descriptor()
	descCheck       = (*authv3.CheckRequest)(nil).ProtoReflect().Descriptor()
	descHeaderMap   = descHTTP.Fields().ByNumber(13).Message()
	descHeaderValue = descHeaderMap.Fields().ByNumber(1).Message()
	descStringEntry = descAttributes.Fields().ByNumber(10).Message()
)

// wireReader accumulates what one CheckRequest carries, as sub-slices of
// its encoding; fields converts them to strings at the end.
type wireReader struct {
	names            *[NumSlots]string
	schemeExt, idExt string

	hasHTTP                               bool
	method, host, path, scheme, principal []byte
	extScheme, extIdentity                []byte
	mapValue                              [NumSlots][]byte
	mapHas                                [NumSlots]bool
	// Every header_map value of each slot, in order: the first two in
	// inline (a header arrives once or twice, and then nothing is
	// allocated), the rest in more.
	inline  [NumSlots][2][]byte
	inlineN [NumSlots]int
	more    [NumSlots][][]byte

	// extra: the headers map's value and the first header_map value of each
	// of extraNames, when there are any.
	extraNames []string
	extra      []extraValue

	// named: every value of each of namedNames, the headers map's first.
	namedNames []string
	named      []namedValues
}

// namedValues is what the reader found of one named header.
type namedValues struct {
	mapValue []byte
	mapHas   bool
	values   [][]byte // header_map values, in order
}

// extraValue is what the reader found of one extra header.
type extraValue struct {
	mapValue, first []byte // the headers map's value; the first header_map value
	mapHas, found   bool
}

// Read decodes b, a serialized CheckRequest, into the fields r reads. b is
// not retained. An encoding protobuf-go refuses is ErrInvalid.
func (r *Reader) Read(b []byte) (Fields, error) {
	// Set field by field: a composite literal of this large struct is
	// built in a temporary and copied, which deepens the stack of every
	// Check by as much (a goroutine's stack growth is a cost per RPC).
	var w wireReader
	w.names, w.schemeExt, w.idExt = &r.Headers, r.SchemeExtension, r.IdentityExtension
	if n := len(r.Extra); n > 0 {
		w.extraNames = r.Extra
		w.extra = make([]extraValue, n)
	}
	if n := len(r.Named); n > 0 {
		w.namedNames = r.Named
		w.named = make([]namedValues, n)
	}
	if err := walkMessage(b, protoRecursionLimit, descCheck, w.checkRequest); err != nil {
		return Fields{}, err
	}
	f := w.fields()
	if f.HasHTTP && len(w.extraNames) > 0 {
		f.Extra = make([]string, len(w.extraNames))
		for i, e := range w.extra {
			switch {
			case e.mapHas:
				f.Extra[i] = string(e.mapValue)
			case e.found:
				f.Extra[i] = string(e.first)
			}
		}
	}
	if f.HasHTTP && len(w.namedNames) > 0 {
		f.Named = make([][]string, len(w.namedNames))
		for i := range w.named {
			f.Named[i] = w.named[i].strings()
		}
	}
	return f, nil
}

// strings returns every value found, the headers map's first; nil for none.
func (v *namedValues) strings() []string {
	var out []string
	if v.mapHas {
		out = append(out, string(v.mapValue))
	}
	for _, x := range v.values {
		out = append(out, string(x))
	}
	return out
}

// A fieldFunc handles one field of a message: it returns the bytes it
// consumed, or handled false to leave the field to the generic walk.
type fieldFunc func(num protowire.Number, typ protowire.Type, b []byte, depth int) (n int, handled bool, err error)

// consumeTag reads a field's tag as protobuf-go does: a field number out of
// range or an end-group tag outside a group is an error (n < 0).
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 || v>>3 < uint64(protowire.MinValidNumber) || v>>3 > uint64(protowire.MaxValidNumber) {
		return 0, 0, -1
	}
	typ := protowire.Type(v & 7)
	if typ == protowire.EndGroupType {
		return 0, 0, -1
	}
	return protowire.Number(v >> 3), typ, n
}

// sub reads a length-delimited field; ok is false when the wire type is not
// length-delimited (an unknown field then).
func sub(typ protowire.Type, b []byte) (v []byte, n int, ok bool, err error) {
	if typ != protowire.BytesType {
		return nil, 0, false, nil
	}
	v, n = protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, true, ErrInvalid
	}
	return v, n, true, nil
}

// str reads a string field into *dst, checking UTF-8.
func str(dst *[]byte, typ protowire.Type, b []byte) (int, bool, error) {
	v, n, ok, err := sub(typ, b)
	if !ok || err != nil {
		return n, ok, err
	}
	if !utf8.Valid(v) {
		return 0, true, ErrInvalid
	}
	*dst = v
	return n, true, nil
}

// nested reads a message field with fn.
func nested(typ protowire.Type, b []byte, depth int, md protoreflect.MessageDescriptor, fn fieldFunc) (int, bool, error) {
	v, n, ok, err := sub(typ, b)
	if !ok || err != nil {
		return n, ok, err
	}
	return n, true, walkMessage(v, depth, md, fn)
}

func (r *wireReader) checkRequest(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
	if num == 1 { // attributes
		return nested(typ, b, depth, descAttributes, r.attributes)
	}
	return 0, false, nil
}

func (r *wireReader) attributes(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
	switch num {
	case 1: // source
		return nested(typ, b, depth, descPeer, r.source)
	case 4: // request
		return nested(typ, b, depth, descRequest, r.request)
	case 10: // context_extensions
		return r.entry(typ, b, depth, func(k, v []byte) {
			if r.schemeExt != "" && string(k) == r.schemeExt {
				r.extScheme = v
			}
			if r.idExt != "" && string(k) == r.idExt {
				r.extIdentity = v
			}
		})
	}
	return 0, false, nil
}

func (r *wireReader) source(num protowire.Number, typ protowire.Type, b []byte, _ int) (int, bool, error) {
	if num == 4 { // principal
		return str(&r.principal, typ, b)
	}
	return 0, false, nil
}

func (r *wireReader) request(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
	if num == 2 { // http
		n, ok, err := nested(typ, b, depth, descHTTP, r.http)
		if ok && err == nil {
			r.hasHTTP = true
		}
		return n, ok, err
	}
	return 0, false, nil
}

func (r *wireReader) http(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
	switch num {
	case 2:
		return str(&r.method, typ, b)
	case 3: // headers: the map, matched exactly; the last entry for a key wins
		return r.entry(typ, b, depth, func(k, v []byte) {
			for i, name := range r.names {
				if name != "" && string(k) == name {
					r.mapValue[i], r.mapHas[i] = v, true
				}
			}
			for i, name := range r.extraNames {
				if string(k) == name {
					r.extra[i].mapValue, r.extra[i].mapHas = v, true
				}
			}
			for i, name := range r.namedNames {
				if string(k) == name {
					r.named[i].mapValue, r.named[i].mapHas = v, true
				}
			}
		})
	case 4:
		return str(&r.path, typ, b)
	case 5:
		return str(&r.host, typ, b)
	case 6:
		return str(&r.scheme, typ, b)
	case 13: // header_map
		return nested(typ, b, depth, descHeaderMap, r.headerMap)
	}
	return 0, false, nil
}

func (r *wireReader) headerMap(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
	if num != 1 { // headers: repeated HeaderValue, each a header of its own
		return 0, false, nil
	}
	var key, value, raw []byte
	n, ok, err := nested(typ, b, depth, descHeaderValue, func(num protowire.Number, typ protowire.Type, b []byte, _ int) (int, bool, error) {
		switch num {
		case 1:
			return str(&key, typ, b)
		case 2:
			return str(&value, typ, b)
		case 3: // raw_value: bytes, not checked for UTF-8
			v, n, ok, err := sub(typ, b)
			if ok && err == nil {
				raw = v
			}
			return n, ok, err
		}
		return 0, false, nil
	})
	if !ok || err != nil {
		return n, ok, err
	}
	// The header rule (HeaderMapKey, EntryValues), on the encoding.
	for i, name := range r.extraNames {
		if e := &r.extra[i]; !e.found && HeaderMapKey(string(key), name) {
			v, _ := EntryValues(value, raw)
			e.first, e.found = v[0], true
		}
	}
	for i, name := range r.namedNames {
		if HeaderMapKey(string(key), name) {
			v, n := EntryValues(value, raw)
			r.named[i].values = append(r.named[i].values, v[:n]...)
		}
	}
	for i, name := range r.names {
		if name != "" && HeaderMapKey(string(key), name) {
			v, n := EntryValues(value, raw)
			for _, x := range v[:n] {
				r.add(i, x)
			}
		}
	}
	return n, true, nil
}

// add appends v to slot i's header_map values.
func (r *wireReader) add(i int, v []byte) {
	if n := r.inlineN[i]; n < len(r.inline[i]) {
		r.inline[i][n] = v
		r.inlineN[i]++
		return
	}
	r.more[i] = append(r.more[i], v)
}

// values returns slot i's header_map values.
func (r *wireReader) values(i int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for _, v := range r.inline[i][:r.inlineN[i]] {
			if !yield(v) {
				return
			}
		}
		for _, v := range r.more[i] {
			if !yield(v) {
				return
			}
		}
	}
}

// entry reads one map<string, string> entry and gives it to set, as
// protobuf-go reads it: a missing key or value is "", the last of each
// wins, other fields are skipped (walked), and the entry is one level of
// nesting.
func (r *wireReader) entry(typ protowire.Type, b []byte, depth int, set func(k, v []byte)) (int, bool, error) {
	var k, v []byte
	n, ok, err := nested(typ, b, depth, descStringEntry, func(num protowire.Number, typ protowire.Type, b []byte, _ int) (int, bool, error) {
		switch num {
		case 1:
			return str(&k, typ, b)
		case 2:
			return str(&v, typ, b)
		}
		return 0, false, nil
	})
	if ok && err == nil {
		set(k, v)
	}
	return n, ok, err
}

// fields converts what was read to strings, with one allocation for all of
// their bytes and one for all the header lists.
func (r *wireReader) fields() Fields {
	if !r.hasHTTP {
		return Fields{}
	}
	size, values := 0, 0
	scalars := [...][]byte{r.method, r.host, r.path, r.scheme, r.principal, r.extScheme, r.extIdentity}
	for _, s := range scalars {
		size += len(s)
	}
	for i := range NumSlots {
		if r.mapHas[i] {
			size += len(r.mapValue[i])
			values++
		}
		for v := range r.values(i) {
			size += len(v)
		}
		values += r.inlineN[i] + len(r.more[i])
	}
	var buf strings.Builder
	buf.Grow(size)
	for _, s := range scalars {
		buf.Write(s)
	}
	for i := range NumSlots {
		if r.mapHas[i] {
			buf.Write(r.mapValue[i])
		}
		for v := range r.values(i) {
			buf.Write(v)
		}
	}
	all := buf.String()
	next := func(n int) string {
		s := all[:n]
		all = all[n:]
		return s
	}
	f := Fields{HasHTTP: true}
	for i, dst := range [...]*string{&f.Method, &f.Host, &f.Path, &f.Scheme, &f.Principal, &f.ExtScheme, &f.ExtIdentity} {
		*dst = next(len(scalars[i]))
	}
	if values == 0 {
		return f
	}
	lists := make([]string, values)
	for i := range NumSlots {
		start := len(lists) - values
		if r.mapHas[i] {
			lists[start+0] = next(len(r.mapValue[i]))
			values--
		}
		for v := range r.values(i) {
			lists[len(lists)-values] = next(len(v))
			values--
		}
		if end := len(lists) - values; end > start {
			f.Headers[i] = lists[start:end:end]
		}
	}
	return f
}

// walkMessage walks one message's fields (depth counts the levels above
// it), giving each to fn, when not nil, and those fn leaves, and all when
// fn is nil, to walkField: the fields the adapter does not read are
// checked as protobuf-go would check them while decoding them.
func walkMessage(b []byte, depth int, md protoreflect.MessageDescriptor, fn fieldFunc) error {
	if depth--; depth < 0 {
		return ErrInvalid
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return ErrInvalid
		}
		b = b[n:]
		handled, err := false, error(nil)
		if fn != nil {
			n, handled, err = fn(num, typ, b, depth)
		}
		if err == nil && !handled {
			n, err = walkField(md, num, typ, b, depth)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// walkField consumes one field of a message md (depth counts md's level)
// and checks it: a declared field with its declared wire type is checked
// as its kind says; anything else is an unknown field, which must only be
// well-formed.
func walkField(md protoreflect.MessageDescriptor, num protowire.Number, typ protowire.Type, b []byte, depth int) (int, error) {
	if fd := md.Fields().ByNumber(num); fd != nil {
		if n, ok, err := walkKnown(fd, typ, b, depth); ok {
			return n, err
		}
	}
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, ErrInvalid
	}
	return n, nil
}

// walkKnown checks a declared field; ok is false when its wire type makes
// it an unknown field.
func walkKnown(fd protoreflect.FieldDescriptor, typ protowire.Type, b []byte, depth int) (n int, ok bool, err error) {
	kind := fd.Kind()
	switch kind {
	case protoreflect.MessageKind: // map entries too: an entry is a level
		v, n, ok, err := sub(typ, b)
		if !ok || err != nil {
			return n, ok, err
		}
		return n, true, walkMessage(v, depth, fd.Message(), nil)
	case protoreflect.StringKind, protoreflect.BytesKind:
		v, n, ok, err := sub(typ, b)
		if !ok || err != nil {
			return n, ok, err
		}
		if kind == protoreflect.StringKind && enforceUTF8(fd) && !utf8.Valid(v) {
			return 0, true, ErrInvalid
		}
		return n, true, nil
	case protoreflect.GroupKind:
		// No proto3 message has one (TestWireDescriptors); refuse rather
		// than guess how protobuf-go would read it.
		return 0, true, ErrInvalid
	}
	want := scalarWireType(kind)
	if typ != protowire.BytesType || !fd.IsList() {
		// The declared wire type is checked by ConsumeFieldValue, as any
		// other is an unknown field.
		return 0, false, nil
	}
	v, n, _, err := sub(typ, b) // packed numbers: every one must parse
	if err != nil {
		return 0, true, err
	}
	for len(v) > 0 {
		m := protowire.ConsumeFieldValue(1, want, v)
		if m < 0 {
			return 0, true, ErrInvalid
		}
		v = v[m:]
	}
	return n, true, nil
}

// scalarWireType is the wire type of a number kind.
func scalarWireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// enforceUTF8 says whether protobuf-go refuses invalid UTF-8 in a string
// field: always in proto3, by feature in editions.
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	if fd.Syntax() == protoreflect.Editions {
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return fd.Syntax() == protoreflect.Proto3
}
