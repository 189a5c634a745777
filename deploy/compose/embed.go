package compose

import _ "embed" // DemoSubject

// DemoSubject is demo-subject.json, the subject demo-init.sh issues the
// demo capability for: `extauthz demo` issues its own from it.
//
//go:embed demo-subject.json
var DemoSubject []byte
