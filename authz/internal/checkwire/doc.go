// Package checkwire is the fast path of authz's gRPC adapter, fenced: it
// reads an envoy.service.auth.v3.CheckRequest straight from its protobuf
// encoding (Reader, read.go) and encodes an allow's CheckResponse directly
// (AppendAllow, allow.go), and its gRPC codec (Codec, ServerOption,
// codec.go) hands the one to authz and sends the other, every other
// message going to gRPC's protobuf codec. authz.Register is its one
// production caller.
//
// It is clever, so it is held to the obvious path: authz's tests keep
// Check on protobuf-go's decoded messages as the oracle, and differential
// tests compare the two on arbitrary bytes (FuzzWireFields: the same
// acceptance and the same fields), on arbitrary allows (FuzzAppendOK,
// TestAppendOKLengths) and on every fixture, in process and over gRPC.
//
// Invariants:
//   - Read accepts exactly the encodings proto.Unmarshal accepts (UTF-8 in
//     every string field, well-formed unknown fields and groups, the
//     nesting limit) and reads from them exactly what the decoded message
//     holds, by the header rule of headers.go.
//   - A Call is sent only with an encoded allow; one without (an
//     interceptor that returns the request) is refused, never sent as an
//     empty CheckResponse that could read as OK.
//   - A panic while reading refuses the request; nothing here decides.
package checkwire
