//go:build gc && !purego

package lava

// useAsm selects the NEON kernels of kernels_arm64.s; tests turn it off to
// run the generic ones. There is no CPU feature detection: Advanced SIMD,
// including the half-precision conversions FCVTL and FCVTN, is a mandatory
// part of ARMv8-A, so every arm64 CPU Go runs on has it.
var useAsm = true
