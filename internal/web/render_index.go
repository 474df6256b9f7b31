package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"strings"
	"time"
)

// The logged-in index page is the page every visit lands on, and
// html/template spent most of its CPU walking it: reflective calls, and an
// escaper after every dynamic value. Its steady view (no flash, no notice)
// is the same page for everyone but for a few values, so it is rendered
// once per language at start, by html/template itself from the very same
// templates, with marker values in place of those; the output is split at
// the markers, and a request writes the static parts with its own values
// escaped between them. Which escaping each slot needs is fixed by where
// html/template put the marker: every slot of this page is in element
// content or a quoted, non-URL attribute, where html/template escapes a
// string with its HTML table (htmlEscape below); the user's name and the
// times can be any string. TestIndexSkeletonIsTheTemplatesOutput renders
// both ways for hostile values and compares the bytes.

// indexSlot is what goes into a gap of the skeleton.
type indexSlot uint8

const (
	slotUser        indexSlot = iota // the user's name, escaped
	slotLangSwitch                   // the rendered language switch, as it is
	slotIdleAgo                      // relative idle deadline, escaped
	slotIdleExact                    // exact idle deadline, escaped
	slotIdleMachine                  // <time datetime> of the idle deadline
	slotEndsAgo                      // relative absolute deadline, escaped
	slotEndsExact                    // exact absolute deadline, escaped
	slotEndsMachine                  // <time datetime> of the absolute deadline
	numSlots
)

// slotMarker is the marker of slot i: letters and digits only, which every
// escaper leaves alone, and no text a catalog or template holds.
func slotMarker(i indexSlot) string { return fmt.Sprintf("Qz%dslotZq", i) }

// The two times the skeleton is rendered with, told apart by the marker
// functions below.
var (
	skeletonIdle = time.Unix(1, 0)
	skeletonEnds = time.Unix(2, 0)
)

// indexSkeleton is the logged-in index page in one language, split at its
// dynamic values: parts[0], slots[0], parts[1], ..., parts[len(slots)].
type indexSkeleton struct {
	parts []string
	slots []indexSlot
}

// indexSkeletons are a language's skeletons: with an idle deadline shown,
// and without (SESSION_IDLE_TIMEOUT=0).
type indexSkeletons struct {
	idle, noIdle indexSkeleton
}

// parseIndexSkeletons renders index.html in l with markers for values
// and splits the result. The page is parsed again with l's functions
// except that ago, exact and datetime answer markers, so that the
// skeleton comes from the same template source as the page.
func parseIndexSkeletons(fsys fs.FS, l *locale, layout []byte) (indexSkeletons, error) {
	page, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		return indexSkeletons{}, fmt.Errorf("read template: %w", err)
	}
	marks := func(idle, ends indexSlot) func(time.Time) string {
		return func(t time.Time) string {
			if t.Equal(skeletonIdle) {
				return slotMarker(idle)
			}
			return slotMarker(ends)
		}
	}
	funcs := l.funcs()
	funcs["ago"] = marks(slotIdleAgo, slotEndsAgo)
	funcs["exact"] = marks(slotIdleExact, slotEndsExact)
	funcs["datetime"] = marks(slotIdleMachine, slotEndsMachine)
	p := template.New("index.html").Funcs(funcs)
	if _, err := p.New("layout.html").Parse(l.inline(string(layout))); err != nil {
		return indexSkeletons{}, fmt.Errorf("parse template layout.html for the index skeleton: %w", err)
	}
	if _, err := p.Parse(l.inline(string(page))); err != nil {
		return indexSkeletons{}, fmt.Errorf("parse template index.html for the index skeleton: %w", err)
	}
	var s indexSkeletons
	for _, idle := range []bool{true, false} {
		v := view{
			Lang: l, Account: true, User: slotMarker(slotUser),
			LangSwitch: template.HTML(slotMarker(slotLangSwitch)), //nolint:gosec // G203: a marker of letters and digits
			Page:       indexPage{EndsAt: skeletonEnds},
		}
		if idle {
			v.Page = indexPage{EndsAt: skeletonEnds, IdleEnds: skeletonIdle}
		}
		var b bytes.Buffer
		if err := p.ExecuteTemplate(&b, "layout", v); err != nil {
			return indexSkeletons{}, fmt.Errorf("render the index skeleton in %s: %w", l.code, err)
		}
		sk := splitSkeleton(b.String())
		if idle {
			s.idle = sk
		} else {
			s.noIdle = sk
		}
	}
	return s, nil
}

// splitSkeleton splits a page rendered with markers at every marker.
func splitSkeleton(page string) indexSkeleton {
	var sk indexSkeleton
	for {
		at, slot := -1, indexSlot(0)
		for i := range numSlots {
			if j := strings.Index(page, slotMarker(i)); j >= 0 && (at < 0 || j < at) {
				at, slot = j, i
			}
		}
		if at < 0 {
			sk.parts = append(sk.parts, page)
			return sk
		}
		sk.parts = append(sk.parts, page[:at])
		sk.slots = append(sk.slots, slot)
		page = page[at+len(slotMarker(slot)):]
	}
}

// htmlEscape escapes s as html/template escapes a string in element
// content and in a quoted attribute that is not a URL, script or style
// (its htmlReplacementTable: NUL, quotes, '&', '+', '<' and '>'). These
// are all ASCII, and no byte of a multi-byte UTF-8 sequence is one, so a
// byte replacer gives the same output for any string, valid UTF-8 or not.
var htmlEscape = strings.NewReplacer(
	"\x00", "\uFFFD",
	`"`, "&#34;",
	"&", "&amp;",
	"'", "&#39;",
	"+", "&#43;",
	"<", "&lt;",
	">", "&gt;",
)

// indexValues are one view's values for the skeleton's slots.
type indexValues struct {
	user       string
	langSwitch template.HTML
	page       indexPage
	now        time.Time
}

// write writes the page with v's values into b, as ExecuteTemplate of the
// layout with the same view would.
func (sk *indexSkeleton) write(b *bytes.Buffer, l *locale, v indexValues) error {
	var idleAgo, endsAgo string
	var err error
	for i, part := range sk.parts {
		b.WriteString(part)
		if i == len(sk.slots) {
			break
		}
		switch sk.slots[i] {
		case slotUser:
			_, _ = htmlEscape.WriteString(b, v.user)
		case slotLangSwitch:
			b.WriteString(string(v.langSwitch))
		case slotIdleAgo:
			if idleAgo == "" {
				if idleAgo, err = l.relative(v.page.IdleEnds, v.now); err != nil {
					return err
				}
			}
			_, _ = htmlEscape.WriteString(b, idleAgo)
		case slotEndsAgo:
			if endsAgo == "" {
				if endsAgo, err = l.relative(v.page.EndsAt, v.now); err != nil {
					return err
				}
			}
			_, _ = htmlEscape.WriteString(b, endsAgo)
		case slotIdleExact:
			_, _ = htmlEscape.WriteString(b, exactTime(v.page.IdleEnds))
		case slotEndsExact:
			_, _ = htmlEscape.WriteString(b, exactTime(v.page.EndsAt))
		case slotIdleMachine:
			_, _ = htmlEscape.WriteString(b, machineTime(v.page.IdleEnds))
		case slotEndsMachine:
			_, _ = htmlEscape.WriteString(b, machineTime(v.page.EndsAt))
		}
	}
	return nil
}

// skeletonFor is the skeleton of the logged-in index page showing p in
// l.
func (t *Templates) skeletonFor(l *locale, p indexPage) *indexSkeleton {
	s := t.indexSkeletons[l.code]
	if p.IdleEnds.IsZero() {
		return &s.noIdle
	}
	return &s.idle
}
