//go:build race

package readmetest

// raceEnabled: the test binary runs under the race detector.
const raceEnabled = true
