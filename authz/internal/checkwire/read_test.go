package checkwire

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestWireDescriptors guards the reader's assumptions about the messages:
// the field numbers it reads have the names and kinds it expects and are in
// no oneof, and no message a CheckRequest can carry has a group field
// (walkKnown refuses them) or a lazy one.
func TestWireDescriptors(t *testing.T) {
	for _, c := range []struct {
		md   protoreflect.MessageDescriptor
		num  protowire.Number
		name string
		kind protoreflect.Kind
	}{
		{descCheck, 1, "attributes", protoreflect.MessageKind},
		{descAttributes, 1, "source", protoreflect.MessageKind},
		{descAttributes, 4, "request", protoreflect.MessageKind},
		{descAttributes, 10, "context_extensions", protoreflect.MessageKind},
		{descPeer, 4, "principal", protoreflect.StringKind},
		{descRequest, 2, "http", protoreflect.MessageKind},
		{descHTTP, 2, "method", protoreflect.StringKind},
		{descHTTP, 3, "headers", protoreflect.MessageKind},
		{descHTTP, 4, "path", protoreflect.StringKind},
		{descHTTP, 5, "host", protoreflect.StringKind},
		{descHTTP, 6, "scheme", protoreflect.StringKind},
		{descHTTP, 13, "header_map", protoreflect.MessageKind},
		{descHeaderMap, 1, "headers", protoreflect.MessageKind},
		{descHeaderValue, 1, "key", protoreflect.StringKind},
		{descHeaderValue, 2, "value", protoreflect.StringKind},
		{descHeaderValue, 3, "raw_value", protoreflect.BytesKind},
		{descStringEntry, 1, "key", protoreflect.StringKind},
		{descStringEntry, 2, "value", protoreflect.StringKind},
	} {
		fd := c.md.Fields().ByNumber(c.num)
		// A field of a oneof would be cleared by another of its members,
		// which the reader does not do.
		if fd == nil || string(fd.Name()) != c.name || fd.Kind() != c.kind || !enforceUTF8OrBytes(fd) || fd.ContainingOneof() != nil {
			t.Errorf("%s field %d = %v; want %s of kind %v", c.md.FullName(), c.num, fd, c.name, c.kind)
		}
	}
	for _, md := range []protoreflect.MessageDescriptor{descHTTP.Fields().ByNumber(3).Message(), descAttributes.Fields().ByNumber(10).Message()} {
		if !md.IsMapEntry() || md.Fields().ByNumber(1).Kind() != protoreflect.StringKind || md.Fields().ByNumber(2).Kind() != protoreflect.StringKind {
			t.Errorf("%s is not a map<string, string> entry", md.FullName())
		}
	}
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if fd.Kind() == protoreflect.GroupKind {
				t.Errorf("%s has a group field", fd.FullName())
			}
			// protobuf-go checks a lazy field only when it is read; the
			// reader checks every field at once.
			if o, ok := fd.Options().(*descriptorpb.FieldOptions); ok && (o.GetLazy() || o.GetUnverifiedLazy()) {
				t.Errorf("%s is lazy", fd.FullName())
			}
			if fd.Message() != nil {
				visit(fd.Message())
			}
		}
	}
	visit(descCheck)
	if len(seen) < 20 {
		t.Errorf("only %d messages reachable from CheckRequest", len(seen))
	}
}

func enforceUTF8OrBytes(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() != protoreflect.StringKind || enforceUTF8(fd)
}
