//go:build gc && !purego

#include "textflag.h"

// NEON kernels for arm64. The Go wrappers in kernels_arm64.go validate the
// pointers and counts and bound the work of each call.
//
// The Go assembler has no mnemonics for the vector floating-point
// arithmetic (FADD, FADDP, FMUL, FMAX, FMIN, FSUB, FCMGT), the conversions
// (FCVTL, FCVTL2, FCVTN, FCVTN2, FCVTNS, SCVTF) or SSHR, so those are WORD
// encodings with the instruction in GNU syntax beside them; they were
// produced with aarch64-linux-gnu-as and are checked against the generic
// kernels under qemu by the tests.
//
// Registers: R0–R17, R19–R25 and V0–V31 only (R18 is the platform register,
// R26–R30 are reserved by Go). Tails of fewer than one block use the TBZ bit ladder
// of crypto/subtle's xor_arm64.s; a 2- or 1-element tail is loaded with
// FMOVD/FMOVS, which zero the rest of the vector register, so reductions may
// add the whole vector.

// func dotScaleNEON(q, keys *float32, d, nk int, scale float32, out *float32)
TEXT ·dotScaleNEON(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	q+0(FP), R0
	MOVD	keys+8(FP), R1
	MOVD	d+16(FP), R2
	MOVD	nk+24(FP), R3
	FMOVS	scale+32(FP), F31
	MOVD	out+40(FP), R4

dotKey:
	// One key row per iteration: R1 walks the keys, R5 the query.
	MOVD	R0, R5
	VEOR	V0.B16, V0.B16, V0.B16
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	LSR	$4, R2, R6
	CBZ	R6, dot8

dot16:
	VLD1.P	64(R5), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P	64(R1), [V16.S4, V17.S4, V18.S4, V19.S4]
	VFMLA	V4.S4, V16.S4, V0.S4
	VFMLA	V5.S4, V17.S4, V1.S4
	VFMLA	V6.S4, V18.S4, V2.S4
	VFMLA	V7.S4, V19.S4, V3.S4
	SUBS	$1, R6
	BNE	dot16

dot8:
	TBZ	$3, R2, dot4
	VLD1.P	32(R5), [V4.S4, V5.S4]
	VLD1.P	32(R1), [V16.S4, V17.S4]
	VFMLA	V4.S4, V16.S4, V0.S4
	VFMLA	V5.S4, V17.S4, V1.S4

dot4:
	TBZ	$2, R2, dot2
	VLD1.P	16(R5), [V4.S4]
	VLD1.P	16(R1), [V16.S4]
	VFMLA	V4.S4, V16.S4, V2.S4

dot2:
	TBZ	$1, R2, dot1
	FMOVD.P	8(R5), F4
	FMOVD.P	8(R1), F16
	VFMLA	V4.S4, V16.S4, V3.S4

dot1:
	TBZ	$0, R2, dotSum
	FMOVS.P	4(R5), F4
	FMOVS.P	4(R1), F16
	VFMLA	V4.S4, V16.S4, V0.S4

dotSum:
	WORD	$0x4e21d400 // fadd v0.4s, v0.4s, v1.4s
	WORD	$0x4e23d442 // fadd v2.4s, v2.4s, v3.4s
	WORD	$0x4e22d400 // fadd v0.4s, v0.4s, v2.4s
	WORD	$0x6e20d400 // faddp v0.4s, v0.4s, v0.4s
	WORD	$0x7e30d800 // faddp s0, v0.2s
	FMULS	F31, F0, F0
	FMOVS.P	F0, 4(R4)
	SUBS	$1, R3
	BNE	dotKey
	RET

// func dotScaleF16NEON(q *float32, keys *uint16, d, nk int, scale float32, out *float32)
TEXT ·dotScaleF16NEON(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	q+0(FP), R0
	MOVD	keys+8(FP), R1
	MOVD	d+16(FP), R2
	MOVD	nk+24(FP), R3
	FMOVS	scale+32(FP), F31
	MOVD	out+40(FP), R4

hdotKey:
	MOVD	R0, R5
	VEOR	V0.B16, V0.B16, V0.B16
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	LSR	$4, R2, R6
	CBZ	R6, hdot8

hdot16:
	VLD1.P	64(R5), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P	32(R1), [V16.B16, V17.B16]
	WORD	$0x0e217a14 // fcvtl v20.4s, v16.4h
	WORD	$0x4e217a15 // fcvtl2 v21.4s, v16.8h
	WORD	$0x0e217a36 // fcvtl v22.4s, v17.4h
	WORD	$0x4e217a37 // fcvtl2 v23.4s, v17.8h
	VFMLA	V4.S4, V20.S4, V0.S4
	VFMLA	V5.S4, V21.S4, V1.S4
	VFMLA	V6.S4, V22.S4, V2.S4
	VFMLA	V7.S4, V23.S4, V3.S4
	SUBS	$1, R6
	BNE	hdot16

hdot8:
	TBZ	$3, R2, hdot4
	VLD1.P	32(R5), [V4.S4, V5.S4]
	VLD1.P	16(R1), [V16.B16]
	WORD	$0x0e217a14 // fcvtl v20.4s, v16.4h
	WORD	$0x4e217a15 // fcvtl2 v21.4s, v16.8h
	VFMLA	V4.S4, V20.S4, V0.S4
	VFMLA	V5.S4, V21.S4, V1.S4

hdot4:
	TBZ	$2, R2, hdot2
	VLD1.P	16(R5), [V4.S4]
	FMOVD.P	8(R1), F16
	WORD	$0x0e217a14 // fcvtl v20.4s, v16.4h
	VFMLA	V4.S4, V20.S4, V2.S4

hdot2:
	TBZ	$1, R2, hdot1
	FMOVD.P	8(R5), F4
	FMOVS.P	4(R1), F16
	WORD	$0x0e217a14 // fcvtl v20.4s, v16.4h
	VFMLA	V4.S4, V20.S4, V3.S4

hdot1:
	TBZ	$0, R2, hdotSum
	FMOVS.P	4(R5), F4
	MOVHU.P	2(R1), R7
	FMOVS	R7, F16
	WORD	$0x0e217a14 // fcvtl v20.4s, v16.4h
	VFMLA	V4.S4, V20.S4, V0.S4

hdotSum:
	WORD	$0x4e21d400 // fadd v0.4s, v0.4s, v1.4s
	WORD	$0x4e23d442 // fadd v2.4s, v2.4s, v3.4s
	WORD	$0x4e22d400 // fadd v0.4s, v0.4s, v2.4s
	WORD	$0x6e20d400 // faddp v0.4s, v0.4s, v0.4s
	WORD	$0x7e30d800 // faddp s0, v0.2s
	FMULS	F31, F0, F0
	FMOVS.P	F0, 4(R4)
	SUBS	$1, R3
	BNE	hdotKey
	RET

// func maxNEON(x *float32, n int) float32
//
// Each lane keeps m = x if x > m else m, the generic rule, so NaNs (quiet or
// signalling) are skipped and the lanes never hold a NaN; the lanes are then
// combined with FMAX. Only the sign of a zero maximum may differ from the
// generic kernel, which keeps the first of −0 and +0.
TEXT ·maxNEON(SB), NOSPLIT|NOFRAME, $0-20
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	MOVW	$0xff800000, R2 // −Inf
	VDUP	R2, V0.S4
	VMOV	V0.B16, V1.B16
	VMOV	V0.B16, V2.B16
	VMOV	V0.B16, V3.B16
	LSR	$4, R1, R3
	CBZ	R3, max8

max16:
	VLD1.P	64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD	$0x6ea0e490 // fcmgt v16.4s, v4.4s, v0.4s
	WORD	$0x6ea1e4b1 // fcmgt v17.4s, v5.4s, v1.4s
	WORD	$0x6ea2e4d2 // fcmgt v18.4s, v6.4s, v2.4s
	WORD	$0x6ea3e4f3 // fcmgt v19.4s, v7.4s, v3.4s
	VBIT	V16.B16, V4.B16, V0.B16
	VBIT	V17.B16, V5.B16, V1.B16
	VBIT	V18.B16, V6.B16, V2.B16
	VBIT	V19.B16, V7.B16, V3.B16
	SUBS	$1, R3
	BNE	max16

max8:
	TBZ	$3, R1, max4
	VLD1.P	32(R0), [V4.S4, V5.S4]
	WORD	$0x6ea0e490 // fcmgt v16.4s, v4.4s, v0.4s
	WORD	$0x6ea1e4b1 // fcmgt v17.4s, v5.4s, v1.4s
	VBIT	V16.B16, V4.B16, V0.B16
	VBIT	V17.B16, V5.B16, V1.B16

max4:
	TBZ	$2, R1, maxReduce
	VLD1.P	16(R0), [V4.S4]
	WORD	$0x6ea2e490 // fcmgt v16.4s, v4.4s, v2.4s
	VBIT	V16.B16, V4.B16, V2.B16

maxReduce:
	WORD	$0x4e21f400 // fmax v0.4s, v0.4s, v1.4s
	WORD	$0x4e23f442 // fmax v2.4s, v2.4s, v3.4s
	WORD	$0x4e22f400 // fmax v0.4s, v0.4s, v2.4s
	WORD	$0x6e30f800 // fmaxv s0, v0.4s

	// The last 0–3 elements one at a time: F0 = F1 if F1 > F0, which is
	// false for a NaN F1.
	TBZ	$1, R1, max1
	FMOVS.P	4(R0), F1
	FCMPS	F0, F1
	FCSELS	GT, F1, F0, F0
	FMOVS.P	4(R0), F1
	FCMPS	F0, F1
	FCSELS	GT, F1, F0, F0

max1:
	TBZ	$0, R1, maxDone
	FMOVS	(R0), F1
	FCMPS	F0, F1
	FCSELS	GT, F1, F0, F0

maxDone:
	FMOVS	F0, ret+16(FP)
	RET

// func expSubNEON(x *float32, n int, m float32) float32
//
// exp(r) = 2ⁿ·eʳ with n = round(r/ln2) and |r| ≤ ln2/2, eʳ from the Cephes
// expf polynomial: within 2 ulp of the correctly rounded result, exactly 1 at
// r = 0, 0 for r below −103.98, +Inf above 88.73, NaN for NaN.
TEXT ·expSubNEON(SB), NOSPLIT|NOFRAME, $0-28
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	FMOVS	m+16(FP), F16
	VDUP	V16.S[0], V16.S4
	MOVW	$0xc2dc0000, R2 // −110
	VDUP	R2, V17.S4
	MOVW	$0x42b20000, R2 // 89
	VDUP	R2, V18.S4
	MOVW	$0x3fb8aa3b, R2 // log2(e)
	VDUP	R2, V19.S4
	MOVW	$0x3f317218, R2 // ln2 rounded to float32
	VDUP	R2, V20.S4
	MOVW	$0xb102e308, R2 // ln2 − the above
	VDUP	R2, V21.S4
	MOVW	$0x39506967, R2 // p5 = 1.9875691500e-4
	VDUP	R2, V22.S4
	MOVW	$0x3ab743ce, R2 // p4 = 1.3981999507e-3
	VDUP	R2, V23.S4
	MOVW	$0x3c088908, R2 // p3 = 8.3334519073e-3
	VDUP	R2, V24.S4
	MOVW	$0x3d2aa9c1, R2 // p2 = 4.1665795894e-2
	VDUP	R2, V25.S4
	MOVW	$0x3e2aaaaa, R2 // p1 = 1.6666665459e-1
	VDUP	R2, V26.S4
	MOVW	$0x3f000000, R2 // p0 = 0.5
	VDUP	R2, V27.S4
	MOVW	$0x3f800000, R2 // 1
	VDUP	R2, V28.S4
	MOVW	$127, R2 // float32 exponent bias
	VDUP	R2, V29.S4
	VEOR	V30.B16, V30.B16, V30.B16
	VEOR	V31.B16, V31.B16, V31.B16
	LSR	$3, R1, R3
	CBZ	R3, exp4

exp8:
	VLD1	(R0), [V0.S4, V1.S4]
	// r = clamp(x − m, −110, 89): below −110 exp rounds to 0 and the clamp
	// keeps 2ⁿ representable; above 89 it overflows to +Inf as it should.
	// FMAX/FMIN (not the NM forms) propagate NaN.
	WORD	$0x4eb0d400 // fsub v0.4s, v0.4s, v16.4s
	WORD	$0x4eb0d421 // fsub v1.4s, v1.4s, v16.4s
	WORD	$0x4e31f400 // fmax v0.4s, v0.4s, v17.4s
	WORD	$0x4e31f421 // fmax v1.4s, v1.4s, v17.4s
	WORD	$0x4eb2f400 // fmin v0.4s, v0.4s, v18.4s
	WORD	$0x4eb2f421 // fmin v1.4s, v1.4s, v18.4s
	// n = round(r·log2e), r −= n·ln2 in two parts (Cody–Waite, fused).
	WORD	$0x6e33dc02 // fmul v2.4s, v0.4s, v19.4s
	WORD	$0x6e33dc23 // fmul v3.4s, v1.4s, v19.4s
	WORD	$0x4e21a846 // fcvtns v6.4s, v2.4s
	WORD	$0x4e21a867 // fcvtns v7.4s, v3.4s
	WORD	$0x4e21d8c2 // scvtf v2.4s, v6.4s
	WORD	$0x4e21d8e3 // scvtf v3.4s, v7.4s
	VFMLS	V2.S4, V20.S4, V0.S4
	VFMLS	V3.S4, V20.S4, V1.S4
	VFMLS	V2.S4, V21.S4, V0.S4
	VFMLS	V3.S4, V21.S4, V1.S4
	// P(r) = p0 + p1·r + … + p5·r⁵ by Horner (Cephes expf coefficients).
	VMOV	V23.B16, V4.B16
	VMOV	V23.B16, V5.B16
	VFMLA	V22.S4, V0.S4, V4.S4
	VFMLA	V22.S4, V1.S4, V5.S4
	VMOV	V24.B16, V2.B16
	VMOV	V24.B16, V3.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VFMLA	V5.S4, V1.S4, V3.S4
	VMOV	V25.B16, V4.B16
	VMOV	V25.B16, V5.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	VFMLA	V3.S4, V1.S4, V5.S4
	VMOV	V26.B16, V2.B16
	VMOV	V26.B16, V3.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VFMLA	V5.S4, V1.S4, V3.S4
	VMOV	V27.B16, V4.B16
	VMOV	V27.B16, V5.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	VFMLA	V3.S4, V1.S4, V5.S4
	// eʳ ≈ 1 + (r + r²·P(r)): exactly 1 when r = 0.
	WORD	$0x6e20dc02 // fmul v2.4s, v0.4s, v0.4s
	WORD	$0x6e21dc23 // fmul v3.4s, v1.4s, v1.4s
	VFMLA	V4.S4, V2.S4, V0.S4
	VFMLA	V5.S4, V3.S4, V1.S4
	WORD	$0x4e3cd400 // fadd v0.4s, v0.4s, v28.4s
	WORD	$0x4e3cd421 // fadd v1.4s, v1.4s, v28.4s
	// Scale by 2ⁿ = 2^(n>>1)·2^(n−n>>1): each factor is a normal float for
	// n in [−159, 128], and only the last product rounds (to a subnormal).
	WORD	$0x4f3f04c8 // sshr v8.4s, v6.4s, #1
	WORD	$0x4f3f04e9 // sshr v9.4s, v7.4s, #1
	VSUB	V8.S4, V6.S4, V6.S4
	VSUB	V9.S4, V7.S4, V7.S4
	VADD	V29.S4, V8.S4, V8.S4
	VADD	V29.S4, V9.S4, V9.S4
	VSHL	$23, V8.S4, V8.S4
	VSHL	$23, V9.S4, V9.S4
	VADD	V29.S4, V6.S4, V6.S4
	VADD	V29.S4, V7.S4, V7.S4
	VSHL	$23, V6.S4, V6.S4
	VSHL	$23, V7.S4, V7.S4
	WORD	$0x6e28dc00 // fmul v0.4s, v0.4s, v8.4s
	WORD	$0x6e29dc21 // fmul v1.4s, v1.4s, v9.4s
	WORD	$0x6e26dc00 // fmul v0.4s, v0.4s, v6.4s
	WORD	$0x6e27dc21 // fmul v1.4s, v1.4s, v7.4s
	VST1.P	[V0.S4, V1.S4], 32(R0)
	WORD	$0x4e20d7de // fadd v30.4s, v30.4s, v0.4s
	WORD	$0x4e21d7ff // fadd v31.4s, v31.4s, v1.4s
	SUBS	$1, R3
	BNE	exp8

exp4:
	TBZ	$2, R1, exp2
	VLD1	(R0), [V0.S4]
	// V0 = exp(V0 − m), the sequence of the loop above on one vector.
	WORD	$0x4eb0d400 // fsub v0.4s, v0.4s, v16.4s
	WORD	$0x4e31f400 // fmax v0.4s, v0.4s, v17.4s
	WORD	$0x4eb2f400 // fmin v0.4s, v0.4s, v18.4s
	WORD	$0x6e33dc02 // fmul v2.4s, v0.4s, v19.4s
	WORD	$0x4e21a846 // fcvtns v6.4s, v2.4s
	WORD	$0x4e21d8c2 // scvtf v2.4s, v6.4s
	VFMLS	V2.S4, V20.S4, V0.S4
	VFMLS	V2.S4, V21.S4, V0.S4
	VMOV	V23.B16, V4.B16
	VFMLA	V22.S4, V0.S4, V4.S4
	VMOV	V24.B16, V2.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VMOV	V25.B16, V4.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	VMOV	V26.B16, V2.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VMOV	V27.B16, V4.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	WORD	$0x6e20dc02 // fmul v2.4s, v0.4s, v0.4s
	VFMLA	V4.S4, V2.S4, V0.S4
	WORD	$0x4e3cd400 // fadd v0.4s, v0.4s, v28.4s
	WORD	$0x4f3f04c8 // sshr v8.4s, v6.4s, #1
	VSUB	V8.S4, V6.S4, V6.S4
	VADD	V29.S4, V8.S4, V8.S4
	VSHL	$23, V8.S4, V8.S4
	VADD	V29.S4, V6.S4, V6.S4
	VSHL	$23, V6.S4, V6.S4
	WORD	$0x6e28dc00 // fmul v0.4s, v0.4s, v8.4s
	WORD	$0x6e26dc00 // fmul v0.4s, v0.4s, v6.4s
	VST1.P	[V0.S4], 16(R0)
	WORD	$0x4e20d7de // fadd v30.4s, v30.4s, v0.4s

exp2:
	TBZ	$1, R1, exp1
	FMOVD	(R0), F0
	// V0 = exp(V0 − m), the sequence of the loop above on one vector.
	WORD	$0x4eb0d400 // fsub v0.4s, v0.4s, v16.4s
	WORD	$0x4e31f400 // fmax v0.4s, v0.4s, v17.4s
	WORD	$0x4eb2f400 // fmin v0.4s, v0.4s, v18.4s
	WORD	$0x6e33dc02 // fmul v2.4s, v0.4s, v19.4s
	WORD	$0x4e21a846 // fcvtns v6.4s, v2.4s
	WORD	$0x4e21d8c2 // scvtf v2.4s, v6.4s
	VFMLS	V2.S4, V20.S4, V0.S4
	VFMLS	V2.S4, V21.S4, V0.S4
	VMOV	V23.B16, V4.B16
	VFMLA	V22.S4, V0.S4, V4.S4
	VMOV	V24.B16, V2.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VMOV	V25.B16, V4.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	VMOV	V26.B16, V2.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VMOV	V27.B16, V4.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	WORD	$0x6e20dc02 // fmul v2.4s, v0.4s, v0.4s
	VFMLA	V4.S4, V2.S4, V0.S4
	WORD	$0x4e3cd400 // fadd v0.4s, v0.4s, v28.4s
	WORD	$0x4f3f04c8 // sshr v8.4s, v6.4s, #1
	VSUB	V8.S4, V6.S4, V6.S4
	VADD	V29.S4, V8.S4, V8.S4
	VSHL	$23, V8.S4, V8.S4
	VADD	V29.S4, V6.S4, V6.S4
	VSHL	$23, V6.S4, V6.S4
	WORD	$0x6e28dc00 // fmul v0.4s, v0.4s, v8.4s
	WORD	$0x6e26dc00 // fmul v0.4s, v0.4s, v6.4s
	FMOVD.P	F0, 8(R0)
	FMOVD	F0, F10 // lanes 2 and 3 hold exp(−m): zero them before summing
	WORD	$0x4e2ad7de // fadd v30.4s, v30.4s, v10.4s

exp1:
	TBZ	$0, R1, expSum
	FMOVS	(R0), F0
	// V0 = exp(V0 − m), the sequence of the loop above on one vector.
	WORD	$0x4eb0d400 // fsub v0.4s, v0.4s, v16.4s
	WORD	$0x4e31f400 // fmax v0.4s, v0.4s, v17.4s
	WORD	$0x4eb2f400 // fmin v0.4s, v0.4s, v18.4s
	WORD	$0x6e33dc02 // fmul v2.4s, v0.4s, v19.4s
	WORD	$0x4e21a846 // fcvtns v6.4s, v2.4s
	WORD	$0x4e21d8c2 // scvtf v2.4s, v6.4s
	VFMLS	V2.S4, V20.S4, V0.S4
	VFMLS	V2.S4, V21.S4, V0.S4
	VMOV	V23.B16, V4.B16
	VFMLA	V22.S4, V0.S4, V4.S4
	VMOV	V24.B16, V2.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VMOV	V25.B16, V4.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	VMOV	V26.B16, V2.B16
	VFMLA	V4.S4, V0.S4, V2.S4
	VMOV	V27.B16, V4.B16
	VFMLA	V2.S4, V0.S4, V4.S4
	WORD	$0x6e20dc02 // fmul v2.4s, v0.4s, v0.4s
	VFMLA	V4.S4, V2.S4, V0.S4
	WORD	$0x4e3cd400 // fadd v0.4s, v0.4s, v28.4s
	WORD	$0x4f3f04c8 // sshr v8.4s, v6.4s, #1
	VSUB	V8.S4, V6.S4, V6.S4
	VADD	V29.S4, V8.S4, V8.S4
	VSHL	$23, V8.S4, V8.S4
	VADD	V29.S4, V6.S4, V6.S4
	VSHL	$23, V6.S4, V6.S4
	WORD	$0x6e28dc00 // fmul v0.4s, v0.4s, v8.4s
	WORD	$0x6e26dc00 // fmul v0.4s, v0.4s, v6.4s
	FMOVS	F0, (R0)
	FMOVS	F0, F10 // lanes 1 to 3 hold exp(−m)
	WORD	$0x4e2ad7de // fadd v30.4s, v30.4s, v10.4s

expSum:
	WORD	$0x4e3fd7de // fadd v30.4s, v30.4s, v31.4s
	WORD	$0x6e3ed7de // faddp v30.4s, v30.4s, v30.4s
	WORD	$0x7e30dbc0 // faddp s0, v30.2s
	FMOVS	F0, ret+24(FP)
	RET

// func axpyNEON(a float32, x, y *float32, n int)
TEXT ·axpyNEON(SB), NOSPLIT|NOFRAME, $0-32
	FMOVS	a+0(FP), F16
	VDUP	V16.S[0], V16.S4
	MOVD	x+8(FP), R0
	MOVD	y+16(FP), R1
	MOVD	n+24(FP), R2
	LSR	$4, R2, R3
	CBZ	R3, axpy8

axpy16:
	VLD1.P	64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA	V0.S4, V16.S4, V4.S4
	VFMLA	V1.S4, V16.S4, V5.S4
	VFMLA	V2.S4, V16.S4, V6.S4
	VFMLA	V3.S4, V16.S4, V7.S4
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R1)
	SUBS	$1, R3
	BNE	axpy16

axpy8:
	TBZ	$3, R2, axpy4
	VLD1.P	32(R0), [V0.S4, V1.S4]
	VLD1	(R1), [V4.S4, V5.S4]
	VFMLA	V0.S4, V16.S4, V4.S4
	VFMLA	V1.S4, V16.S4, V5.S4
	VST1.P	[V4.S4, V5.S4], 32(R1)

axpy4:
	TBZ	$2, R2, axpy2
	VLD1.P	16(R0), [V0.S4]
	VLD1	(R1), [V4.S4]
	VFMLA	V0.S4, V16.S4, V4.S4
	VST1.P	[V4.S4], 16(R1)

axpy2:
	TBZ	$1, R2, axpy1
	FMOVD.P	8(R0), F0
	FMOVD	(R1), F4
	VFMLA	V0.S4, V16.S4, V4.S4
	FMOVD.P	F4, 8(R1)

axpy1:
	TBZ	$0, R2, axpyDone
	FMOVS	(R0), F0
	FMOVS	(R1), F4
	VFMLA	V0.S4, V16.S4, V4.S4
	FMOVS	F4, (R1)

axpyDone:
	RET

// func wsumAccNEON(p *float32, n int, vals *float32, d int, out *float32)
//
// Column blocks of out stay in registers while the rows stream past, each row
// adding p[i]·row_i in the order of p, like the generic kernel.
TEXT ·wsumAccNEON(SB), NOSPLIT|NOFRAME, $0-40
	MOVD	p+0(FP), R0
	MOVD	n+8(FP), R1
	MOVD	vals+16(FP), R2
	MOVD	d+24(FP), R3
	MOVD	out+32(FP), R4
	LSL	$2, R3, R5 // row stride in bytes
	LSR	$4, R3, R6
	CBZ	R6, ws8

ws16:
	VLD1	(R4), [V0.S4, V1.S4, V2.S4, V3.S4]
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

ws16Row:
	VLD1R.P	4(R7), [V16.S4]
	VLD1	(R8), [V4.S4, V5.S4, V6.S4, V7.S4]
	ADD	R5, R8
	VFMLA	V4.S4, V16.S4, V0.S4
	VFMLA	V5.S4, V16.S4, V1.S4
	VFMLA	V6.S4, V16.S4, V2.S4
	VFMLA	V7.S4, V16.S4, V3.S4
	SUBS	$1, R9
	BNE	ws16Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R4)
	ADD	$64, R2
	SUBS	$1, R6
	BNE	ws16

ws8:
	TBZ	$3, R3, ws4
	VLD1	(R4), [V0.S4, V1.S4]
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

ws8Row:
	VLD1R.P	4(R7), [V16.S4]
	VLD1	(R8), [V4.S4, V5.S4]
	ADD	R5, R8
	VFMLA	V4.S4, V16.S4, V0.S4
	VFMLA	V5.S4, V16.S4, V1.S4
	SUBS	$1, R9
	BNE	ws8Row
	VST1.P	[V0.S4, V1.S4], 32(R4)
	ADD	$32, R2

ws4:
	TBZ	$2, R3, ws2
	VLD1	(R4), [V0.S4]
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

ws4Row:
	VLD1R.P	4(R7), [V16.S4]
	VLD1	(R8), [V4.S4]
	ADD	R5, R8
	VFMLA	V4.S4, V16.S4, V0.S4
	SUBS	$1, R9
	BNE	ws4Row
	VST1.P	[V0.S4], 16(R4)
	ADD	$16, R2

ws2:
	// Two and one columns use the low lanes only and store only those.
	TBZ	$1, R3, ws1
	FMOVD	(R4), F0
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

ws2Row:
	VLD1R.P	4(R7), [V16.S4]
	FMOVD	(R8), F4
	ADD	R5, R8
	VFMLA	V4.S4, V16.S4, V0.S4
	SUBS	$1, R9
	BNE	ws2Row
	FMOVD.P	F0, 8(R4)
	ADD	$8, R2

ws1:
	TBZ	$0, R3, wsDone
	FMOVS	(R4), F0
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

ws1Row:
	VLD1R.P	4(R7), [V16.S4]
	FMOVS	(R8), F4
	ADD	R5, R8
	VFMLA	V4.S4, V16.S4, V0.S4
	SUBS	$1, R9
	BNE	ws1Row
	FMOVS	F0, (R4)

wsDone:
	RET

// func wsumAccF16NEON(p *float32, n int, vals *uint16, d int, out *float32)
TEXT ·wsumAccF16NEON(SB), NOSPLIT|NOFRAME, $0-40
	MOVD	p+0(FP), R0
	MOVD	n+8(FP), R1
	MOVD	vals+16(FP), R2
	MOVD	d+24(FP), R3
	MOVD	out+32(FP), R4
	LSL	$1, R3, R5 // row stride in bytes
	LSR	$4, R3, R6
	CBZ	R6, hws8

hws16:
	VLD1	(R4), [V0.S4, V1.S4, V2.S4, V3.S4]
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

hws16Row:
	VLD1R.P	4(R7), [V16.S4]
	VLD1	(R8), [V20.B16, V21.B16]
	ADD	R5, R8
	WORD	$0x0e217a84 // fcvtl v4.4s, v20.4h
	WORD	$0x4e217a85 // fcvtl2 v5.4s, v20.8h
	WORD	$0x0e217aa6 // fcvtl v6.4s, v21.4h
	WORD	$0x4e217aa7 // fcvtl2 v7.4s, v21.8h
	VFMLA	V4.S4, V16.S4, V0.S4
	VFMLA	V5.S4, V16.S4, V1.S4
	VFMLA	V6.S4, V16.S4, V2.S4
	VFMLA	V7.S4, V16.S4, V3.S4
	SUBS	$1, R9
	BNE	hws16Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R4)
	ADD	$32, R2
	SUBS	$1, R6
	BNE	hws16

hws8:
	TBZ	$3, R3, hws4
	VLD1	(R4), [V0.S4, V1.S4]
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

hws8Row:
	VLD1R.P	4(R7), [V16.S4]
	VLD1	(R8), [V20.B16]
	ADD	R5, R8
	WORD	$0x0e217a84 // fcvtl v4.4s, v20.4h
	WORD	$0x4e217a85 // fcvtl2 v5.4s, v20.8h
	VFMLA	V4.S4, V16.S4, V0.S4
	VFMLA	V5.S4, V16.S4, V1.S4
	SUBS	$1, R9
	BNE	hws8Row
	VST1.P	[V0.S4, V1.S4], 32(R4)
	ADD	$16, R2

hws4:
	TBZ	$2, R3, hws2
	VLD1	(R4), [V0.S4]
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

hws4Row:
	VLD1R.P	4(R7), [V16.S4]
	FMOVD	(R8), F20
	ADD	R5, R8
	WORD	$0x0e217a84 // fcvtl v4.4s, v20.4h
	VFMLA	V4.S4, V16.S4, V0.S4
	SUBS	$1, R9
	BNE	hws4Row
	VST1.P	[V0.S4], 16(R4)
	ADD	$8, R2

hws2:
	TBZ	$1, R3, hws1
	FMOVD	(R4), F0
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

hws2Row:
	VLD1R.P	4(R7), [V16.S4]
	FMOVS	(R8), F20
	ADD	R5, R8
	WORD	$0x0e217a84 // fcvtl v4.4s, v20.4h
	VFMLA	V4.S4, V16.S4, V0.S4
	SUBS	$1, R9
	BNE	hws2Row
	FMOVD.P	F0, 8(R4)
	ADD	$4, R2

hws1:
	TBZ	$0, R3, hwsDone
	FMOVS	(R4), F0
	MOVD	R0, R7
	MOVD	R2, R8
	MOVD	R1, R9

hws1Row:
	VLD1R.P	4(R7), [V16.S4]
	MOVHU	(R8), R10
	FMOVS	R10, F20
	ADD	R5, R8
	WORD	$0x0e217a84 // fcvtl v4.4s, v20.4h
	VFMLA	V4.S4, V16.S4, V0.S4
	SUBS	$1, R9
	BNE	hws1Row
	FMOVS	F0, (R4)

hwsDone:
	RET

// func l1NormNEON(x *float32, n int) float32
//
// |x| clears the sign bit (VAND), which is what math.Abs does.
TEXT ·l1NormNEON(SB), NOSPLIT|NOFRAME, $0-20
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	MOVW	$0x7fffffff, R2
	VDUP	R2, V31.S4
	VEOR	V0.B16, V0.B16, V0.B16
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	LSR	$4, R1, R3
	CBZ	R3, l18

l116:
	VLD1.P	64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	VAND	V31.B16, V4.B16, V4.B16
	VAND	V31.B16, V5.B16, V5.B16
	VAND	V31.B16, V6.B16, V6.B16
	VAND	V31.B16, V7.B16, V7.B16
	WORD	$0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	WORD	$0x4e25d421 // fadd v1.4s, v1.4s, v5.4s
	WORD	$0x4e26d442 // fadd v2.4s, v2.4s, v6.4s
	WORD	$0x4e27d463 // fadd v3.4s, v3.4s, v7.4s
	SUBS	$1, R3
	BNE	l116

l18:
	TBZ	$3, R1, l14
	VLD1.P	32(R0), [V4.S4, V5.S4]
	VAND	V31.B16, V4.B16, V4.B16
	VAND	V31.B16, V5.B16, V5.B16
	WORD	$0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	WORD	$0x4e25d421 // fadd v1.4s, v1.4s, v5.4s

l14:
	TBZ	$2, R1, l12
	VLD1.P	16(R0), [V4.S4]
	VAND	V31.B16, V4.B16, V4.B16
	WORD	$0x4e24d442 // fadd v2.4s, v2.4s, v4.4s

l12:
	TBZ	$1, R1, l11
	FMOVD.P	8(R0), F4
	VAND	V31.B16, V4.B16, V4.B16
	WORD	$0x4e24d463 // fadd v3.4s, v3.4s, v4.4s

l11:
	TBZ	$0, R1, l1Sum
	FMOVS	(R0), F4
	VAND	V31.B16, V4.B16, V4.B16
	WORD	$0x4e24d400 // fadd v0.4s, v0.4s, v4.4s

l1Sum:
	WORD	$0x4e21d400 // fadd v0.4s, v0.4s, v1.4s
	WORD	$0x4e23d442 // fadd v2.4s, v2.4s, v3.4s
	WORD	$0x4e22d400 // fadd v0.4s, v0.4s, v2.4s
	WORD	$0x6e20d400 // faddp v0.4s, v0.4s, v0.4s
	WORD	$0x7e30d800 // faddp s0, v0.2s
	FMOVS	F0, ret+16(FP)
	RET

// func l1NormF16NEON(x *uint16, n int) float32
//
// The sign bits are cleared on the float16 patterns, before widening.
TEXT ·l1NormF16NEON(SB), NOSPLIT|NOFRAME, $0-20
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	MOVW	$0x7fff7fff, R2
	VDUP	R2, V31.S4
	VEOR	V0.B16, V0.B16, V0.B16
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	LSR	$4, R1, R3
	CBZ	R3, hl18

hl116:
	VLD1.P	32(R0), [V16.B16, V17.B16]
	VAND	V31.B16, V16.B16, V16.B16
	VAND	V31.B16, V17.B16, V17.B16
	WORD	$0x0e217a04 // fcvtl v4.4s, v16.4h
	WORD	$0x4e217a05 // fcvtl2 v5.4s, v16.8h
	WORD	$0x0e217a26 // fcvtl v6.4s, v17.4h
	WORD	$0x4e217a27 // fcvtl2 v7.4s, v17.8h
	WORD	$0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	WORD	$0x4e25d421 // fadd v1.4s, v1.4s, v5.4s
	WORD	$0x4e26d442 // fadd v2.4s, v2.4s, v6.4s
	WORD	$0x4e27d463 // fadd v3.4s, v3.4s, v7.4s
	SUBS	$1, R3
	BNE	hl116

hl18:
	TBZ	$3, R1, hl14
	VLD1.P	16(R0), [V16.B16]
	VAND	V31.B16, V16.B16, V16.B16
	WORD	$0x0e217a04 // fcvtl v4.4s, v16.4h
	WORD	$0x4e217a05 // fcvtl2 v5.4s, v16.8h
	WORD	$0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	WORD	$0x4e25d421 // fadd v1.4s, v1.4s, v5.4s

hl14:
	TBZ	$2, R1, hl12
	FMOVD.P	8(R0), F16
	VAND	V31.B16, V16.B16, V16.B16
	WORD	$0x0e217a04 // fcvtl v4.4s, v16.4h
	WORD	$0x4e24d442 // fadd v2.4s, v2.4s, v4.4s

hl12:
	TBZ	$1, R1, hl11
	FMOVS.P	4(R0), F16
	VAND	V31.B16, V16.B16, V16.B16
	WORD	$0x0e217a04 // fcvtl v4.4s, v16.4h
	WORD	$0x4e24d463 // fadd v3.4s, v3.4s, v4.4s

hl11:
	TBZ	$0, R1, hl1Sum
	MOVHU	(R0), R2
	FMOVS	R2, F16
	VAND	V31.B16, V16.B16, V16.B16
	WORD	$0x0e217a04 // fcvtl v4.4s, v16.4h
	WORD	$0x4e24d400 // fadd v0.4s, v0.4s, v4.4s

hl1Sum:
	WORD	$0x4e21d400 // fadd v0.4s, v0.4s, v1.4s
	WORD	$0x4e23d442 // fadd v2.4s, v2.4s, v3.4s
	WORD	$0x4e22d400 // fadd v0.4s, v0.4s, v2.4s
	WORD	$0x6e20d400 // faddp v0.4s, v0.4s, v0.4s
	WORD	$0x7e30d800 // faddp s0, v0.2s
	FMOVS	F0, ret+16(FP)
	RET

// func widenF16NEON(dst *float32, src *uint16, n int)
//
// FCVTL is exact for every float16, subnormals included (Go leaves FPCR.FZ16
// clear), and quiets NaNs keeping the payload, as f16ToF32 does.
TEXT ·widenF16NEON(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	LSR	$4, R2, R3
	CBZ	R3, wd8

wd16:
	VLD1.P	32(R1), [V0.B16, V1.B16]
	WORD	$0x0e217804 // fcvtl v4.4s, v0.4h
	WORD	$0x4e217805 // fcvtl2 v5.4s, v0.8h
	WORD	$0x0e217826 // fcvtl v6.4s, v1.4h
	WORD	$0x4e217827 // fcvtl2 v7.4s, v1.8h
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUBS	$1, R3
	BNE	wd16

wd8:
	TBZ	$3, R2, wd4
	VLD1.P	16(R1), [V0.B16]
	WORD	$0x0e217804 // fcvtl v4.4s, v0.4h
	WORD	$0x4e217805 // fcvtl2 v5.4s, v0.8h
	VST1.P	[V4.S4, V5.S4], 32(R0)

wd4:
	TBZ	$2, R2, wd2
	FMOVD.P	8(R1), F0
	WORD	$0x0e217804 // fcvtl v4.4s, v0.4h
	VST1.P	[V4.S4], 16(R0)

wd2:
	TBZ	$1, R2, wd1
	FMOVS.P	4(R1), F0
	WORD	$0x0e217804 // fcvtl v4.4s, v0.4h
	FMOVD.P	F4, 8(R0)

wd1:
	TBZ	$0, R2, wdDone
	MOVHU	(R1), R3
	FMOVS	R3, F0
	WORD	$0x0e217804 // fcvtl v4.4s, v0.4h
	FMOVS	F4, (R0)

wdDone:
	RET

// func narrowF16NEON(dst *uint16, src *float32, n int)
//
// FCVTN rounds with FPCR.RMode, round to nearest even in Go programs;
// overflow gives ±Inf, NaNs are quieted keeping the top payload bits, as
// f32ToF16 does.
TEXT ·narrowF16NEON(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	LSR	$4, R2, R3
	CBZ	R3, nr8

nr16:
	VLD1.P	64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD	$0x0e216804 // fcvtn v4.4h, v0.4s
	WORD	$0x4e216824 // fcvtn2 v4.8h, v1.4s
	WORD	$0x0e216845 // fcvtn v5.4h, v2.4s
	WORD	$0x4e216865 // fcvtn2 v5.8h, v3.4s
	VST1.P	[V4.B16, V5.B16], 32(R0)
	SUBS	$1, R3
	BNE	nr16

nr8:
	TBZ	$3, R2, nr4
	VLD1.P	32(R1), [V0.S4, V1.S4]
	WORD	$0x0e216804 // fcvtn v4.4h, v0.4s
	WORD	$0x4e216824 // fcvtn2 v4.8h, v1.4s
	VST1.P	[V4.B16], 16(R0)

nr4:
	TBZ	$2, R2, nr2
	VLD1.P	16(R1), [V0.S4]
	WORD	$0x0e216804 // fcvtn v4.4h, v0.4s
	FMOVD.P	F4, 8(R0)

nr2:
	TBZ	$1, R2, nr1
	FMOVD.P	8(R1), F0
	WORD	$0x0e216804 // fcvtn v4.4h, v0.4s
	FMOVS.P	F4, 4(R0)

nr1:
	TBZ	$0, R2, nrDone
	FMOVS	(R1), F0
	WORD	$0x0e216804 // fcvtn v4.4h, v0.4s
	FMOVS	F4, R3
	MOVH	R3, (R0)

nrDone:
	RET

// The grouped weighted sums of a query group (weightedSums): each value
// vector is loaded once and multiplied into the output rows of up to four
// query heads. A block of columns of every output row stays in registers
// while the n value rows stream past, row after row in the order of p, so
// every output element is the same chain of fused multiply-adds as in
// wsumAccNEON and in the generic kernel.
//
// Registers shared by the four kernels below:
//   R0       weights of output row 0 (p), R9–R11 those of rows 1–3
//   R3       n, the number of value rows
//   R4       vals, advanced by one column block after each block
//   R5       d, the number of columns
//   R6       output row 0, R12–R14 output rows 1–3, advanced with the blocks
//   R8       output row stride in bytes (4·d)
//   R23      value row stride in bytes (4·d, or 2·d for float16)
//   R15      column blocks left
//   R16, R17, R19, R20  weight pointers of rows 0–3 within a block
//   R21      value pointer within a block, R22 rows left in the block
//   V0–V15   accumulators
//   V16–V19  (four rows) or V16–V23 (two rows) the value vectors as float32,
//            widened from the float16 vectors in V24–V27
//   V20–V23  (four rows) or V28, V29 (two rows) the broadcast weights
//   R7, R13, R24 scratch where the above leaves them free

// WS4START resets the per-block pointers and row count of the four-row
// kernels; WS4W loads the next weight of each row, broadcast.
#define WS4START \
	MOVD	R0, R16; \
	MOVD	R9, R17; \
	MOVD	R10, R19; \
	MOVD	R11, R20; \
	MOVD	R4, R21; \
	MOVD	R3, R22

#define WS4W \
	VLD1R.P	4(R16), [V20.S4]; \
	VLD1R.P	4(R17), [V21.S4]; \
	VLD1R.P	4(R19), [V22.S4]; \
	VLD1R.P	4(R20), [V23.S4]

// WS4FMA4 adds value vectors V16–V19 times the four weights to the
// accumulators of rows 0–3: V0–V3, V4–V7, V8–V11, V12–V15.
#define WS4FMA4 \
	VFMLA	V16.S4, V20.S4, V0.S4; \
	VFMLA	V17.S4, V20.S4, V1.S4; \
	VFMLA	V18.S4, V20.S4, V2.S4; \
	VFMLA	V19.S4, V20.S4, V3.S4; \
	VFMLA	V16.S4, V21.S4, V4.S4; \
	VFMLA	V17.S4, V21.S4, V5.S4; \
	VFMLA	V18.S4, V21.S4, V6.S4; \
	VFMLA	V19.S4, V21.S4, V7.S4; \
	VFMLA	V16.S4, V22.S4, V8.S4; \
	VFMLA	V17.S4, V22.S4, V9.S4; \
	VFMLA	V18.S4, V22.S4, V10.S4; \
	VFMLA	V19.S4, V22.S4, V11.S4; \
	VFMLA	V16.S4, V23.S4, V12.S4; \
	VFMLA	V17.S4, V23.S4, V13.S4; \
	VFMLA	V18.S4, V23.S4, V14.S4; \
	VFMLA	V19.S4, V23.S4, V15.S4

// WS4FMA2: V16, V17 into rows 0–3 at V0,V1 / V2,V3 / V4,V5 / V6,V7.
#define WS4FMA2 \
	VFMLA	V16.S4, V20.S4, V0.S4; \
	VFMLA	V17.S4, V20.S4, V1.S4; \
	VFMLA	V16.S4, V21.S4, V2.S4; \
	VFMLA	V17.S4, V21.S4, V3.S4; \
	VFMLA	V16.S4, V22.S4, V4.S4; \
	VFMLA	V17.S4, V22.S4, V5.S4; \
	VFMLA	V16.S4, V23.S4, V6.S4; \
	VFMLA	V17.S4, V23.S4, V7.S4

// WS4FMA1: V16 into rows 0–3 at V0 / V1 / V2 / V3.
#define WS4FMA1 \
	VFMLA	V16.S4, V20.S4, V0.S4; \
	VFMLA	V16.S4, V21.S4, V1.S4; \
	VFMLA	V16.S4, V22.S4, V2.S4; \
	VFMLA	V16.S4, V23.S4, V3.S4

// The two-row kernels: WS2START, WS2W as above for rows 0 and 1.
#define WS2START \
	MOVD	R0, R16; \
	MOVD	R9, R17; \
	MOVD	R4, R21; \
	MOVD	R3, R22

#define WS2W \
	VLD1R.P	4(R16), [V28.S4]; \
	VLD1R.P	4(R17), [V29.S4]

// WS2FMA8: V16–V23 into row 0 at V0–V7 and row 1 at V8–V15.
#define WS2FMA8 \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V17.S4, V28.S4, V1.S4; \
	VFMLA	V18.S4, V28.S4, V2.S4; \
	VFMLA	V19.S4, V28.S4, V3.S4; \
	VFMLA	V20.S4, V28.S4, V4.S4; \
	VFMLA	V21.S4, V28.S4, V5.S4; \
	VFMLA	V22.S4, V28.S4, V6.S4; \
	VFMLA	V23.S4, V28.S4, V7.S4; \
	VFMLA	V16.S4, V29.S4, V8.S4; \
	VFMLA	V17.S4, V29.S4, V9.S4; \
	VFMLA	V18.S4, V29.S4, V10.S4; \
	VFMLA	V19.S4, V29.S4, V11.S4; \
	VFMLA	V20.S4, V29.S4, V12.S4; \
	VFMLA	V21.S4, V29.S4, V13.S4; \
	VFMLA	V22.S4, V29.S4, V14.S4; \
	VFMLA	V23.S4, V29.S4, V15.S4

// WS2FMA4: V16–V19 into row 0 at V0–V3 and row 1 at V4–V7.
#define WS2FMA4 \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V17.S4, V28.S4, V1.S4; \
	VFMLA	V18.S4, V28.S4, V2.S4; \
	VFMLA	V19.S4, V28.S4, V3.S4; \
	VFMLA	V16.S4, V29.S4, V4.S4; \
	VFMLA	V17.S4, V29.S4, V5.S4; \
	VFMLA	V18.S4, V29.S4, V6.S4; \
	VFMLA	V19.S4, V29.S4, V7.S4

// WS2FMA2: V16, V17 into row 0 at V0, V1 and row 1 at V2, V3.
#define WS2FMA2 \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V17.S4, V28.S4, V1.S4; \
	VFMLA	V16.S4, V29.S4, V2.S4; \
	VFMLA	V17.S4, V29.S4, V3.S4

// WS2FMA1: V16 into row 0 at V0 and row 1 at V1.
#define WS2FMA1 \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V16.S4, V29.S4, V1.S4

// Widening of float16 value vectors, in GNU syntax:
//   WSCVT8:  fcvtl v16.4s, v24.4h
//            fcvtl2 v17.4s, v24.8h
//   WSCVT16: the above, then
//            fcvtl v18.4s, v25.4h
//            fcvtl2 v19.4s, v25.8h
//   WSCVT32: the above, then
//            fcvtl v20.4s, v26.4h
//            fcvtl2 v21.4s, v26.8h
//            fcvtl v22.4s, v27.4h
//            fcvtl2 v23.4s, v27.8h
// and WSCVT4 is the first fcvtl alone.
#define WSCVT4 \
	WORD	$0x0e217b10

#define WSCVT8 \
	WORD	$0x0e217b10; \
	WORD	$0x4e217b11

#define WSCVT16 \
	WORD	$0x0e217b10; \
	WORD	$0x4e217b11; \
	WORD	$0x0e217b32; \
	WORD	$0x4e217b33

#define WSCVT32 \
	WORD	$0x0e217b10; \
	WORD	$0x4e217b11; \
	WORD	$0x0e217b32; \
	WORD	$0x4e217b33; \
	WORD	$0x0e217b54; \
	WORD	$0x4e217b55; \
	WORD	$0x0e217b76; \
	WORD	$0x4e217b77

// func wsums4NEON(p *float32, pn, p3, n int, vals *float32, d int, out *float32, o3 int)
//
// For the output rows k < 4 and columns c < d (n ≥ 1, d ≥ 1):
// out[k·d+c] += Σ_{i<n} p[k·pn+i]·vals[i·d+c], except that row 3 takes its
// weights at p+p3 and its output at out+o3, so that a group of three passes
// row 2 twice (both copies compute and store the same values). Blocks of 16
// columns hold 16 accumulators, enough to cover the FMA latency; then the
// 8-, 4-, 2- and 1-column tails. 2- and 1-column tails load with FMOVD/FMOVS
// and store only those lanes.
TEXT ·wsums4NEON(SB), NOSPLIT|NOFRAME, $0-64
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	MOVD	p3+16(FP), R2
	MOVD	n+24(FP), R3
	MOVD	vals+32(FP), R4
	MOVD	d+40(FP), R5
	MOVD	out+48(FP), R6
	MOVD	o3+56(FP), R7
	LSL	$2, R5, R8
	MOVD	R8, R23
	ADD	R1<<2, R0, R9
	ADD	R1<<2, R9, R10
	ADD	R2<<2, R0, R11
	ADD	R8, R6, R12
	ADD	R8, R12, R13
	ADD	R7<<2, R6, R14
	LSR	$4, R5, R15
	CBZ	R15, w4c8

w4c16:
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1	(R13), [V8.S4, V9.S4, V10.S4, V11.S4]
	VLD1	(R14), [V12.S4, V13.S4, V14.S4, V15.S4]
	WS4START

w4c16Row:
	VLD1	(R21), [V16.S4, V17.S4, V18.S4, V19.S4]
	ADD	R23, R21
	WS4W
	WS4FMA4
	SUBS	$1, R22
	BNE	w4c16Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12)
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R13)
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R14)
	ADD	$64, R4
	SUBS	$1, R15
	BNE	w4c16

w4c8:
	TBZ	$3, R5, w4c4
	VLD1	(R6), [V0.S4, V1.S4]
	VLD1	(R12), [V2.S4, V3.S4]
	VLD1	(R13), [V4.S4, V5.S4]
	VLD1	(R14), [V6.S4, V7.S4]
	WS4START

w4c8Row:
	VLD1	(R21), [V16.S4, V17.S4]
	ADD	R23, R21
	WS4W
	WS4FMA2
	SUBS	$1, R22
	BNE	w4c8Row
	VST1.P	[V0.S4, V1.S4], 32(R6)
	VST1.P	[V2.S4, V3.S4], 32(R12)
	VST1.P	[V4.S4, V5.S4], 32(R13)
	VST1.P	[V6.S4, V7.S4], 32(R14)
	ADD	$32, R4

w4c4:
	TBZ	$2, R5, w4c2
	VLD1	(R6), [V0.S4]
	VLD1	(R12), [V1.S4]
	VLD1	(R13), [V2.S4]
	VLD1	(R14), [V3.S4]
	WS4START

w4c4Row:
	VLD1	(R21), [V16.S4]
	ADD	R23, R21
	WS4W
	WS4FMA1
	SUBS	$1, R22
	BNE	w4c4Row
	VST1.P	[V0.S4], 16(R6)
	VST1.P	[V1.S4], 16(R12)
	VST1.P	[V2.S4], 16(R13)
	VST1.P	[V3.S4], 16(R14)
	ADD	$16, R4

w4c2:
	TBZ	$1, R5, w4c1
	FMOVD	(R6), F0
	FMOVD	(R12), F1
	FMOVD	(R13), F2
	FMOVD	(R14), F3
	WS4START

w4c2Row:
	FMOVD	(R21), F16
	ADD	R23, R21
	WS4W
	WS4FMA1
	SUBS	$1, R22
	BNE	w4c2Row
	FMOVD.P	F0, 8(R6)
	FMOVD.P	F1, 8(R12)
	FMOVD.P	F2, 8(R13)
	FMOVD.P	F3, 8(R14)
	ADD	$8, R4

w4c1:
	TBZ	$0, R5, w4Done
	FMOVS	(R6), F0
	FMOVS	(R12), F1
	FMOVS	(R13), F2
	FMOVS	(R14), F3
	WS4START

w4c1Row:
	FMOVS	(R21), F16
	ADD	R23, R21
	WS4W
	WS4FMA1
	SUBS	$1, R22
	BNE	w4c1Row
	FMOVS	F0, (R6)
	FMOVS	F1, (R12)
	FMOVS	F2, (R13)
	FMOVS	F3, (R14)

w4Done:
	RET

// func wsums4F16NEON(p *float32, pn, p3, n int, vals *uint16, d int, out *float32, o3 int)
//
// wsums4NEON over float16 value rows, widened exactly by FCVTL/FCVTL2 as
// they are loaded.
TEXT ·wsums4F16NEON(SB), NOSPLIT|NOFRAME, $0-64
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	MOVD	p3+16(FP), R2
	MOVD	n+24(FP), R3
	MOVD	vals+32(FP), R4
	MOVD	d+40(FP), R5
	MOVD	out+48(FP), R6
	MOVD	o3+56(FP), R7
	LSL	$2, R5, R8
	LSL	$1, R5, R23
	ADD	R1<<2, R0, R9
	ADD	R1<<2, R9, R10
	ADD	R2<<2, R0, R11
	ADD	R8, R6, R12
	ADD	R8, R12, R13
	ADD	R7<<2, R6, R14
	LSR	$4, R5, R15
	CBZ	R15, h4c8

h4c16:
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1	(R13), [V8.S4, V9.S4, V10.S4, V11.S4]
	VLD1	(R14), [V12.S4, V13.S4, V14.S4, V15.S4]
	WS4START

h4c16Row:
	VLD1	(R21), [V24.B16, V25.B16]
	ADD	R23, R21
	WS4W
	WSCVT16
	WS4FMA4
	SUBS	$1, R22
	BNE	h4c16Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12)
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R13)
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R14)
	ADD	$32, R4
	SUBS	$1, R15
	BNE	h4c16

h4c8:
	TBZ	$3, R5, h4c4
	VLD1	(R6), [V0.S4, V1.S4]
	VLD1	(R12), [V2.S4, V3.S4]
	VLD1	(R13), [V4.S4, V5.S4]
	VLD1	(R14), [V6.S4, V7.S4]
	WS4START

h4c8Row:
	VLD1	(R21), [V24.B16]
	ADD	R23, R21
	WS4W
	WSCVT8
	WS4FMA2
	SUBS	$1, R22
	BNE	h4c8Row
	VST1.P	[V0.S4, V1.S4], 32(R6)
	VST1.P	[V2.S4, V3.S4], 32(R12)
	VST1.P	[V4.S4, V5.S4], 32(R13)
	VST1.P	[V6.S4, V7.S4], 32(R14)
	ADD	$16, R4

h4c4:
	TBZ	$2, R5, h4c2
	VLD1	(R6), [V0.S4]
	VLD1	(R12), [V1.S4]
	VLD1	(R13), [V2.S4]
	VLD1	(R14), [V3.S4]
	WS4START

h4c4Row:
	FMOVD	(R21), F24
	ADD	R23, R21
	WS4W
	WSCVT4
	WS4FMA1
	SUBS	$1, R22
	BNE	h4c4Row
	VST1.P	[V0.S4], 16(R6)
	VST1.P	[V1.S4], 16(R12)
	VST1.P	[V2.S4], 16(R13)
	VST1.P	[V3.S4], 16(R14)
	ADD	$8, R4

h4c2:
	TBZ	$1, R5, h4c1
	FMOVD	(R6), F0
	FMOVD	(R12), F1
	FMOVD	(R13), F2
	FMOVD	(R14), F3
	WS4START

h4c2Row:
	FMOVS	(R21), F24
	ADD	R23, R21
	WS4W
	WSCVT4
	WS4FMA1
	SUBS	$1, R22
	BNE	h4c2Row
	FMOVD.P	F0, 8(R6)
	FMOVD.P	F1, 8(R12)
	FMOVD.P	F2, 8(R13)
	FMOVD.P	F3, 8(R14)
	ADD	$4, R4

h4c1:
	TBZ	$0, R5, h4Done
	FMOVS	(R6), F0
	FMOVS	(R12), F1
	FMOVS	(R13), F2
	FMOVS	(R14), F3
	WS4START

h4c1Row:
	MOVHU	(R21), R24
	FMOVS	R24, F24
	ADD	R23, R21
	WS4W
	WSCVT4
	WS4FMA1
	SUBS	$1, R22
	BNE	h4c1Row
	FMOVS	F0, (R6)
	FMOVS	F1, (R12)
	FMOVS	F2, (R13)
	FMOVS	F3, (R14)

h4Done:
	RET

// func wsums2NEON(p *float32, pn, n int, vals *float32, d int, out *float32)
//
// wsums4NEON for two output rows (weights at p and p+pn, outputs at out and
// out+d): blocks of 32 columns keep the 16 accumulators, then the 16-, 8-,
// 4-, 2- and 1-column tails.
TEXT ·wsums2NEON(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	MOVD	n+16(FP), R3
	MOVD	vals+24(FP), R4
	MOVD	d+32(FP), R5
	MOVD	out+40(FP), R6
	LSL	$2, R5, R8
	MOVD	R8, R23
	ADD	R1<<2, R0, R9
	ADD	R8, R6, R12
	LSR	$5, R5, R15
	CBZ	R15, w2c16

w2c32:
	ADD	$64, R6, R7
	ADD	$64, R12, R13
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R7), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1	(R12), [V8.S4, V9.S4, V10.S4, V11.S4]
	VLD1	(R13), [V12.S4, V13.S4, V14.S4, V15.S4]
	WS2START

w2c32Row:
	ADD	$64, R21, R24
	VLD1	(R21), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1	(R24), [V20.S4, V21.S4, V22.S4, V23.S4]
	ADD	R23, R21
	WS2W
	WS2FMA8
	SUBS	$1, R22
	BNE	w2c32Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R6)
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R12)
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R12)
	ADD	$128, R4
	SUBS	$1, R15
	BNE	w2c32

w2c16:
	TBZ	$4, R5, w2c8
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]
	WS2START

w2c16Row:
	VLD1	(R21), [V16.S4, V17.S4, V18.S4, V19.S4]
	ADD	R23, R21
	WS2W
	WS2FMA4
	SUBS	$1, R22
	BNE	w2c16Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12)
	ADD	$64, R4

w2c8:
	TBZ	$3, R5, w2c4
	VLD1	(R6), [V0.S4, V1.S4]
	VLD1	(R12), [V2.S4, V3.S4]
	WS2START

w2c8Row:
	VLD1	(R21), [V16.S4, V17.S4]
	ADD	R23, R21
	WS2W
	WS2FMA2
	SUBS	$1, R22
	BNE	w2c8Row
	VST1.P	[V0.S4, V1.S4], 32(R6)
	VST1.P	[V2.S4, V3.S4], 32(R12)
	ADD	$32, R4

w2c4:
	TBZ	$2, R5, w2c2
	VLD1	(R6), [V0.S4]
	VLD1	(R12), [V1.S4]
	WS2START

w2c4Row:
	VLD1	(R21), [V16.S4]
	ADD	R23, R21
	WS2W
	WS2FMA1
	SUBS	$1, R22
	BNE	w2c4Row
	VST1.P	[V0.S4], 16(R6)
	VST1.P	[V1.S4], 16(R12)
	ADD	$16, R4

w2c2:
	TBZ	$1, R5, w2c1
	FMOVD	(R6), F0
	FMOVD	(R12), F1
	WS2START

w2c2Row:
	FMOVD	(R21), F16
	ADD	R23, R21
	WS2W
	WS2FMA1
	SUBS	$1, R22
	BNE	w2c2Row
	FMOVD.P	F0, 8(R6)
	FMOVD.P	F1, 8(R12)
	ADD	$8, R4

w2c1:
	TBZ	$0, R5, w2Done
	FMOVS	(R6), F0
	FMOVS	(R12), F1
	WS2START

w2c1Row:
	FMOVS	(R21), F16
	ADD	R23, R21
	WS2W
	WS2FMA1
	SUBS	$1, R22
	BNE	w2c1Row
	FMOVS	F0, (R6)
	FMOVS	F1, (R12)

w2Done:
	RET

// func wsums2F16NEON(p *float32, pn, n int, vals *uint16, d int, out *float32)
//
// wsums2NEON over float16 value rows.
TEXT ·wsums2F16NEON(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	MOVD	n+16(FP), R3
	MOVD	vals+24(FP), R4
	MOVD	d+32(FP), R5
	MOVD	out+40(FP), R6
	LSL	$2, R5, R8
	LSL	$1, R5, R23
	ADD	R1<<2, R0, R9
	ADD	R8, R6, R12
	LSR	$5, R5, R15
	CBZ	R15, h2c16

h2c32:
	ADD	$64, R6, R7
	ADD	$64, R12, R13
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R7), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1	(R12), [V8.S4, V9.S4, V10.S4, V11.S4]
	VLD1	(R13), [V12.S4, V13.S4, V14.S4, V15.S4]
	WS2START

h2c32Row:
	VLD1	(R21), [V24.B16, V25.B16, V26.B16, V27.B16]
	ADD	R23, R21
	WS2W
	WSCVT32
	WS2FMA8
	SUBS	$1, R22
	BNE	h2c32Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R6)
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R12)
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R12)
	ADD	$64, R4
	SUBS	$1, R15
	BNE	h2c32

h2c16:
	TBZ	$4, R5, h2c8
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]
	WS2START

h2c16Row:
	VLD1	(R21), [V24.B16, V25.B16]
	ADD	R23, R21
	WS2W
	WSCVT16
	WS2FMA4
	SUBS	$1, R22
	BNE	h2c16Row
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12)
	ADD	$32, R4

h2c8:
	TBZ	$3, R5, h2c4
	VLD1	(R6), [V0.S4, V1.S4]
	VLD1	(R12), [V2.S4, V3.S4]
	WS2START

h2c8Row:
	VLD1	(R21), [V24.B16]
	ADD	R23, R21
	WS2W
	WSCVT8
	WS2FMA2
	SUBS	$1, R22
	BNE	h2c8Row
	VST1.P	[V0.S4, V1.S4], 32(R6)
	VST1.P	[V2.S4, V3.S4], 32(R12)
	ADD	$16, R4

h2c4:
	TBZ	$2, R5, h2c2
	VLD1	(R6), [V0.S4]
	VLD1	(R12), [V1.S4]
	WS2START

h2c4Row:
	FMOVD	(R21), F24
	ADD	R23, R21
	WS2W
	WSCVT4
	WS2FMA1
	SUBS	$1, R22
	BNE	h2c4Row
	VST1.P	[V0.S4], 16(R6)
	VST1.P	[V1.S4], 16(R12)
	ADD	$8, R4

h2c2:
	TBZ	$1, R5, h2c1
	FMOVD	(R6), F0
	FMOVD	(R12), F1
	WS2START

h2c2Row:
	FMOVS	(R21), F24
	ADD	R23, R21
	WS2W
	WSCVT4
	WS2FMA1
	SUBS	$1, R22
	BNE	h2c2Row
	FMOVD.P	F0, 8(R6)
	FMOVD.P	F1, 8(R12)
	ADD	$4, R4

h2c1:
	TBZ	$0, R5, h2Done
	FMOVS	(R6), F0
	FMOVS	(R12), F1
	WS2START

h2c1Row:
	MOVHU	(R21), R24
	FMOVS	R24, F24
	ADD	R23, R21
	WS2W
	WSCVT4
	WS2FMA1
	SUBS	$1, R22
	BNE	h2c1Row
	FMOVS	F0, (R6)
	FMOVS	F1, (R12)

h2Done:
	RET
