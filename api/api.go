// Package api holds the OpenAPI 3.1 document of latch serve's HTTP API.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document (JSON) served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte
