package checkwire

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Allow is what an allow says, as authz defines it (grpc.go, allowOf), to
// be encoded as an envoy.service.auth.v3.CheckResponse: status OK, an
// OkHttpResponse that sets Header to ValuePrefix followed by Value with
// Action (a HeaderValueOption.HeaderAppendAction) and removes Remove, and
// Metadata as dynamic metadata of string values, in order.
type Allow struct {
	Header             string
	ValuePrefix, Value string
	Action             uint64
	// Remove and AlsoRemove are the headers to remove, one list after
	// the other: the adapter's own and a route profile's.
	Remove, AlsoRemove []string
	Metadata           [][2]string
}

// AppendAllow appends the encoding of a's CheckResponse to b, written
// directly (field numbers from envoy/service/auth/v3, envoy/config/core/v3
// and google/protobuf/struct.proto) instead of building the messages.
// authz's test oracle builds the same allow with protobuf-go (okResponse),
// and FuzzAppendOK and TestAppendOKLengths hold the two equal for any
// decision and server set-up.
func AppendAllow(b []byte, a *Allow) []byte {
	header := sizeString(1, a.Header) + protowire.SizeTag(2) + protowire.SizeBytes(len(a.ValuePrefix)+len(a.Value))
	option := sizeMessage(1, header) + protowire.SizeTag(3) + protowire.SizeVarint(a.Action)
	ok := sizeMessage(2, option)
	for _, h := range a.Remove {
		ok += sizeString(5, h)
	}
	for _, h := range a.AlsoRemove {
		ok += sizeString(5, h)
	}
	fields := 0
	for _, kv := range a.Metadata {
		fields += sizeMessage(1, entrySize(kv))
	}
	b = slices.Grow(b, sizeMessage(1, 0)+sizeMessage(3, ok)+sizeMessage(4, fields))

	b = appendMessage(b, 1, 0) // status: code OK, the zero value
	b = appendMessage(b, 3, ok)
	b = appendMessage(b, 2, option)
	b = appendMessage(b, 1, header)
	b = appendString(b, 1, a.Header)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(a.ValuePrefix)+len(a.Value)))
	b = append(b, a.ValuePrefix...)
	b = append(b, a.Value...)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, a.Action)
	for _, h := range a.Remove {
		b = appendString(b, 5, h)
	}
	for _, h := range a.AlsoRemove {
		b = appendString(b, 5, h)
	}
	b = appendMessage(b, 4, fields)
	for _, kv := range a.Metadata {
		b = appendMessage(b, 1, entrySize(kv))
		b = appendString(b, 1, kv[0])
		b = appendMessage(b, 2, sizeString(3, kv[1]))
		b = appendString(b, 3, kv[1])
	}
	return b
}

// entrySize is the size of one Struct.fields entry: its key, and a Value
// holding a string.
func entrySize(kv [2]string) int {
	return sizeString(1, kv[0]) + sizeMessage(2, sizeString(3, kv[1]))
}

func sizeString(num protowire.Number, s string) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func sizeMessage(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessage appends a message field's tag and length; its fields follow.
func appendMessage(b []byte, num protowire.Number, size int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(size))
}
