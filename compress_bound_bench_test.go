//go:build (amd64 || arm64) && gc && !purego

package lava

import "time"

// fmaPeakFLOPS measures the FMA peak of one core (fmaPeak, the roofline of
// the score kernels), in flops per second: the best of 20 runs of about a
// millisecond each.
func fmaPeakFLOPS() float64 {
	const iters = 1 << 17
	best := time.Duration(1 << 62)
	for range 20 {
		start := time.Now()
		fmaPeak(iters)
		best = min(best, time.Since(start))
	}
	return 192 * iters / best.Seconds()
}
