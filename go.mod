module github.com/latch-sessions/latch

go 1.26
