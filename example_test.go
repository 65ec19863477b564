package latch_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store/memstore"
)

func Example() {
	ctx := context.Background()
	m, err := latch.New(latch.Config{Store: memstore.New()}) // boltstore.Open("latch.db") to persist
	if err != nil {
		panic(err)
	}

	// After your app has checked the user's password:
	is, err := m.Create(ctx, latch.NewSession{Subject: "alice", Data: []byte(`{"theme":"dark"}`)})
	if err != nil {
		panic(err)
	}
	cookie := is.SessionToken.Reveal() // send it as an HttpOnly cookie (latchhttp does this)

	// On every request:
	s, err := m.Validate(ctx, cookie)
	if err != nil {
		panic(err)
	}
	theme, _ := s.StringValue("theme")
	fmt.Println(s.Subject(), theme)

	// Log out: the token is dead everywhere at once.
	m.Revoke(ctx, s.ID(), "logout")
	_, err = m.Validate(ctx, cookie)
	fmt.Println(errors.Is(err, latch.ErrRevoked))
	// Output:
	// alice dark
	// true
}
