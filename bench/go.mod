module github.com/latch-sessions/latch/bench

go 1.26

require github.com/latch-sessions/latch v0.0.0

replace github.com/latch-sessions/latch => ../
