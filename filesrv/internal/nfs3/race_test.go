//go:build race

package nfs3

// raceEnabled reports a -race build, which keeps the big tests smaller.
const raceEnabled = true
