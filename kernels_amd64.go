//go:build gc && !purego

package lava

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2 kernels of kernels_amd64.s; tests turn it off to
// run the generic ones. HasFMA and HasF16C are raw CPUID bits and only
// HasAVX2 includes the OS check for saved YMM state, so all three are
// required.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// score1x4Q8 is score2x4Q8 for one query (4 accumulators instead of 8),
// each score the same operations as score2x4Q8's: a single query head per
// KV head, or the last of an odd group, computes no repeated row.
//
//go:noescape
func score1x4Q8(q *float32, keys *byte, out *float32, d, nk int, scale float32)

// score1x4Q4 is score1x4Q8 over Q4_0 rows.
//
//go:noescape
func score1x4Q4(q *float32, keys *byte, out *float32, d, nk int, scale float32)

// score2x4 is score3x4 for two queries (8 accumulators instead of 12),
// each score the same operations as score3x4's: a group of two or four
// queries computes no repeated row.
//
//go:noescape
func score2x4(q0, q1, keys, out *float32, d, nk, o1 int, scale float32, pf int)

// score2x4F16 is score2x4 over float16 keys (as score3x4F16).
//
//go:noescape
func score2x4F16(q0, q1 *float32, keys *uint16, out *float32, d, nk, o1 int, scale float32, pf int)

// score4x2 is score3x4 for four queries in tiles of 4 queries × 2 keys, so
// a group of four scores a block in one pass; each score is the same
// operations as score3x4's. Output row k > 0 is at out + o_k.
//
//go:noescape
func score4x2(q0, q1, q2, q3, keys, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int)

// score4x2F16 is score4x2 over float16 keys (as score3x4F16).
//
//go:noescape
func score4x2F16(q0, q1, q2, q3 *float32, keys *uint16, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int)
