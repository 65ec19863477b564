// Package amr is the text form in which stores keep store.Record.AMR: the
// values joined by single spaces. store.Validate refuses empty values and
// values with a space, so the form is reversible for every record a store
// accepts.
package amr

import "strings"

// Join is the stored form of ms; nil and empty lists are "".
func Join(ms []string) string { return strings.Join(ms, " ") }

// Split decodes [Join]: "" is nil. A form Join cannot produce (an empty
// value: a leading, trailing or doubled space) reports false.
func Split(s string) ([]string, bool) {
	if s == "" {
		return nil, true
	}
	ms := strings.Split(s, " ")
	for _, m := range ms {
		if m == "" {
			return nil, false
		}
	}
	return ms, true
}
