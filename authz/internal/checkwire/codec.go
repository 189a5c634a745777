package checkwire

import (
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// ServerOption is what a grpc.Server needs to exchange a *Call for Check:
// Codec, forced for every call.
func ServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(Codec())
}

// Codec reads a Check request into a *Call and sends a Call's encoded
// allow as it is; every other message (health, reflection, a deny's
// CheckResponse) goes to gRPC's protobuf codec.
func Codec() encoding.CodecV2 {
	return codec{proto: encoding.GetCodecV2(grpcproto.Name)}
}

// Call is one Check as the codec exchanges it: the request as a Reader
// read it, then the encoded allow that answers it. A deny is answered with
// a CheckResponse message instead, which the protobuf codec encodes.
type Call struct {
	reader  *Reader
	onPanic func(any)
	fields  Fields
	allow   []byte
}

// NewCall returns a Call whose request r reads. onPanic is told of a
// panic while reading, which refuses the request (ErrInvalid): none is
// expected (FuzzWireFields), and grpc-go's server loop, where reading
// runs, does not recover panics.
func NewCall(r *Reader, onPanic func(any)) *Call {
	return &Call{reader: r, onPanic: onPanic}
}

// Fields is what was read of the request.
func (c *Call) Fields() *Fields { return &c.fields }

// SetAllow answers the call with an allow's encoding (AppendAllow), sent
// as it is.
func (c *Call) SetAllow(enc []byte) { c.allow = enc }

// Get returns the first value of header name, one of the Reader's Extra
// headers, or "" when absent or not one of them: a Call is the carrier a
// trace propagator reads the Check span's parent from.
func (c *Call) Get(name string) string {
	for i, n := range c.reader.Extra {
		if n == name && i < len(c.fields.Extra) {
			return c.fields.Extra[i]
		}
	}
	return ""
}

// Set and Keys complete propagation.TextMapCarrier: the server extracts,
// it never injects, and the W3C and B3 propagators list no keys.
func (*Call) Set(string, string) {}
func (*Call) Keys() []string     { return nil }

// read decodes the request. It recovers a panic into ErrInvalid.
func (c *Call) read(data mem.BufferSlice) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if c.onPanic != nil {
				c.onPanic(p)
			}
			err = ErrInvalid
		}
	}()
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	c.fields, err = c.reader.Read(b)
	return err
}

type codec struct{ proto encoding.CodecV2 }

var errNoAllow = errors.New("authz: a Check request returned as its own response")

func (c codec) Name() string { return grpcproto.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if call, ok := v.(*Call); ok {
		// Only an encoded allow is sent as it is. An empty CheckResponse,
		// with no status, could read as OK: refuse, and the proxy denies.
		if len(call.allow) == 0 {
			return nil, errNoAllow
		}
		return mem.BufferSlice{mem.SliceBuffer(call.allow)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if call, ok := v.(*Call); ok {
		return call.read(data)
	}
	return c.proto.Unmarshal(data, v)
}
