package latchclient

import (
	"bufio"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// parseAll reads every event and comment of stream from r.
func parseAll(r io.Reader) (evs []sseEvent, comments []string) {
	s := sseReader{r: bufio.NewReaderSize(r, 16)}
	for {
		ev, c, err := s.next()
		if err != nil {
			return evs, comments
		}
		if c != "" {
			comments = append(comments, c)
		} else {
			evs = append(evs, ev)
		}
	}
}

// encode writes evs back in canonical event-stream form.
func encode(evs []sseEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.hasID {
			b.WriteString("id: " + ev.id + "\n")
		}
		if ev.typ != "" {
			b.WriteString("event: " + ev.typ + "\n")
		}
		if ev.data != "" {
			for _, l := range strings.Split(ev.data, "\n") {
				b.WriteString("data: " + l + "\n")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestSSEReader(t *testing.T) {
	stream := ": hb 12\n" +
		"id: 7\nevent: session.revoked\ndata: {\"session_id\":\"a\"}\n\n" +
		"\n\n" + // blank lines alone dispatch nothing
		"id:8\r\ndata:x\r\ndata: y\r\n\r\n" + // CRLF, no space after the colon, two data lines
		"id: bad\x00id\nevent: keys.changed\n\n" + // an id with a NUL is ignored
		"retry: 10\nunknown\n: a comment\ndata: z\n\n" +
		"event: cut off\n" // no blank line: never dispatched
	evs, comments := parseAll(strings.NewReader(stream))
	want := []sseEvent{
		{id: "7", typ: "session.revoked", data: `{"session_id":"a"}`, hasID: true},
		{id: "8", data: "x\ny", hasID: true},
		{typ: "keys.changed"},
		{data: "z"},
	}
	if !slices.Equal(evs, want) {
		t.Fatalf("events %+v\nwant   %+v", evs, want)
	}
	if !slices.Equal(comments, []string{": hb 12", ": a comment"}) {
		t.Fatalf("comments %q", comments)
	}
}

// FuzzSSE: the event-stream parser never panics; what it reads does not
// depend on how the bytes arrive (one at a time, or all at once); and the
// events it reads, written back in canonical form, read back the same.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		": hb 3\nid: 1\nevent: session.revoked\ndata: {\"session_id\":\"s\",\"reason\":\"logout\"}\n\n",
		"id:2\r\ndata:a\r\ndata:\r\ndata: b\r\n\r\n", "data: x\n\ndata: y\n", "id: \x00\n\n", "event\n\nid\n\n:\n", "\r\r\n\n", "data:: :\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream string) {
		evs, comments := parseAll(strings.NewReader(stream))
		evs1, comments1 := parseAll(iotest.OneByteReader(strings.NewReader(stream)))
		if !slices.Equal(evs, evs1) || !slices.Equal(comments, comments1) {
			t.Fatalf("the parse depends on read boundaries: %q", stream)
		}
		for _, ev := range evs {
			if strings.ContainsAny(ev.id, "\x00\n") || strings.Contains(ev.typ, "\n") || ev.data == "" && ev.typ == "" {
				t.Fatalf("event %+v from %q", ev, stream)
			}
		}
		for _, c := range comments {
			if c[0] != ':' || strings.ContainsAny(c, "\n") {
				t.Fatalf("comment %q", c)
			}
		}
		if again, _ := parseAll(strings.NewReader(encode(evs))); !slices.Equal(again, evs) {
			t.Fatalf("events %+v re-encoded read back as %+v", evs, again)
		}
	})
}
