//go:build gc && !purego

package lava

import "unsafe"

// useAsm selects the NEON kernels of kernels_arm64.s; tests turn it off to
// run the generic ones. There is no CPU feature detection: Advanced SIMD,
// including the half-precision conversions FCVTL and FCVTN, is a mandatory
// part of ARMv8-A, so every arm64 CPU Go runs on has it.
var useAsm = true

// score2x4 is score3x4 for two queries. NEON's 32 registers make the
// three-query tile cheap, so arm64 runs it with query 1 repeated.
func score2x4(q0, q1, keys, out *float32, d, nk, o1 int, scale float32, pf int) {
	score3x4(q0, q1, q1, keys, out, d, nk, o1, o1, scale, pf)
}

// score2x4F16 is score2x4 over float16 keys.
func score2x4F16(q0, q1 *float32, keys *uint16, out *float32, d, nk, o1 int, scale float32, pf int) {
	score3x4F16(q0, q1, q1, keys, out, d, nk, o1, o1, scale, pf)
}

// score1x4Q8 is score2x4Q8 for one query: on arm64 the two-query tile with
// the query repeated, its row written twice with equal values.
func score1x4Q8(q *float32, keys *byte, out *float32, d, nk int, scale float32) {
	score2x4Q8(q, q, keys, out, d, nk, 0, scale)
}

// score1x4Q4 is score1x4Q8 over Q4_0 rows.
func score1x4Q4(q *float32, keys *byte, out *float32, d, nk int, scale float32) {
	score2x4Q4(q, q, keys, out, d, nk, 0, scale)
}

// score4x2 is score3x4 for four queries: on arm64 the three-query tile and
// a repeated fourth.
func score4x2(q0, q1, q2, q3, keys, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int) {
	score3x4(q0, q1, q2, keys, out, d, nk, o1, o2, scale, pf)
	o := unsafe.Add(unsafe.Pointer(out), 4*o3)
	score3x4(q3, q3, q3, keys, (*float32)(o), d, nk, 0, 0, scale, 0)
}

// score4x2F16 is score4x2 over float16 keys.
func score4x2F16(q0, q1, q2, q3 *float32, keys *uint16, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int) {
	score3x4F16(q0, q1, q2, keys, out, d, nk, o1, o2, scale, pf)
	o := unsafe.Add(unsafe.Pointer(out), 4*o3)
	score3x4F16(q3, q3, q3, keys, (*float32)(o), d, nk, 0, 0, scale, 0)
}
