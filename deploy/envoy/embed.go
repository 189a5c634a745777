package envoy

import _ "embed" // ComposeConfig

// ComposeConfig is envoy-compose.yaml, the demo's Envoy config, as shipped:
// `extauthz demo` runs it with only its addresses rewritten.
//
//go:embed envoy-compose.yaml
var ComposeConfig []byte
