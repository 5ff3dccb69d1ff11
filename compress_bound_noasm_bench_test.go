//go:build !(amd64 || arm64) || !gc || purego

package lava

// fmaPeakFLOPS is 0 without the assembly kernels: no FMA roofline to report.
func fmaPeakFLOPS() float64 { return 0 }
