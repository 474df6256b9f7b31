// Package templates embeds the HTML templates and static files, so the
// binary carries its pages and a missing one fails at start.
package templates

import "embed"

// FS holds layout.html, the page templates, static/ and the message
// catalogs, locales/CODE.json.
//
//go:embed *.html static locales
var FS embed.FS
