//go:build gc && !purego

#include "textflag.h"

// NEON kernels for arm64, the prototypes and semantics of kernels.go. The
// Go wrappers there validate the pointers and counts and bound the work of
// each call; these functions trust their arguments. Each body is written
// once, as a macro expanded per element type where float32 and float16
// differ only in how a vector is loaded.
//
// Registers: R0–R17, R19–R25 and V0–V31 only (R18 is the platform register,
// R26–R30 are reserved by Go). A 2- or 1-element tail is loaded with
// FMOVD/FMOVS, which zero the rest of the vector register.

// The Go assembler has no mnemonics for the vector floating-point
// arithmetic and conversions below, so they are WORD encodings built from
// the register numbers d, n, m (GNU syntax beside each); the bases were
// produced with llvm-mc and the tests check the kernels against the generic
// ones under qemu.

// fadd vd.4s, vn.4s, vm.4s
#define FADD4(d, n, m) WORD $(0x4e20d400 | (m)<<16 | (n)<<5 | (d))
// fsub vd.4s, vn.4s, vm.4s
#define FSUB4(d, n, m) WORD $(0x4ea0d400 | (m)<<16 | (n)<<5 | (d))
// fmul vd.4s, vn.4s, vm.4s
#define FMUL4(d, n, m) WORD $(0x6e20dc00 | (m)<<16 | (n)<<5 | (d))
// fmax vd.4s, vn.4s, vm.4s (a NaN operand gives NaN)
#define FMAX4(d, n, m) WORD $(0x4e20f400 | (m)<<16 | (n)<<5 | (d))
// fmin vd.4s, vn.4s, vm.4s
#define FMIN4(d, n, m) WORD $(0x4ea0f400 | (m)<<16 | (n)<<5 | (d))
// fcmgt vd.4s, vn.4s, vm.4s: all ones where vn > vm
#define FCMGT4(d, n, m) WORD $(0x6ea0e400 | (m)<<16 | (n)<<5 | (d))
// faddp vd.4s, vn.4s, vm.4s: [n0+n1, n2+n3, m0+m1, m2+m3]
#define FADDP4(d, n, m) WORD $(0x6e20d400 | (m)<<16 | (n)<<5 | (d))
// faddp sd, vn.2s
#define FADDPS(d, n) WORD $(0x7e30d800 | (n)<<5 | (d))
// fmaxv sd, vn.4s
#define FMAXV(d, n) WORD $(0x6e30f800 | (n)<<5 | (d))
// fcvtl vd.4s, vn.4h and fcvtl2 vd.4s, vn.8h: widen float16 lanes 0–3, 4–7
#define FCVTL(d, n) WORD $(0x0e217800 | (n)<<5 | (d))
#define FCVTL2(d, n) WORD $(0x4e217800 | (n)<<5 | (d))
// fcvtn vd.4h, vn.4s and fcvtn2 vd.8h, vn.4s: narrow into lanes 0–3, 4–7
#define FCVTN(d, n) WORD $(0x0e216800 | (n)<<5 | (d))
#define FCVTN2(d, n) WORD $(0x4e216800 | (n)<<5 | (d))
// fcvtns vd.4s, vn.4s (to int32, nearest even) and scvtf vd.4s, vn.4s
#define FCVTNS4(d, n) WORD $(0x4e21a800 | (n)<<5 | (d))
#define SCVTF4(d, n) WORD $(0x4e21d800 | (n)<<5 | (d))
// sshr vd.4s, vn.4s, #1
#define SSHR4_1(d, n) WORD $(0x4f3f0400 | (n)<<5 | (d))
// sxtl vd.8h, vn.8b and sxtl2 vd.8h, vn.16b (sshll #0): sign-extend bytes
// 0–7, 8–15 to halfwords; sxtl vd.4s, vn.4h and sxtl2 vd.4s, vn.8h: halfwords
// 0–3, 4–7 to words
#define SXTL8(d, n) WORD $(0x0f08a400 | (n)<<5 | (d))
#define SXTL8_2(d, n) WORD $(0x4f08a400 | (n)<<5 | (d))
#define SXTL16(d, n) WORD $(0x0f10a400 | (n)<<5 | (d))
#define SXTL16_2(d, n) WORD $(0x4f10a400 | (n)<<5 | (d))

// HSUM leaves Σ of the 16 lanes of Va–Vd in Fa: (a+b) + (c+d), then pairs.
#define HSUM(a, b, c, d) \
	FADD4(a, a, b); \
	FADD4(c, c, d); \
	FADD4(a, a, c); \
	FADDP4(a, a, a); \
	FADDPS(a, a)

// The score kernels compute a tile of 3 queries × 4 keys at a time: 12
// accumulators V0–V11 (query i, key j in V(4i+j)), the query vectors in
// V12–V14 and the key vectors in V15–V18, so each 4-element step issues 7
// loads for 12 FMAs. The horizontal sums of a query's four accumulators
// are one FADDP tree that leaves the four scores in one vector, the same
// tree for every key. Past the last whole tile the missing key rows repeat
// the last one and only the real scores are stored.
//
// Registers: R0–R2 the query rows, R3 the tile's first key row, R4 the
// output of query 0, R5 d, R6 keys left, R7/R8 the outputs of queries 1/2
// (byte offsets from R4), R9 the key row stride in bytes, R10–R13 the key
// rows of the tile, R14–R16 the query rows within the tile, R17 steps left,
// R19 steps per row, R20/R21 the outputs of queries 1/2, V19 scale.

// SCOREFMA adds the products of the three query vectors and the four key
// vectors to the 12 accumulators.
#define SCOREFMA \
	VFMLA	V15.S4, V12.S4, V0.S4; \
	VFMLA	V16.S4, V12.S4, V1.S4; \
	VFMLA	V17.S4, V12.S4, V2.S4; \
	VFMLA	V18.S4, V12.S4, V3.S4; \
	VFMLA	V15.S4, V13.S4, V4.S4; \
	VFMLA	V16.S4, V13.S4, V5.S4; \
	VFMLA	V17.S4, V13.S4, V6.S4; \
	VFMLA	V18.S4, V13.S4, V7.S4; \
	VFMLA	V15.S4, V14.S4, V8.S4; \
	VFMLA	V16.S4, V14.S4, V9.S4; \
	VFMLA	V17.S4, V14.S4, V10.S4; \
	VFMLA	V18.S4, V14.S4, V11.S4

// SCOREKEYS loads the next 4 elements of the four key rows into V15–V18, as
// float32 or widened from float16.
#define SCOREKEYS_F32 \
	VLD1.P	16(R10), [V15.S4]; \
	VLD1.P	16(R11), [V16.S4]; \
	VLD1.P	16(R12), [V17.S4]; \
	VLD1.P	16(R13), [V18.S4]

#define SCOREKEYS_F16 \
	FMOVD.P	8(R10), F15; \
	FMOVD.P	8(R11), F16; \
	FMOVD.P	8(R12), F17; \
	FMOVD.P	8(R13), F18; \
	FCVTL(15, 15); \
	FCVTL(16, 16); \
	FCVTL(17, 17); \
	FCVTL(18, 18)

// SCORESTEPS sets R19 to the 4-element steps of a row: all of d for
// float32, d &^ 7 for float16.
#define SCORESTEPS_F32 LSR $2, R5, R19
#define SCORESTEPS_F16 LSR $3, R5, R19; LSL $1, R19, R19

// SCORETAIL_F32 adds the last d mod 4 elements of float32 rows, 2 then 1,
// loaded into the low lanes; float16 rows have no tail here
// (SCORETAIL_F16).
#define SCORETAIL_F32 \
	TBZ	$1, R5, tail1; \
	FMOVD.P	8(R14), F12; \
	FMOVD.P	8(R15), F13; \
	FMOVD.P	8(R16), F14; \
	FMOVD.P	8(R10), F15; \
	FMOVD.P	8(R11), F16; \
	FMOVD.P	8(R12), F17; \
	FMOVD.P	8(R13), F18; \
	SCOREFMA; \
tail1: \
	TBZ	$0, R5, tailDone; \
	FMOVS.P	4(R14), F12; \
	FMOVS.P	4(R15), F13; \
	FMOVS.P	4(R16), F14; \
	FMOVS.P	4(R10), F15; \
	FMOVS.P	4(R11), F16; \
	FMOVS.P	4(R12), F17; \
	FMOVS.P	4(R13), F18; \
	SCOREFMA; \
tailDone:

#define SCORETAIL_F16

// SCOREARGS loads the arguments of the score kernels.
#define SCOREARGS(q0, q1, q2, keys, out, d, nk, o1, o2, scale) \
	MOVD	q0, R0; \
	MOVD	q1, R1; \
	MOVD	q2, R2; \
	MOVD	keys, R3; \
	MOVD	out, R4; \
	MOVD	d, R5; \
	MOVD	nk, R6; \
	MOVD	o1, R7; \
	MOVD	o2, R8; \
	FMOVS	scale, F19

// KEYROWS points R10–R13 at the four key rows of a tile from R3, R9 bytes
// apart, the rows past the R6 keys left repeating the last one, so that a
// tile never reads past the keys.
#define KEYROWS \
	MOVD	R3, R10; \
	ADD	R9, R10, R11; \
	ADD	R9, R11, R12; \
	ADD	R9, R12, R13; \
	CMP	$2, R6; \
	CSEL	LT, R10, R11, R11; \
	CMP	$3, R6; \
	CSEL	LT, R11, R12, R12; \
	CMP	$4, R6; \
	CSEL	LT, R12, R13, R13

// SCORE3X4 is the body of score3x4 for keys of 1 << esh bytes, after the
// arguments are loaded (SCOREARGS). Per tile:
// the key rows 1–3 (repeating the last key past nk), the 12 accumulators
// zeroed, the vector steps and the tail, the FADDP trees and the scaling,
// then four scores stored per query, or for 1–3 keys left two (FMOVD) and
// one (FMOVS) after shifting lanes 2 and 3 down (VEXT).
#define SCORE3X4(esh, STEPS, KEYS, TAIL) \
	VDUP	V19.S[0], V19.S4; \
	LSL	$2, R7; \
	LSL	$2, R8; \
	LSL	$esh, R5, R9; \
	STEPS; \
tile: \
	KEYROWS; \
	MOVD	R0, R14; \
	MOVD	R1, R15; \
	MOVD	R2, R16; \
	VEOR	V0.B16, V0.B16, V0.B16; \
	VEOR	V1.B16, V1.B16, V1.B16; \
	VEOR	V2.B16, V2.B16, V2.B16; \
	VEOR	V3.B16, V3.B16, V3.B16; \
	VEOR	V4.B16, V4.B16, V4.B16; \
	VEOR	V5.B16, V5.B16, V5.B16; \
	VEOR	V6.B16, V6.B16, V6.B16; \
	VEOR	V7.B16, V7.B16, V7.B16; \
	VEOR	V8.B16, V8.B16, V8.B16; \
	VEOR	V9.B16, V9.B16, V9.B16; \
	VEOR	V10.B16, V10.B16, V10.B16; \
	VEOR	V11.B16, V11.B16, V11.B16; \
	MOVD	R19, R17; \
	CBZ	R17, tail; \
loop: \
	VLD1.P	16(R14), [V12.S4]; \
	VLD1.P	16(R15), [V13.S4]; \
	VLD1.P	16(R16), [V14.S4]; \
	KEYS; \
	SCOREFMA; \
	SUBS	$1, R17; \
	BNE	loop; \
tail: \
	TAIL; \
	FADDP4(0, 0, 1); \
	FADDP4(2, 2, 3); \
	FADDP4(0, 0, 2); \
	FADDP4(4, 4, 5); \
	FADDP4(6, 6, 7); \
	FADDP4(4, 4, 6); \
	FADDP4(8, 8, 9); \
	FADDP4(10, 10, 11); \
	FADDP4(8, 8, 10); \
	FMUL4(0, 0, 19); \
	FMUL4(4, 4, 19); \
	FMUL4(8, 8, 19); \
	ADD	R7, R4, R20; \
	ADD	R8, R4, R21; \
	CMP	$4, R6; \
	BLT	partial; \
	VST1	[V0.S4], (R4); \
	VST1	[V4.S4], (R20); \
	VST1	[V8.S4], (R21); \
	ADD	$16, R4; \
	ADD	R9<<2, R3, R3; \
	SUBS	$4, R6; \
	BNE	tile; \
	RET; \
partial: \
	TBZ	$1, R6, partial1; \
	FMOVD.P	F0, 8(R4); \
	FMOVD.P	F4, 8(R20); \
	FMOVD.P	F8, 8(R21); \
	VEXT	$8, V0.B16, V0.B16, V0.B16; \
	VEXT	$8, V4.B16, V4.B16, V4.B16; \
	VEXT	$8, V8.B16, V8.B16, V8.B16; \
partial1: \
	TBZ	$0, R6, done; \
	FMOVS	F0, (R4); \
	FMOVS	F4, (R20); \
	FMOVS	F8, (R21); \
done: \
	RET

// func score3x4(q0, q1, q2, keys, out *float32, d, nk, o1, o2 int, scale float32, pf int)
TEXT ·score3x4(SB), NOSPLIT|NOFRAME, $0-88
	SCOREARGS(q0+0(FP), q1+8(FP), q2+16(FP), keys+24(FP), out+32(FP), d+40(FP), nk+48(FP), o1+56(FP), o2+64(FP), scale+72(FP))
	SCORE3X4(2, SCORESTEPS_F32, SCOREKEYS_F32, SCORETAIL_F32)

// func score3x4F16(q0, q1, q2 *float32, keys *uint16, out *float32, d, nk, o1, o2 int, scale float32, pf int)
TEXT ·score3x4F16(SB), NOSPLIT|NOFRAME, $0-88
	SCOREARGS(q0+0(FP), q1+8(FP), q2+16(FP), keys+24(FP), out+32(FP), d+40(FP), nk+48(FP), o1+56(FP), o2+64(FP), scale+72(FP))
	SCORE3X4(1, SCORESTEPS_F16, SCOREKEYS_F16, SCORETAIL_F16)

// func maxAsm(x *float32, n int) float32
//
// Each lane keeps m = x if x > m else m, the generic rule, so NaNs (quiet or
// signalling) are skipped and the lanes never hold a NaN; the lanes are then
// combined with FMAX. n is a positive multiple of 8.
TEXT ·maxAsm(SB), NOSPLIT|NOFRAME, $0-20
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
	FCMGT4(16, 4, 0)
	FCMGT4(17, 5, 1)
	FCMGT4(18, 6, 2)
	FCMGT4(19, 7, 3)
	VBIT	V16.B16, V4.B16, V0.B16
	VBIT	V17.B16, V5.B16, V1.B16
	VBIT	V18.B16, V6.B16, V2.B16
	VBIT	V19.B16, V7.B16, V3.B16
	SUBS	$1, R3
	BNE	max16

max8:
	TBZ	$3, R1, maxReduce
	VLD1.P	32(R0), [V4.S4, V5.S4]
	FCMGT4(16, 4, 0)
	FCMGT4(17, 5, 1)
	VBIT	V16.B16, V4.B16, V0.B16
	VBIT	V17.B16, V5.B16, V1.B16

maxReduce:
	FMAX4(0, 0, 1)
	FMAX4(2, 2, 3)
	FMAX4(0, 0, 2)
	FMAXV(0, 0)
	FMOVS	F0, ret+16(FP)
	RET

// EXP sets V0 = exp(V0 − m) with the constants of expSubAsm in V16–V29;
// V2, V4, V6 and V8 are clobbered.
//
// r = clamp(x − m, −110, 89): below −110 exp rounds to 0 and the clamp keeps
// 2ⁿ representable; above 89 it overflows to +Inf as it should. FMAX/FMIN
// (not the NM forms) propagate NaN. Then n = round(r·log2e) and r −= n·ln2
// in two fused parts (Cody–Waite); P(r) = p0 + p1·r + … + p5·r⁵ by Horner
// (Cephes expf coefficients); eʳ ≈ 1 + (r + r²·P(r)), exactly 1 when r = 0;
// and the scaling by 2ⁿ = 2^(n>>1)·2^(n−n>>1), each factor a normal float
// for n in [−159, 128], so only the last product rounds (to a subnormal).
#define EXP \
	FSUB4(0, 0, 16); \
	FMAX4(0, 0, 17); \
	FMIN4(0, 0, 18); \
	FMUL4(2, 0, 19); \
	FCVTNS4(6, 2); \
	SCVTF4(2, 6); \
	VFMLS	V2.S4, V20.S4, V0.S4; \
	VFMLS	V2.S4, V21.S4, V0.S4; \
	VMOV	V23.B16, V4.B16; \
	VFMLA	V22.S4, V0.S4, V4.S4; \
	VMOV	V24.B16, V2.B16; \
	VFMLA	V4.S4, V0.S4, V2.S4; \
	VMOV	V25.B16, V4.B16; \
	VFMLA	V2.S4, V0.S4, V4.S4; \
	VMOV	V26.B16, V2.B16; \
	VFMLA	V4.S4, V0.S4, V2.S4; \
	VMOV	V27.B16, V4.B16; \
	VFMLA	V2.S4, V0.S4, V4.S4; \
	FMUL4(2, 0, 0); \
	VFMLA	V4.S4, V2.S4, V0.S4; \
	FADD4(0, 0, 28); \
	SSHR4_1(8, 6); \
	VSUB	V8.S4, V6.S4, V6.S4; \
	VADD	V29.S4, V8.S4, V8.S4; \
	VSHL	$23, V8.S4, V8.S4; \
	VADD	V29.S4, V6.S4, V6.S4; \
	VSHL	$23, V6.S4, V6.S4; \
	FMUL4(0, 0, 8); \
	FMUL4(0, 0, 6)

// func expSubAsm(x *float32, n int, m float32) float32
//
// exp(r) = 2ⁿ·eʳ with n = round(r/ln2) and |r| ≤ ln2/2, eʳ from the Cephes
// expf polynomial: within 2 ulp of the correctly rounded result, exactly 1 at
// r = 0, 0 for r below −103.98, +Inf above 88.73, NaN for NaN. The sums of
// alternate vectors go to V30 and V31. n ≥ 1.
TEXT ·expSubAsm(SB), NOSPLIT|NOFRAME, $0-28
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
	VLD1	(R0), [V0.S4]
	EXP
	VST1.P	[V0.S4], 16(R0)
	FADD4(30, 30, 0)
	VLD1	(R0), [V0.S4]
	EXP
	VST1.P	[V0.S4], 16(R0)
	FADD4(31, 31, 0)
	SUBS	$1, R3
	BNE	exp8

exp4:
	TBZ	$2, R1, exp2
	VLD1	(R0), [V0.S4]
	EXP
	VST1.P	[V0.S4], 16(R0)
	FADD4(30, 30, 0)

exp2:
	// Lanes 2 and 3 hold exp(−m): FMOVD F0, F10 zeroes them before the sum.
	TBZ	$1, R1, exp1
	FMOVD	(R0), F0
	EXP
	FMOVD.P	F0, 8(R0)
	FMOVD	F0, F10
	FADD4(30, 30, 10)

exp1:
	TBZ	$0, R1, expSum
	FMOVS	(R0), F0
	EXP
	FMOVS	F0, (R0)
	FMOVS	F0, F10
	FADD4(30, 30, 10)

expSum:
	FADD4(30, 30, 31)
	FADDP4(30, 30, 30)
	FADDPS(0, 30)
	FMOVS	F0, ret+24(FP)
	RET

// func axpyAsm(a float32, x, y *float32, n int)
//
// n ≥ 1: blocks of 16, then the TBZ ladder of 8, 4, 2 and 1, all fused.
TEXT ·axpyAsm(SB), NOSPLIT|NOFRAME, $0-32
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

// The weighted sums: a block of columns of every output row stays in
// registers while the n value rows stream past, row after row in the order
// of p, so every output element is one chain of fused multiply-adds. The
// grouped kernels load each value vector once for all their output rows.
// Columns come in blocks of 16 (32 for two rows), then 8; w is a multiple
// of 8. arm64 ignores pf: its hardware prefetcher follows the row stride.
//
// Registers:
//   R0       weights of output row 0 (p), R9–R11 those of rows 1–3
//   R3       n, the number of value rows
//   R4       vals, advanced by one column block after each block
//   R5       w, the number of columns
//   R6       output row 0, R12–R14 output rows 1–3, advanced with the blocks
//   R8       output row stride in bytes (4·stride)
//   R23      value row stride in bytes (4·stride, or 2·stride for float16)
//   R15      column blocks left
//   R16, R17, R19, R20  weight pointers of rows 0–3 within a block
//   R21      value pointer within a block, R22 rows left in the block
//   V0–V15   accumulators
//   V16–V23  the value vectors as float32 (16 columns in V16–V19),
//            widened from the float16 vectors in V24–V27
//   V20–V23  (four rows) or V28, V29 (one or two rows) the broadcast weights

// VALS8, VALS16 and VALS32 load 8, 16 or 32 columns of the value row at R21
// into V16 and on, as float32 or widened from float16.
#define VALS8_F32 VLD1 (R21), [V16.S4, V17.S4]
#define VALS8_F16 \
	VLD1	(R21), [V24.B16]; \
	FCVTL(16, 24); \
	FCVTL2(17, 24)

#define VALS16_F32 VLD1 (R21), [V16.S4, V17.S4, V18.S4, V19.S4]
#define VALS16_F16 \
	VLD1	(R21), [V24.B16, V25.B16]; \
	FCVTL(16, 24); \
	FCVTL2(17, 24); \
	FCVTL(18, 25); \
	FCVTL2(19, 25)

#define VALS32_F32 \
	ADD	$64, R21, R24; \
	VLD1	(R21), [V16.S4, V17.S4, V18.S4, V19.S4]; \
	VLD1	(R24), [V20.S4, V21.S4, V22.S4, V23.S4]

#define VALS32_F16 \
	VLD1	(R21), [V24.B16, V25.B16, V26.B16, V27.B16]; \
	FCVTL(16, 24); \
	FCVTL2(17, 24); \
	FCVTL(18, 25); \
	FCVTL2(19, 25); \
	FCVTL(20, 26); \
	FCVTL2(21, 26); \
	FCVTL(22, 27); \
	FCVTL2(23, 27)

// WSARGS reads the arguments every weighted-sum kernel has (the TEXT bodies
// read the others, then expand WS1, WS2 or WS4): R23 the value
// row stride in bytes for elements of 1 << esh bytes, R8 the output row
// stride in bytes, R15 the 16-column blocks (shift 4; 5 for 32 columns).
#define WSARGS(n, vals, stride, out, w, esh, bsh) \
	MOVD	n, R3; \
	MOVD	vals, R4; \
	MOVD	stride, R8; \
	MOVD	out, R6; \
	MOVD	w, R5; \
	LSL	$esh, R8, R23; \
	LSL	$2, R8; \
	LSR	$bsh, R5, R15

// WS1 is the body of wsum1: 16 columns in V0–V3, then 8 in V0, V1.
#define WS1(VALS8, VALS16, esh) \
	CBZ	R15, c8; \
c16: \
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	MOVD	R0, R16; \
	MOVD	R4, R21; \
	MOVD	R3, R22; \
c16Row: \
	VLD1R.P	4(R16), [V28.S4]; \
	VALS16; \
	ADD	R23, R21; \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V17.S4, V28.S4, V1.S4; \
	VFMLA	V18.S4, V28.S4, V2.S4; \
	VFMLA	V19.S4, V28.S4, V3.S4; \
	SUBS	$1, R22; \
	BNE	c16Row; \
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6); \
	ADD	$(16<<esh), R4; \
	SUBS	$1, R15; \
	BNE	c16; \
c8: \
	TBZ	$3, R5, done; \
	VLD1	(R6), [V0.S4, V1.S4]; \
	MOVD	R0, R16; \
	MOVD	R4, R21; \
	MOVD	R3, R22; \
c8Row: \
	VLD1R.P	4(R16), [V28.S4]; \
	VALS8; \
	ADD	R23, R21; \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V17.S4, V28.S4, V1.S4; \
	SUBS	$1, R22; \
	BNE	c8Row; \
	VST1	[V0.S4, V1.S4], (R6); \
done: \
	RET

// func wsum1(p *float32, n int, vals *float32, stride int, out *float32, w int)
TEXT ·wsum1(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	p+0(FP), R0
	WSARGS(n+8(FP), vals+16(FP), stride+24(FP), out+32(FP), w+40(FP), 2, 4)
	WS1(VALS8_F32, VALS16_F32, 2)

// func wsum1F16(p *float32, n int, vals *uint16, stride int, out *float32, w int)
TEXT ·wsum1F16(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	p+0(FP), R0
	WSARGS(n+8(FP), vals+16(FP), stride+24(FP), out+32(FP), w+40(FP), 1, 4)
	WS1(VALS8_F16, VALS16_F16, 1)

// WS4START resets the per-block pointers and row count of the four-row
// kernel; WS4W loads the next weight of each row, broadcast.
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

// WS4 is the body of wsums4: blocks of 16 columns hold 16 accumulators,
// enough to cover the FMA latency; then one of 8.
#define WS4(VALS8, VALS16, esh) \
	ADD	R1<<2, R0, R9; \
	ADD	R1<<2, R9, R10; \
	ADD	R2<<2, R0, R11; \
	ADD	R8, R6, R12; \
	ADD	R8, R12, R13; \
	ADD	R7<<2, R6, R14; \
	CBZ	R15, c8; \
c16: \
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	VLD1	(R13), [V8.S4, V9.S4, V10.S4, V11.S4]; \
	VLD1	(R14), [V12.S4, V13.S4, V14.S4, V15.S4]; \
	WS4START; \
c16Row: \
	VALS16; \
	ADD	R23, R21; \
	WS4W; \
	WS4FMA4; \
	SUBS	$1, R22; \
	BNE	c16Row; \
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6); \
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12); \
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R13); \
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R14); \
	ADD	$(16<<esh), R4; \
	SUBS	$1, R15; \
	BNE	c16; \
c8: \
	TBZ	$3, R5, done; \
	VLD1	(R6), [V0.S4, V1.S4]; \
	VLD1	(R12), [V2.S4, V3.S4]; \
	VLD1	(R13), [V4.S4, V5.S4]; \
	VLD1	(R14), [V6.S4, V7.S4]; \
	WS4START; \
c8Row: \
	VALS8; \
	ADD	R23, R21; \
	WS4W; \
	WS4FMA2; \
	SUBS	$1, R22; \
	BNE	c8Row; \
	VST1	[V0.S4, V1.S4], (R6); \
	VST1	[V2.S4, V3.S4], (R12); \
	VST1	[V4.S4, V5.S4], (R13); \
	VST1	[V6.S4, V7.S4], (R14); \
done: \
	RET

// func wsums4(p *float32, pn, p3, n int, vals *float32, stride int, out *float32, o3, w, pf int)
TEXT ·wsums4(SB), NOSPLIT|NOFRAME, $0-80
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	MOVD	p3+16(FP), R2
	MOVD	o3+56(FP), R7
	WSARGS(n+24(FP), vals+32(FP), stride+40(FP), out+48(FP), w+64(FP), 2, 4)
	WS4(VALS8_F32, VALS16_F32, 2)

// func wsums4F16(p *float32, pn, p3, n int, vals *uint16, stride int, out *float32, o3, w, pf int)
TEXT ·wsums4F16(SB), NOSPLIT|NOFRAME, $0-80
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	MOVD	p3+16(FP), R2
	MOVD	o3+56(FP), R7
	WSARGS(n+24(FP), vals+32(FP), stride+40(FP), out+48(FP), w+64(FP), 1, 4)
	WS4(VALS8_F16, VALS16_F16, 1)

// WS2START and WS2W are WS4START and WS4W for rows 0 and 1.
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

// WS2 is the body of wsums2: blocks of 32 columns keep 16 accumulators,
// then one of 16 and one of 8.
#define WS2(VALS8, VALS16, VALS32, esh) \
	ADD	R1<<2, R0, R9; \
	ADD	R8, R6, R12; \
	CBZ	R15, c16; \
c32: \
	ADD	$64, R6, R7; \
	ADD	$64, R12, R13; \
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	VLD1	(R7), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	VLD1	(R12), [V8.S4, V9.S4, V10.S4, V11.S4]; \
	VLD1	(R13), [V12.S4, V13.S4, V14.S4, V15.S4]; \
	WS2START; \
c32Row: \
	VALS32; \
	ADD	R23, R21; \
	WS2W; \
	WS2FMA8; \
	SUBS	$1, R22; \
	BNE	c32Row; \
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6); \
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R6); \
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R12); \
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R12); \
	ADD	$(32<<esh), R4; \
	SUBS	$1, R15; \
	BNE	c32; \
c16: \
	TBZ	$4, R5, c8; \
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	WS2START; \
c16Row: \
	VALS16; \
	ADD	R23, R21; \
	WS2W; \
	WS2FMA4; \
	SUBS	$1, R22; \
	BNE	c16Row; \
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6); \
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12); \
	ADD	$(16<<esh), R4; \
c8: \
	TBZ	$3, R5, done; \
	VLD1	(R6), [V0.S4, V1.S4]; \
	VLD1	(R12), [V2.S4, V3.S4]; \
	WS2START; \
c8Row: \
	VALS8; \
	ADD	R23, R21; \
	WS2W; \
	WS2FMA2; \
	SUBS	$1, R22; \
	BNE	c8Row; \
	VST1	[V0.S4, V1.S4], (R6); \
	VST1	[V2.S4, V3.S4], (R12); \
done: \
	RET

// func wsums2(p *float32, pn, n int, vals *float32, stride int, out *float32, w, pf int)
TEXT ·wsums2(SB), NOSPLIT|NOFRAME, $0-64
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	WSARGS(n+16(FP), vals+24(FP), stride+32(FP), out+40(FP), w+48(FP), 2, 5)
	WS2(VALS8_F32, VALS16_F32, VALS32_F32, 2)

// func wsums2F16(p *float32, pn, n int, vals *uint16, stride int, out *float32, w, pf int)
TEXT ·wsums2F16(SB), NOSPLIT|NOFRAME, $0-64
	MOVD	p+0(FP), R0
	MOVD	pn+8(FP), R1
	WSARGS(n+16(FP), vals+24(FP), stride+32(FP), out+40(FP), w+48(FP), 1, 5)
	WS2(VALS8_F16, VALS16_F16, VALS32_F16, 1)

// L1LOAD16 and L1LOAD8 load the next 16 or 8 elements at R0 into V4 and on
// as float32, widening float16.
#define L1LOAD16_F32 VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
#define L1LOAD16_F16 \
	VLD1.P	32(R0), [V16.B16, V17.B16]; \
	FCVTL(4, 16); \
	FCVTL2(5, 16); \
	FCVTL(6, 17); \
	FCVTL2(7, 17)

#define L1LOAD8_F32 VLD1.P 32(R0), [V4.S4, V5.S4]
#define L1LOAD8_F16 \
	VLD1.P	16(R0), [V16.B16]; \
	FCVTL(4, 16); \
	FCVTL2(5, 16)

// L1NORM is the body of l1NormAsm, x in R0 and n in R1, the sum left in F0:
// |x| clears the sign bit (VAND), which is
// what math.Abs does, into four accumulators V0–V3. n is a positive
// multiple of 8.
#define L1NORM(LOAD16, LOAD8) \
	MOVW	$0x7fffffff, R2; \
	VDUP	R2, V31.S4; \
	VEOR	V0.B16, V0.B16, V0.B16; \
	VEOR	V1.B16, V1.B16, V1.B16; \
	VEOR	V2.B16, V2.B16, V2.B16; \
	VEOR	V3.B16, V3.B16, V3.B16; \
	LSR	$4, R1, R3; \
	CBZ	R3, l8; \
l16: \
	LOAD16; \
	VAND	V31.B16, V4.B16, V4.B16; \
	VAND	V31.B16, V5.B16, V5.B16; \
	VAND	V31.B16, V6.B16, V6.B16; \
	VAND	V31.B16, V7.B16, V7.B16; \
	FADD4(0, 0, 4); \
	FADD4(1, 1, 5); \
	FADD4(2, 2, 6); \
	FADD4(3, 3, 7); \
	SUBS	$1, R3; \
	BNE	l16; \
l8: \
	TBZ	$3, R1, sum; \
	LOAD8; \
	VAND	V31.B16, V4.B16, V4.B16; \
	VAND	V31.B16, V5.B16, V5.B16; \
	FADD4(0, 0, 4); \
	FADD4(1, 1, 5); \
sum: \
	HSUM(0, 1, 2, 3)

// func l1NormAsm(x *float32, n int) float32
TEXT ·l1NormAsm(SB), NOSPLIT|NOFRAME, $0-20
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	L1NORM(L1LOAD16_F32, L1LOAD8_F32)
	FMOVS	F0, ret+16(FP)
	RET

// func l1NormF16Asm(x *uint16, n int) float32
TEXT ·l1NormF16Asm(SB), NOSPLIT|NOFRAME, $0-20
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	L1NORM(L1LOAD16_F16, L1LOAD8_F16)
	FMOVS	F0, ret+16(FP)
	RET

// func widenAsm(dst *float32, src *uint16, n int)
//
// FCVTL is exact for every float16, subnormals included (Go leaves FPCR.FZ16
// clear), and quiets NaNs keeping the payload, as f16ToF32 does. n is a
// positive multiple of 8.
TEXT ·widenAsm(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	LSR	$4, R2, R3
	CBZ	R3, wd8

wd16:
	VLD1.P	32(R1), [V0.B16, V1.B16]
	FCVTL(4, 0)
	FCVTL2(5, 0)
	FCVTL(6, 1)
	FCVTL2(7, 1)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUBS	$1, R3
	BNE	wd16

wd8:
	TBZ	$3, R2, wdDone
	VLD1	(R1), [V0.B16]
	FCVTL(4, 0)
	FCVTL2(5, 0)
	VST1	[V4.S4, V5.S4], (R0)

wdDone:
	RET

// func narrowAsm(dst *uint16, src *float32, n int)
//
// FCVTN rounds with FPCR.RMode, round to nearest even in Go programs;
// overflow gives ±Inf, NaNs are quieted keeping the top payload bits, as
// f32ToF16 does. n is a positive multiple of 8.
TEXT ·narrowAsm(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	LSR	$4, R2, R3
	CBZ	R3, nr8

nr16:
	VLD1.P	64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	FCVTN(4, 0)
	FCVTN2(4, 1)
	FCVTN(5, 2)
	FCVTN2(5, 3)
	VST1.P	[V4.B16, V5.B16], 32(R0)
	SUBS	$1, R3
	BNE	nr16

nr8:
	TBZ	$3, R2, nrDone
	VLD1	(R1), [V0.S4, V1.S4]
	FCVTN(4, 0)
	FCVTN2(4, 1)
	VST1	[V4.B16], (R0)

nrDone:
	RET

// The dequantisers. A block's scale is loaded into the four halfword lanes
// of V0 (VLD1R) and widened by FCVTL, exact for every float16 as in
// widenAsm, so V0 holds s in every lane. DEQUANT32 widens the 32 int8 in
// V1 (elements 0–15) and V2 (16–31) to int32 through int16 (SXTL, SXTL2),
// converts them (SCVTF, exact), multiplies by s (FMUL: s × q needs at most
// 19 significant bits, so it is exact, and any other scale gives what the
// scalar multiplication of dequantGeneric gives) and stores the 32 floats.
// Each block's bytes are read once, exactly: no load crosses the block end.
#define DEQUANT32 \
	FCVTL(0, 0); \
	SXTL8(3, 1); \
	SXTL8_2(4, 1); \
	SXTL8(5, 2); \
	SXTL8_2(6, 2); \
	SXTL16(16, 3); \
	SXTL16_2(17, 3); \
	SXTL16(18, 4); \
	SXTL16_2(19, 4); \
	SXTL16(20, 5); \
	SXTL16_2(21, 5); \
	SXTL16(22, 6); \
	SXTL16_2(23, 6); \
	SCVTF4(16, 16); \
	SCVTF4(17, 17); \
	SCVTF4(18, 18); \
	SCVTF4(19, 19); \
	SCVTF4(20, 20); \
	SCVTF4(21, 21); \
	SCVTF4(22, 22); \
	SCVTF4(23, 23); \
	FMUL4(16, 16, 0); \
	FMUL4(17, 17, 0); \
	FMUL4(18, 18, 0); \
	FMUL4(19, 19, 0); \
	FMUL4(20, 20, 0); \
	FMUL4(21, 21, 0); \
	FMUL4(22, 22, 0); \
	FMUL4(23, 23, 0); \
	VST1.P	[V16.S4, V17.S4, V18.S4, V19.S4], 64(R0); \
	VST1.P	[V20.S4, V21.S4, V22.S4, V23.S4], 64(R0)

// func dequantQ8Asm(dst *float32, src *byte, nb int)
//
// nb ≥ 1 blocks of 34 bytes: the scale, then the 32 int8.
TEXT ·dequantQ8Asm(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	nb+16(FP), R2

q8block:
	VLD1R.P	2(R1), [V0.H4]
	VLD1.P	32(R1), [V1.B16, V2.B16]
	DEQUANT32
	SUBS	$1, R2
	BNE	q8block
	RET

// Q4CONSTS sets the constants of the Q4_0 kernels: V30 = 0x0f in every
// byte (the low nibble's mask), V31 = 8 (the offset of the stored nibbles).
#define Q4CONSTS \
	VMOVI	$15, V30.B16; \
	VMOVI	$8, V31.B16

// func dequantQ4Asm(dst *float32, src *byte, nb int)
//
// nb ≥ 1 blocks of 18 bytes: the scale, then 16 bytes whose low nibbles
// (AND 0x0f) are elements 0–15 and high nibbles (USHR 4) elements 16–31,
// each minus 8 in the bytes (VSUB) so that DEQUANT32 sign-extends −8..7.
TEXT ·dequantQ4Asm(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	nb+16(FP), R2
	Q4CONSTS

q4block:
	VLD1R.P	2(R1), [V0.H4]
	VLD1.P	16(R1), [V7.B16]
	VAND	V30.B16, V7.B16, V1.B16
	VUSHR	$4, V7.B16, V2.B16
	VSUB	V31.B16, V1.B16, V1.B16
	VSUB	V31.B16, V2.B16, V2.B16
	DEQUANT32
	SUBS	$1, R2
	BNE	q4block
	RET

// func gatherAsm(dst, src unsafe.Pointer, idx *int32, n, rowBytes, nt int)
//
// Copies row idx[r] of src to row r of dst for r < n, rows of rowBytes ≥ 32
// bytes: 64 bytes per step, then 32, then the 32 bytes ending at the row
// end, which may overlap bytes already copied. nt is ignored.
TEXT ·gatherAsm(SB), NOSPLIT|NOFRAME, $0-48
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	idx+16(FP), R2
	MOVD	n+24(FP), R3
	MOVD	rowBytes+32(FP), R4

gatherRow:
	MOVW.P	4(R2), R5 // sign-extending: a valid index is ≥ 0
	MUL	R4, R5, R5
	ADD	R1, R5, R5
	MOVD	R4, R6
	CMP	$64, R6
	BLT	gather32

gather64:
	VLD1.P	64(R5), [V0.B16, V1.B16, V2.B16, V3.B16]
	VST1.P	[V0.B16, V1.B16, V2.B16, V3.B16], 64(R0)
	SUB	$64, R6
	CMP	$64, R6
	BGE	gather64

gather32:
	CMP	$32, R6
	BLT	gatherLast
	VLD1.P	32(R5), [V0.B16, V1.B16]
	VST1.P	[V0.B16, V1.B16], 32(R0)
	SUB	$32, R6

gatherLast:
	// R6 < 32 bytes remain: copy the 32 bytes ending at the row end.
	CBZ	R6, gatherNext
	ADD	R6, R5
	ADD	R6, R0
	SUB	$32, R5, R7
	SUB	$32, R0, R8
	VLD1	(R7), [V0.B16, V1.B16]
	VST1	[V0.B16, V1.B16], (R8)

gatherNext:
	SUBS	$1, R3
	BNE	gatherRow
	RET

// The finiteness checks of Append. Each lane keeps the largest exponent
// field (x AND the exponent mask, VUMAX) over its elements; at the end the
// exponent's lowest bit is added to every lane, which carries into the top
// bit only from an exponent of all ones (Inf or NaN), and the lanes are
// or'd into one.

// CHECKFOLD ends a check whose lanes (arrangement A) are in V20–V23: their
// maximum, plus ONE, the lowest exponent bit, in every lane, the two halves
// or'd into R4. Bit 31 of R4 (float32), or bit 15 once R4>>16 is or'd in
// too (float16), is then set iff some lane was all ones.
#define CHECKFOLD(A, ONE) \
	VUMAX	V21.A, V20.A, V20.A; \
	VUMAX	V23.A, V22.A, V22.A; \
	VUMAX	V22.A, V20.A, V20.A; \
	MOVW	$ONE, R3; \
	VDUP	R3, V30.A; \
	VADD	V30.A, V20.A, V20.A; \
	VMOV	V20.D[0], R4; \
	VMOV	V20.D[1], R5; \
	ORR	R5, R4, R4; \
	ORR	R4>>32, R4, R4

// func copyCheckAsm(dst, src *float32, n int) uint32
//
// n is a positive multiple of 8: 16 elements a step, then 8.
TEXT ·copyCheckAsm(SB), NOSPLIT|NOFRAME, $0-28
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	MOVW	$0x7f800000, R3
	VDUP	R3, V31.S4
	VEOR	V20.B16, V20.B16, V20.B16
	VEOR	V21.B16, V21.B16, V21.B16
	VEOR	V22.B16, V22.B16, V22.B16
	VEOR	V23.B16, V23.B16, V23.B16
	LSR	$4, R2, R3
	CBZ	R3, cc8

cc16:
	VLD1.P	64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	VAND	V31.B16, V0.B16, V4.B16
	VAND	V31.B16, V1.B16, V5.B16
	VAND	V31.B16, V2.B16, V6.B16
	VAND	V31.B16, V3.B16, V7.B16
	VUMAX	V4.S4, V20.S4, V20.S4
	VUMAX	V5.S4, V21.S4, V21.S4
	VUMAX	V6.S4, V22.S4, V22.S4
	VUMAX	V7.S4, V23.S4, V23.S4
	SUBS	$1, R3
	BNE	cc16

cc8:
	TBZ	$3, R2, ccFold
	VLD1	(R1), [V0.S4, V1.S4]
	VST1	[V0.S4, V1.S4], (R0)
	VAND	V31.B16, V0.B16, V4.B16
	VAND	V31.B16, V1.B16, V5.B16
	VUMAX	V4.S4, V20.S4, V20.S4
	VUMAX	V5.S4, V21.S4, V21.S4

ccFold:
	CHECKFOLD(S4, 0x00800000)
	MOVW	R4, ret+24(FP)
	RET

// func checkF16Asm(x *uint16, n int) uint16
//
// n is a positive multiple of 8: 32 elements a step, then 16, then 8.
TEXT ·checkF16Asm(SB), NOSPLIT|NOFRAME, $0-18
	MOVD	x+0(FP), R0
	MOVD	n+8(FP), R1
	MOVW	$0x7c00, R2
	VDUP	R2, V31.H8
	VEOR	V20.B16, V20.B16, V20.B16
	VEOR	V21.B16, V21.B16, V21.B16
	VEOR	V22.B16, V22.B16, V22.B16
	VEOR	V23.B16, V23.B16, V23.B16
	LSR	$5, R1, R3
	CBZ	R3, cf16

cf32:
	VLD1.P	64(R0), [V0.H8, V1.H8, V2.H8, V3.H8]
	VAND	V31.B16, V0.B16, V4.B16
	VAND	V31.B16, V1.B16, V5.B16
	VAND	V31.B16, V2.B16, V6.B16
	VAND	V31.B16, V3.B16, V7.B16
	VUMAX	V4.H8, V20.H8, V20.H8
	VUMAX	V5.H8, V21.H8, V21.H8
	VUMAX	V6.H8, V22.H8, V22.H8
	VUMAX	V7.H8, V23.H8, V23.H8
	SUBS	$1, R3
	BNE	cf32

cf16:
	TBZ	$4, R1, cf8
	VLD1.P	32(R0), [V0.H8, V1.H8]
	VAND	V31.B16, V0.B16, V4.B16
	VAND	V31.B16, V1.B16, V5.B16
	VUMAX	V4.H8, V20.H8, V20.H8
	VUMAX	V5.H8, V21.H8, V21.H8

cf8:
	TBZ	$3, R1, cfFold
	VLD1	(R0), [V0.H8]
	VAND	V31.B16, V0.B16, V4.B16
	VUMAX	V4.H8, V22.H8, V22.H8

cfFold:
	CHECKFOLD(H8, 0x0400)
	ORR	R4>>16, R4, R4
	MOVH	R4, ret+16(FP)
	RET

// func fmaPeak(n int)
//
// The FMA roofline for the benchmarks, not a kernel: n iterations of 24
// VFMLA on 12 independent accumulators (192 flops).
TEXT ·fmaPeak(SB), NOSPLIT|NOFRAME, $0-8
	MOVD	n+0(FP), R0
	VEOR	V12.B16, V12.B16, V12.B16
	VEOR	V13.B16, V13.B16, V13.B16
	VMOV	V12.B16, V14.B16
	VMOV	V12.B16, V15.B16
	VMOV	V12.B16, V16.B16
	VMOV	V12.B16, V17.B16
	VMOV	V12.B16, V18.B16
	VMOV	V12.B16, V0.B16
	VMOV	V12.B16, V1.B16
	VMOV	V12.B16, V2.B16
	VMOV	V12.B16, V3.B16
	VMOV	V12.B16, V4.B16
	VMOV	V12.B16, V5.B16
	VMOV	V12.B16, V6.B16
	VMOV	V12.B16, V7.B16
	VMOV	V12.B16, V8.B16
	VMOV	V12.B16, V9.B16
	VMOV	V12.B16, V10.B16
	VMOV	V12.B16, V11.B16

peak:
	SCOREFMA
	SCOREFMA
	SUBS	$1, R0
	BNE	peak
	RET

// The quantised score kernels: a tile of 2 queries × 4 keys over keys
// stored in Q8_0 or Q4_0 blocks of 32, each key vector dequantised in a
// register as dequantQ8Asm/dequantQ4Asm do (SXTL to int32, SCVTF, FMUL by
// the block's scale, all exact) and then accumulated as score3x4
// accumulates a float32 key: one accumulator per query and key (query i,
// key j in V(4i+j)), one VFMLA per 4 elements in element order from zero,
// the same FADDP tree and one FMUL by scale. So every score is bit for bit
// score3x4's over the dequantised key. A block is taken in two halves of
// 16 elements: the halves of the query blocks in V8–V11 and V12–V15, the
// key vectors in V16–V19. Each block's bytes are read once, exactly.
//
// Registers: R0/R1 the query rows, R3 the tile's first key row, R4 the
// output of query 0, R5 d, R6 keys left, R7 the output of query 1 (byte
// offset from R4), R8 the bits of scale, R9 the key row stride in bytes,
// R10–R13 the key rows of the tile, R14/R15 the query rows within the
// tile, R17 blocks left, R19 blocks per row, R20 the output of query 1,
// V20–V23 the four keys' block scales, V24/V25 the integers being widened,
// V26–V29 the Q4 bytes of the four keys' blocks, V30 0x0f and V31 8 in
// every byte (Q4), V19 scale at the end.

// QWIDEN widens the 16 int8 in V(x) (clobbered, as is V(t)) to float32 in
// V(o)..V(o+3), elements in order, times the scale in V(s): SXTL to int16
// and int32, SCVTF, FMUL, all exact as in DEQUANT32.
#define QWIDEN(x, t, o, s) \
	SXTL8(t, x); \
	SXTL8_2(x, x); \
	SXTL16(o, t); \
	SXTL16_2((o)+1, t); \
	SXTL16((o)+2, x); \
	SXTL16_2((o)+3, x); \
	SCVTF4(o, o); \
	SCVTF4((o)+1, (o)+1); \
	SCVTF4((o)+2, (o)+2); \
	SCVTF4((o)+3, (o)+3); \
	FMUL4(o, o, s); \
	FMUL4((o)+1, (o)+1, s); \
	FMUL4((o)+2, (o)+2, s); \
	FMUL4((o)+3, (o)+3, s)

// QKEY widens the 16 int8 in V24 to float32 in V16–V19, times the scale in
// V(s), and accumulates them with the query vectors V8–V11 into a0 and
// V12–V15 into a1.
#define QKEY(s, a0, a1) \
	QWIDEN(24, 25, 16, s); \
	VFMLA	V16.S4, V8.S4, a0.S4; \
	VFMLA	V17.S4, V9.S4, a0.S4; \
	VFMLA	V18.S4, V10.S4, a0.S4; \
	VFMLA	V19.S4, V11.S4, a0.S4; \
	VFMLA	V16.S4, V12.S4, a1.S4; \
	VFMLA	V17.S4, V13.S4, a1.S4; \
	VFMLA	V18.S4, V14.S4, a1.S4; \
	VFMLA	V19.S4, V15.S4, a1.S4

// QB8 sets V24 to the next 16 int8 of the Q8 key row k; QB4LO and QB4HI to
// the low or high nibbles of the Q4 bytes in r, minus 8.
#define QB8(k, r) VLD1.P 16(k), [V24.B16]
#define QB4LO(k, r) \
	VAND	V30.B16, r.B16, V24.B16; \
	VSUB	V31.B16, V24.B16, V24.B16
#define QB4HI(k, r) \
	VUSHR	$4, r.B16, V24.B16; \
	VSUB	V31.B16, V24.B16, V24.B16

// QLOAD8 loads nothing ahead (QB8 reads the integers); QLOAD4 loads the 16
// bytes of the four keys' Q4 blocks into V26–V29.
#define QLOAD8
#define QLOAD4 \
	VLD1.P	16(R10), [V26.B16]; \
	VLD1.P	16(R11), [V27.B16]; \
	VLD1.P	16(R12), [V28.B16]; \
	VLD1.P	16(R13), [V29.B16]

// QHALF accumulates the next 16 elements of the two queries and four keys,
// the keys' integers given by QB.
#define QHALF(QB) \
	VLD1.P	64(R14), [V8.S4, V9.S4, V10.S4, V11.S4]; \
	VLD1.P	64(R15), [V12.S4, V13.S4, V14.S4, V15.S4]; \
	QB(R10, V26); \
	QKEY(20, V0, V4); \
	QB(R11, V27); \
	QKEY(21, V1, V5); \
	QB(R12, V28); \
	QKEY(22, V2, V6); \
	QB(R13, V29); \
	QKEY(23, V3, V7)

// QARGS loads the arguments of the quantised score kernels, scale's bits
// into R8.
#define QARGS(q0, q1, keys, out, d, nk, o1, scale) \
	MOVD	q0, R0; \
	MOVD	q1, R1; \
	MOVD	keys, R3; \
	MOVD	out, R4; \
	MOVD	d, R5; \
	MOVD	nk, R6; \
	MOVD	o1, R7; \
	MOVWU	scale, R8

// SCORE2X4Q is the body of both kernels, for blocks of bb bytes: per tile
// the key rows 1–3 (repeating the last key past nk), the 8 accumulators
// zeroed, per block the four scales (VLD1R, FCVTL), LOAD and the two
// halves, then score3x4's FADDP trees, scaling and stores.
#define SCORE2X4Q(LOAD, QB0, QB1, bb) \
	LSL	$2, R7; \
	LSR	$5, R5, R19; \
	MOVD	$bb, R9; \
	MUL	R19, R9, R9; \
tile: \
	KEYROWS; \
	MOVD	R0, R14; \
	MOVD	R1, R15; \
	VEOR	V0.B16, V0.B16, V0.B16; \
	VEOR	V1.B16, V1.B16, V1.B16; \
	VEOR	V2.B16, V2.B16, V2.B16; \
	VEOR	V3.B16, V3.B16, V3.B16; \
	VEOR	V4.B16, V4.B16, V4.B16; \
	VEOR	V5.B16, V5.B16, V5.B16; \
	VEOR	V6.B16, V6.B16, V6.B16; \
	VEOR	V7.B16, V7.B16, V7.B16; \
	MOVD	R19, R17; \
block: \
	VLD1R.P	2(R10), [V20.H4]; \
	VLD1R.P	2(R11), [V21.H4]; \
	VLD1R.P	2(R12), [V22.H4]; \
	VLD1R.P	2(R13), [V23.H4]; \
	FCVTL(20, 20); \
	FCVTL(21, 21); \
	FCVTL(22, 22); \
	FCVTL(23, 23); \
	LOAD; \
	QHALF(QB0); \
	QHALF(QB1); \
	SUBS	$1, R17; \
	BNE	block; \
	FADDP4(0, 0, 1); \
	FADDP4(2, 2, 3); \
	FADDP4(0, 0, 2); \
	FADDP4(4, 4, 5); \
	FADDP4(6, 6, 7); \
	FADDP4(4, 4, 6); \
	VDUP	R8, V19.S4; \
	FMUL4(0, 0, 19); \
	FMUL4(4, 4, 19); \
	ADD	R7, R4, R20; \
	CMP	$4, R6; \
	BLT	partial; \
	VST1	[V0.S4], (R4); \
	VST1	[V4.S4], (R20); \
	ADD	$16, R4; \
	ADD	R9<<2, R3, R3; \
	SUBS	$4, R6; \
	BNE	tile; \
	RET; \
partial: \
	TBZ	$1, R6, partial1; \
	FMOVD.P	F0, 8(R4); \
	FMOVD.P	F4, 8(R20); \
	VEXT	$8, V0.B16, V0.B16, V0.B16; \
	VEXT	$8, V4.B16, V4.B16, V4.B16; \
partial1: \
	TBZ	$0, R6, done; \
	FMOVS	F0, (R4); \
	FMOVS	F4, (R20); \
done: \
	RET

// func score2x4Q8(q0, q1 *float32, keys *byte, out *float32, d, nk, o1 int, scale float32)
TEXT ·score2x4Q8(SB), NOSPLIT|NOFRAME, $0-60
	QARGS(q0+0(FP), q1+8(FP), keys+16(FP), out+24(FP), d+32(FP), nk+40(FP), o1+48(FP), scale+56(FP))
	SCORE2X4Q(QLOAD8, QB8, QB8, 34)

// func score2x4Q4(q0, q1 *float32, keys *byte, out *float32, d, nk, o1 int, scale float32)
TEXT ·score2x4Q4(SB), NOSPLIT|NOFRAME, $0-60
	QARGS(q0+0(FP), q1+8(FP), keys+16(FP), out+24(FP), d+32(FP), nk+40(FP), o1+48(FP), scale+56(FP))
	Q4CONSTS
	SCORE2X4Q(QLOAD4, QB4LO, QB4HI, 18)

// The fused quantised weighted sums: wsum1 and wsums4 over value rows stored
// in Q8_0 or Q4_0 blocks of 32, each value vector dequantised in registers
// as QKEY does (SXTL, SCVTF, FMUL by the block's scale, all exact) where
// wsum1/wsums4 load a float32 vector. The accumulators start from out and
// take one VFMLA per row and 4 columns, the rows in order, exactly as in
// WS1/WS4, so every output element is the same chain of fused
// multiply-adds, bit for bit, over the dequantised rows. Each row's block
// is read within its bytes only: the scale (VLD1R), then the integers.
//
// Registers: R0 p (row 0's weights), R1 pn, R2 p3, R3 n, R4 the current
// block of value row 0, R5 d, R6 out (row 0), R7 o3 (four rows) or out+64
// (one row), R8 the output row stride in bytes, R9–R11 the weights of rows
// 1–3, R12–R14 the outputs of rows 1–3, R15 blocks left, R16 (R17, R19, R20) the weight
// pointers of rows 0 (1–3) within a block, R21 the block of the current
// value row, R22 rows left, R23 the value row stride in bytes, R24 the
// block's integers, V16–V23 the dequantised values, V24/V25 the integers
// being widened, V26 the Q4 bytes, V30 0x0f and V31 8 in every byte (Q4).

// WQLOAD8 loads nothing ahead (QB8 reads the integers at R24); WQLOAD4
// loads the 16 Q4 bytes at R24 into V26 for QB4LO and QB4HI.
#define WQLOAD8
#define WQLOAD4 VLD1 (R24), [V26.B16]

// WS1Q is the body of wsum1Q8/wsum1Q4, for blocks of bb bytes: per block
// of 32 columns the accumulators V0–V7 from out, per value row the weight
// (V28), the scale (V29), LOAD, the halves QB0 (elements 0–15 into
// V16–V19) and QB1 (16–31 into V20–V23), and WS1's VFMLAs.
#define WS1Q(LOAD, QB0, QB1, bb) \
	LSR	$5, R5, R15; \
	MOVD	$bb, R23; \
	MUL	R15, R23, R23; \
block: \
	ADD	$64, R6, R7; \
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	VLD1	(R7), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	MOVD	R0, R16; \
	MOVD	R4, R21; \
	MOVD	R3, R22; \
row: \
	VLD1R	(R21), [V29.H4]; \
	ADD	$2, R21, R24; \
	ADD	R23, R21; \
	VLD1R.P	4(R16), [V28.S4]; \
	FCVTL(29, 29); \
	LOAD; \
	QB0(R24, V26); \
	QWIDEN(24, 25, 16, 29); \
	QB1(R24, V26); \
	QWIDEN(24, 25, 20, 29); \
	VFMLA	V16.S4, V28.S4, V0.S4; \
	VFMLA	V17.S4, V28.S4, V1.S4; \
	VFMLA	V18.S4, V28.S4, V2.S4; \
	VFMLA	V19.S4, V28.S4, V3.S4; \
	VFMLA	V20.S4, V28.S4, V4.S4; \
	VFMLA	V21.S4, V28.S4, V5.S4; \
	VFMLA	V22.S4, V28.S4, V6.S4; \
	VFMLA	V23.S4, V28.S4, V7.S4; \
	SUBS	$1, R22; \
	BNE	row; \
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6); \
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R6); \
	ADD	$bb, R4; \
	SUBS	$1, R15; \
	BNE	block; \
	RET

// WS1QARGS and WS4QARGS load the arguments of the one- and four-row
// kernels (the FP names passed in, as vet checks them against each TEXT).
#define WS1QARGS(p, n, vals, d, out) \
	MOVD	p, R0; \
	MOVD	n, R3; \
	MOVD	vals, R4; \
	MOVD	d, R5; \
	MOVD	out, R6
#define WS4QARGS(p, pn, p3, n, vals, d, out, o3) \
	MOVD	p, R0; \
	MOVD	pn, R1; \
	MOVD	p3, R2; \
	MOVD	n, R3; \
	MOVD	vals, R4; \
	MOVD	d, R5; \
	MOVD	out, R6; \
	MOVD	o3, R7

// func wsum1Q8(p *float32, n int, vals *byte, d int, out *float32)
TEXT ·wsum1Q8(SB), NOSPLIT|NOFRAME, $0-40
	WS1QARGS(p+0(FP), n+8(FP), vals+16(FP), d+24(FP), out+32(FP))
	WS1Q(WQLOAD8, QB8, QB8, 34)

// func wsum1Q4(p *float32, n int, vals *byte, d int, out *float32)
TEXT ·wsum1Q4(SB), NOSPLIT|NOFRAME, $0-40
	WS1QARGS(p+0(FP), n+8(FP), vals+16(FP), d+24(FP), out+32(FP))
	Q4CONSTS
	WS1Q(WQLOAD4, QB4LO, QB4HI, 18)

// WS4QHALF runs the value rows over 16 columns of the four output rows at
// R6, R12, R13, R14 (accumulators V0–V15, stored and advanced by 64 bytes
// at the end): per row the scale (V28), LOAD and QB from the integers at
// off bytes into the block, widened into V16–V19, WS4W and WS4FMA4 as in
// WS4.
#define WS4QHALF(LOAD, QB, off, label) \
	VLD1	(R6), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	VLD1	(R12), [V4.S4, V5.S4, V6.S4, V7.S4]; \
	VLD1	(R13), [V8.S4, V9.S4, V10.S4, V11.S4]; \
	VLD1	(R14), [V12.S4, V13.S4, V14.S4, V15.S4]; \
	WS4START; \
label: \
	VLD1R	(R21), [V28.H4]; \
	ADD	$off, R21, R24; \
	ADD	R23, R21; \
	FCVTL(28, 28); \
	LOAD; \
	QB(R24, V26); \
	QWIDEN(24, 25, 16, 28); \
	WS4W; \
	WS4FMA4; \
	SUBS	$1, R22; \
	BNE	label; \
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R6); \
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R12); \
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], 64(R13); \
	VST1.P	[V12.S4, V13.S4, V14.S4, V15.S4], 64(R14)

// WS4Q is the body of wsums4Q8/wsums4Q4, for blocks of bb bytes whose
// elements 16–31 come from the integers at off1 bytes into the block: the
// weight and output rows as WS4 sets them, then per block of 32 columns
// its two halves of 16 columns.
#define WS4Q(LOAD, QB0, QB1, off1, bb) \
	ADD	R1<<2, R0, R9; \
	ADD	R1<<2, R9, R10; \
	ADD	R2<<2, R0, R11; \
	LSL	$2, R5, R8; \
	ADD	R8, R6, R12; \
	ADD	R8, R12, R13; \
	ADD	R7<<2, R6, R14; \
	LSR	$5, R5, R15; \
	MOVD	$bb, R23; \
	MUL	R15, R23, R23; \
block: \
	WS4QHALF(LOAD, QB0, 2, lo); \
	WS4QHALF(LOAD, QB1, off1, hi); \
	ADD	$bb, R4; \
	SUBS	$1, R15; \
	BNE	block; \
	RET

// func wsums4Q8(p *float32, pn, p3, n int, vals *byte, d int, out *float32, o3 int)
TEXT ·wsums4Q8(SB), NOSPLIT|NOFRAME, $0-64
	WS4QARGS(p+0(FP), pn+8(FP), p3+16(FP), n+24(FP), vals+32(FP), d+40(FP), out+48(FP), o3+56(FP))
	WS4Q(WQLOAD8, QB8, QB8, 18, 34)

// func wsums4Q4(p *float32, pn, p3, n int, vals *byte, d int, out *float32, o3 int)
TEXT ·wsums4Q4(SB), NOSPLIT|NOFRAME, $0-64
	WS4QARGS(p+0(FP), pn+8(FP), p3+16(FP), n+24(FP), vals+32(FP), d+40(FP), out+48(FP), o3+56(FP))
	Q4CONSTS
	WS4Q(WQLOAD4, QB4LO, QB4HI, 2, 18)
