// Package templates embeds the HTML templates and static files, so the
// binary carries its pages and a missing one fails at start.
package templates

import "embed"

// FS holds layout.html, the page templates and static/.
//
//go:embed *.html static
var FS embed.FS
