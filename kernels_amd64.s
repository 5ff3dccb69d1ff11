//go:build gc && !purego

#include "textflag.h"

// AVX2 + FMA + F16C kernels, the prototypes and semantics of kernels.go.
// The Go wrappers there validate lengths and split the work into bounded
// calls; these functions trust their arguments. Every function is a leaf with no frame and ends with VZEROUPPER
// so that SSE code after it pays no transition penalty.

// tailmask<>+32-4·r is an 8-lane mask whose first r lanes are set: the masked
// loads and stores of the last r < 8 elements of a row.
DATA tailmask<>+0(SB)/8, $-1
DATA tailmask<>+8(SB)/8, $-1
DATA tailmask<>+16(SB)/8, $-1
DATA tailmask<>+24(SB)/8, $-1
DATA tailmask<>+32(SB)/8, $0
DATA tailmask<>+40(SB)/8, $0
DATA tailmask<>+48(SB)/8, $0
DATA tailmask<>+56(SB)/8, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

#define ZERO8 \
	VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7
#define ZERO12 \
	ZERO8; \
	VXORPS Y8, Y8, Y8; VXORPS Y9, Y9, Y9; VXORPS Y10, Y10, Y10; VXORPS Y11, Y11, Y11

// FMA3 multiplies the key vector in Y15 by the three query vectors in
// Y12–Y14 into the accumulators of one key column.
#define FMA3(a0, a1, a2) \
	VFMADD231PS Y15, Y12, a0; VFMADD231PS Y15, Y13, a1; VFMADD231PS Y15, Y14, a2

// FMA3TWO is FMA3 for the two-query kernels: a2 is left alone.
#define FMA3TWO(a0, a1, a2) VFMADD231PS Y15, Y12, a0; VFMADD231PS Y15, Y13, a1

// The third query's steps of a score kernel, which ROW2 keeps in the
// three-query kernels (WITHROW2) and drops from the two-query ones (NOROW2).
#define LOADQ2 VMOVUPS (R10)(SI*4), Y14
#define REDUCEQ2 REDUCE4(Y8, Y9, Y10, Y11, X8, X9)
#define SCALEQ2 VMULPS X15, X8, X8
#define STOREQ2 VMOVUPS X8, (DI)(SI*4)
#define MSTOREQ2 VMASKMOVPS X8, X15, (DI)(SI*4)
#define WITHROW2(step) step
#define NOROW2(step)

// REDUCE4 leaves in the low lane xa of a the four horizontal sums
// [Σa, Σb, Σc, Σd]: three HADDs and one 128-bit fold instead of four
// separate reductions. b, c, d are clobbered.
#define REDUCE4(a, b, c, d, xa, xb) \
	VHADDPS b, a, a; VHADDPS d, c, c; VHADDPS c, a, a; \
	VEXTRACTF128 $1, a, xb; VADDPS xb, xa, xa

// REDUCESCALE2 sums the accumulators Y0–Y3 and Y4–Y7 into X0 and X4
// (REDUCE4) and multiplies both by the float32 SCALE, broadcast into S.
#define REDUCESCALE2(SCALE, S) \
	REDUCE4(Y0, Y1, Y2, Y3, X0, X1); \
	REDUCE4(Y4, Y5, Y6, Y7, X4, X5); \
	VBROADCASTSS SCALE, S; \
	VMULPS S, X0, X0; \
	VMULPS S, X4, X4

// The score kernels compute a tile of 3 queries × 4 keys at a time: 12
// accumulators, 3 query and 1 key register, so each 8-lane step issues 7
// loads for 12 FMAs and stays FMA-bound. Query and key pointers point at the
// end of the vectorised part of their rows and SI counts up from −d8 to 0.
//
// Register use: R8–R10 query rows, AX–DX the four key rows, SI the element
// index, DI the output of query 0, R12 the keys left, R13 = −d8, R14 the key
// row stride in bytes.

// SCORESETUP loads the score kernels' other arguments once the query rows
// are in R8…: key row 0, output, keys left, −d8 and the key row stride,
// with QEND moving the query rows (and AX the key row) to the end of their
// vectorised part, where SI counts up to.
#define SCORESETUP(K, OUT, NK, D, esz, esh, QEND) \
	MOVQ K, AX; \
	MOVQ OUT, DI; \
	MOVQ NK, R12; \
	MOVQ D, R13; \
	ANDQ $-8, R13; \
	QEND; \
	LEAQ (AX)(R13*esz), AX; \
	NEGQ R13; \
	MOVQ D, R14; \
	SHLQ $esh, R14
#define QEND3 LEAQ (R8)(R13*4), R8; LEAQ (R9)(R13*4), R9; LEAQ (R10)(R13*4), R10
#define QEND4 QEND3; LEAQ (R11)(R13*4), R11

// KEYROWS points BX, CX, DX at the key rows after AX, R14 bytes apart, the
// rows past the R12 keys left repeating the last one, so that a tile never
// reads past the keys.
#define KEYROWS \
	LEAQ (AX)(R14*1), BX; \
	LEAQ (BX)(R14*1), CX; \
	LEAQ (CX)(R14*1), DX; \
	CMPQ R12, $2; \
	CMOVQLT AX, BX; \
	CMPQ R12, $3; \
	CMOVQLT BX, CX; \
	CMPQ R12, $4; \
	CMOVQLT CX, DX

// KEYS_F32 and KEYS_F16 load a vector of key elements as float32, the second
// widening float16 with VCVTPH2PS.
// SCOREPF is how far ahead of the key vectors it loads, in bytes, a score
// kernel called with pf ≠ 0 prefetches: the first pass over a block of keys
// not yet in cache, in which the hardware prefetcher alone left the kernel
// waiting on memory (at d = 128, 4 KiB is two tiles of float32 keys ahead).
#define SCOREPF 4096

#define KEYS_F32(src, dst) VMOVUPS src, dst
#define KEYS_F16(src, dst) VCVTPH2PS src, dst

// TAILMASK sets Y to the mask of the last D mod 8 elements of a row (by way
// of R), or jumps to reduce if there are none; it clobbers SI.
#define TAILMASK(D, R, Y) \
	MOVQ D, SI; \
	ANDQ $7, SI; \
	JZ reduce; \
	SHLQ $2, SI; \
	LEAQ tailmask<>+32(SB), R; \
	SUBQ SI, R; \
	VMOVUPS (R), Y

// SCORETAIL2_F32 adds the last D mod 8 elements of float32 rows for queries
// 0 and 1, with masked loads that read nothing past the rows. Only Y12–Y15
// are free, so query 2 takes a second pass (SCORETAIL_F32). Float16 rows
// have no tail here (SCORETAIL_F16): F16C has no 16-bit masked load, so the
// Go wrapper adds it.
#define SCORETAIL2_F32(D) \
	TAILMASK(D, R11, Y15); \
	VMASKMOVPS (R8), Y15, Y12; \
	VMASKMOVPS (R9), Y15, Y13; \
	VMASKMOVPS (AX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y0; \
	VFMADD231PS Y14, Y13, Y4; \
	VMASKMOVPS (BX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y1; \
	VFMADD231PS Y14, Y13, Y5; \
	VMASKMOVPS (CX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y2; \
	VFMADD231PS Y14, Y13, Y6; \
	VMASKMOVPS (DX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y3; \
	VFMADD231PS Y14, Y13, Y7

// SCORETAIL_F32 is SCORETAIL2_F32 and the second pass, for query 2.
#define SCORETAIL_F32(D) \
	SCORETAIL2_F32(D); \
	VMASKMOVPS (R10), Y15, Y12; \
	VMASKMOVPS (AX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y8; \
	VMASKMOVPS (BX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y9; \
	VMASKMOVPS (CX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y10; \
	VMASKMOVPS (DX), Y15, Y14; \
	VFMADD231PS Y14, Y12, Y11

#define SCORETAIL_F16(D)
#define SCORETAIL2_F16(D)

// NOPF and KEYPF are a score loop's prefetch of the key vector at addr:
// none, or the one SCOREPF bytes on.
#define NOPF(addr)
#define KEYPF(addr) PREFETCHT0 SCOREPF addr

// KEYSTEP loads the key vector of row R into Y15, prefetches with PF and
// accumulates it into one key column's accumulators a0–a2.
#define KEYSTEP(KEYS, R, esz, PF, FMAQ, a0, a1, a2) \
	KEYS((R)(SI*esz), Y15); \
	PF((R)(SI*esz)); \
	FMAQ(a0, a1, a2)

// STEP3X4 is one 8-lane step of the three-query tile (two with NOROW2),
// prefetching each key row with PF.
#define STEP3X4(KEYS, esz, FMAQ, ROW2, PF) \
	VMOVUPS (R8)(SI*4), Y12; \
	VMOVUPS (R9)(SI*4), Y13; \
	ROW2(LOADQ2); \
	KEYSTEP(KEYS, AX, esz, PF, FMAQ, Y0, Y4, Y8); \
	KEYSTEP(KEYS, BX, esz, PF, FMAQ, Y1, Y5, Y9); \
	KEYSTEP(KEYS, CX, esz, PF, FMAQ, Y2, Y6, Y10); \
	KEYSTEP(KEYS, DX, esz, PF, FMAQ, Y3, Y7, Y11); \
	ADDQ $8, SI

// SCORELOOPS runs STEP over the vector steps of a tile's rows (SI from
// −d8 up to 0), in the loop that prefetches the keys when PF ≠ 0 and in the
// one that does not otherwise, then falls through to the tile's tail.
#define SCORELOOPS(STEP, KEYS, esz, FMAQ, ROW2, PF) \
	MOVQ R13, SI; \
	TESTQ SI, SI; \
	JZ tail; \
	CMPQ PF, $0; \
	JNE looppf; \
	PCALIGN $32; \
loop: \
	STEP(KEYS, esz, FMAQ, ROW2, NOPF); \
	JNZ loop; \
	JMP tail; \
	PCALIGN $32; \
looppf: \
	STEP(KEYS, esz, FMAQ, ROW2, KEYPF); \
	JNZ looppf

// SCORE3X4 is the body of both score kernels, for keys of esz = 1 << esh
// bytes; Q0 … SCALE are the arguments. Per
// tile: key rows 1–3, which past the last key repeat the last one (their
// duplicate sums are never stored); the 12 accumulators over the vector
// steps and the tail; the horizontal sums, scaled; four scores per query
// stored, or for 1–3 keys left only their lanes.
#define SCORE3X4(KEYS, esz, esh, TAIL, FMAQ, ROW2, Q0, Q1, Q2, K, OUT, D, NK, O1, O2, SCALE, PF) \
	MOVQ Q0, R8; \
	MOVQ Q1, R9; \
	MOVQ Q2, R10; \
	SCORESETUP(K, OUT, NK, D, esz, esh, QEND3); \
group: \
	KEYROWS; \
	ZERO12; \
	SCORELOOPS(STEP3X4, KEYS, esz, FMAQ, ROW2, PF); \
tail: \
	TAIL(D); \
reduce: \
	REDUCESCALE2(SCALE, X15); \
	ROW2(REDUCEQ2); \
	ROW2(SCALEQ2); \
	CMPQ R12, $4; \
	JLT partial; \
	VMOVUPS X0, (DI); \
	MOVQ O1, SI; \
	VMOVUPS X4, (DI)(SI*4); \
	MOVQ O2, SI; \
	ROW2(STOREQ2); \
	ADDQ $16, DI; \
	LEAQ (AX)(R14*4), AX; \
	SUBQ $4, R12; \
	JNZ group; \
	VZEROUPPER; \
	RET; \
partial: \
	MOVQ R12, SI; \
	SHLQ $2, SI; \
	LEAQ tailmask<>+32(SB), R11; \
	SUBQ SI, R11; \
	VMOVUPS (R11), X15; \
	VMASKMOVPS X0, X15, (DI); \
	MOVQ O1, SI; \
	VMASKMOVPS X4, X15, (DI)(SI*4); \
	MOVQ O2, SI; \
	ROW2(MSTOREQ2); \
	VZEROUPPER; \
	RET

// func score3x4(q0, q1, q2, keys, out *float32, d, nk, o1, o2 int, scale float32, pf int)
TEXT ·score3x4(SB), NOSPLIT, $0-88
	SCORE3X4(KEYS_F32, 4, 2, SCORETAIL_F32, FMA3, WITHROW2, q0+0(FP), q1+8(FP), q2+16(FP), keys+24(FP), out+32(FP), d+40(FP), nk+48(FP), o1+56(FP), o2+64(FP), scale+72(FP), pf+80(FP))

// func score3x4F16(q0, q1, q2 *float32, keys *uint16, out *float32, d, nk, o1, o2 int, scale float32, pf int)
TEXT ·score3x4F16(SB), NOSPLIT, $0-88
	SCORE3X4(KEYS_F16, 2, 1, SCORETAIL_F16, FMA3, WITHROW2, q0+0(FP), q1+8(FP), q2+16(FP), keys+24(FP), out+32(FP), d+40(FP), nk+48(FP), o1+56(FP), o2+64(FP), scale+72(FP), pf+80(FP))

// func score2x4(q0, q1, keys, out *float32, d, nk, o1 int, scale float32, pf int)
TEXT ·score2x4(SB), NOSPLIT, $0-72
	SCORE3X4(KEYS_F32, 4, 2, SCORETAIL2_F32, FMA3TWO, NOROW2, q0+0(FP), q1+8(FP), q1+8(FP), keys+16(FP), out+24(FP), d+32(FP), nk+40(FP), o1+48(FP), o1+48(FP), scale+56(FP), pf+64(FP))

// func score2x4F16(q0, q1 *float32, keys *uint16, out *float32, d, nk, o1 int, scale float32, pf int)
TEXT ·score2x4F16(SB), NOSPLIT, $0-72
	SCORE3X4(KEYS_F16, 2, 1, SCORETAIL2_F16, FMA3TWO, NOROW2, q0+0(FP), q1+8(FP), q1+8(FP), keys+16(FP), out+24(FP), d+32(FP), nk+40(FP), o1+48(FP), o1+48(FP), scale+56(FP), pf+64(FP))

// The four-query score kernels take a tile of 4 queries × 2 keys: 8
// accumulators (Y0 = q0·k0, Y1 = q0·k1, Y2 = q1·k0, …), 4 query and 2 key
// registers, so a group of four query heads scores a block of keys in one
// pass, each key loaded once (a group of three and one would pass twice).
// Every score is the same sequence of operations as in score3x4: one chain
// of fused multiply-adds per query and key, REDUCE4's tree, one product
// with scale. Register use: R8–R11 the query rows, AX and BX the two key
// rows (BX repeats AX for a last single key), CX the tail mask, DX the
// output offsets; the rest as in SCORE3X4.

// FMA4X2 multiplies the key vectors in Y14, Y15 by the query vectors in
// Y8–Y11 into the tile's accumulators.
#define FMA4X2 \
	VFMADD231PS Y14, Y8, Y0; VFMADD231PS Y15, Y8, Y1; \
	VFMADD231PS Y14, Y9, Y2; VFMADD231PS Y15, Y9, Y3; \
	VFMADD231PS Y14, Y10, Y4; VFMADD231PS Y15, Y10, Y5; \
	VFMADD231PS Y14, Y11, Y6; VFMADD231PS Y15, Y11, Y7

// LOADQ4 loads the four query vectors at element index SI.
#define LOADQ4 \
	VMOVUPS (R8)(SI*4), Y8; VMOVUPS (R9)(SI*4), Y9; \
	VMOVUPS (R10)(SI*4), Y10; VMOVUPS (R11)(SI*4), Y11

// SCORETAIL4_F32 adds the last D mod 8 elements of float32 rows through a
// mask in Y12; SCORETAIL4_F16 leaves them to the Go wrapper, as
// SCORETAIL_F16 does.
#define SCORETAIL4_F32(D) \
	TAILMASK(D, CX, Y12); \
	VMASKMOVPS (R8), Y12, Y8; \
	VMASKMOVPS (R9), Y12, Y9; \
	VMASKMOVPS (R10), Y12, Y10; \
	VMASKMOVPS (R11), Y12, Y11; \
	VMASKMOVPS (AX), Y12, Y14; \
	VMASKMOVPS (BX), Y12, Y15; \
	FMA4X2

#define SCORETAIL4_F16(D)

// STEP4X2 is one 8-lane step of the four-query tile, its arguments
// STEP3X4's (FMAQ is FMA4X2, which takes none; ROW2 is unused).
#define STEP4X2(KEYS, esz, FMAQ, ROW2, PF) \
	LOADQ4; \
	KEYS((AX)(SI*esz), Y14); \
	PF((AX)(SI*esz)); \
	KEYS((BX)(SI*esz), Y15); \
	PF((BX)(SI*esz)); \
	FMAQ; \
	ADDQ $8, SI

// SCORE4X2 is the body of both four-query kernels, for keys of esz = 1 << esh
// bytes; Q0 … PF are the arguments.
#define SCORE4X2(KEYS, esz, esh, TAIL, Q0, Q1, Q2, Q3, K, OUT, D, NK, O1, O2, O3, SCALE, PF) \
	MOVQ Q0, R8; \
	MOVQ Q1, R9; \
	MOVQ Q2, R10; \
	MOVQ Q3, R11; \
	SCORESETUP(K, OUT, NK, D, esz, esh, QEND4); \
group: \
	LEAQ (AX)(R14*1), BX; \
	CMPQ R12, $2; \
	CMOVQLT AX, BX; \
	ZERO8; \
	SCORELOOPS(STEP4X2, KEYS, esz, FMA4X2, NOROW2, PF); \
tail: \
	TAIL(D); \
reduce: \
	REDUCESCALE2(SCALE, X15); \
	CMPQ R12, $2; \
	JLT single; \
	VMOVLPS X0, (DI); \
	MOVQ O1, DX; \
	VMOVHPS X0, (DI)(DX*4); \
	MOVQ O2, DX; \
	VMOVLPS X4, (DI)(DX*4); \
	MOVQ O3, DX; \
	VMOVHPS X4, (DI)(DX*4); \
	ADDQ $8, DI; \
	LEAQ (AX)(R14*2), AX; \
	SUBQ $2, R12; \
	JNZ group; \
	VZEROUPPER; \
	RET; \
single: \
	VMOVSS X0, (DI); \
	MOVQ O1, DX; \
	VEXTRACTPS $2, X0, (DI)(DX*4); \
	MOVQ O2, DX; \
	VMOVSS X4, (DI)(DX*4); \
	MOVQ O3, DX; \
	VEXTRACTPS $2, X4, (DI)(DX*4); \
	VZEROUPPER; \
	RET

// func score4x2(q0, q1, q2, q3, keys, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int)
TEXT ·score4x2(SB), NOSPLIT, $0-104
	SCORE4X2(KEYS_F32, 4, 2, SCORETAIL4_F32, q0+0(FP), q1+8(FP), q2+16(FP), q3+24(FP), keys+32(FP), out+40(FP), d+48(FP), nk+56(FP), o1+64(FP), o2+72(FP), o3+80(FP), scale+88(FP), pf+96(FP))

// func score4x2F16(q0, q1, q2, q3 *float32, keys *uint16, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int)
TEXT ·score4x2F16(SB), NOSPLIT, $0-104
	SCORE4X2(KEYS_F16, 2, 1, SCORETAIL4_F16, q0+0(FP), q1+8(FP), q2+16(FP), q3+24(FP), keys+32(FP), out+40(FP), d+48(FP), nk+56(FP), o1+64(FP), o2+72(FP), o3+80(FP), scale+88(FP), pf+96(FP))

// The remaining kernels process whole vectors of 8; the Go wrappers handle
// the last n mod 8 elements in scalar code, except expSubAsm and axpyAsm,
// which mask.

// RED4 is the loop of the reductions (max and the l1 norms): the CX
// elements of esz bytes at SI, a positive multiple of 8, folded into the
// accumulators Y0–Y3, 32 at a time, then 8. LOAD(off, reg) sets reg to the
// 8 elements at element offset off, FOLD(v, acc) folds v into acc.
#define RED4(LOAD, FOLD, esz) \
	CMPQ CX, $32; \
	JLT red8; \
	PCALIGN $32; \
red32: \
	LOAD(0, Y4); \
	LOAD(8, Y5); \
	LOAD(16, Y6); \
	LOAD(24, Y7); \
	FOLD(Y4, Y0); \
	FOLD(Y5, Y1); \
	FOLD(Y6, Y2); \
	FOLD(Y7, Y3); \
	ADDQ $(32*esz), SI; \
	SUBQ $32, CX; \
	CMPQ CX, $32; \
	JGE red32; \
	TESTQ CX, CX; \
	JZ reddone; \
red8: \
	LOAD(0, Y4); \
	FOLD(Y4, Y0); \
	ADDQ $(8*esz), SI; \
	SUBQ $8, CX; \
	JNZ red8; \
reddone:

// MAXLOAD and MAXFOLD are maxAsm's LOAD and FOLD. VMAXPS returns its second
// source when either is NaN, so keeping the running maximum as the second
// source skips NaNs exactly as maxGeneric's v > m does.
#define MAXLOAD(off, reg) VMOVUPS (off*4)(SI), reg
#define MAXFOLD(v, acc) VMAXPS acc, v, acc

// func maxAsm(x *float32, n int) float32
//
// n is a positive multiple of 8; the lanes start at −Inf.
TEXT ·maxAsm(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VPCMPEQD Y0, Y0, Y0
	VPSLLD $23, Y0, Y0 // 0xff800000: −Inf
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
	RED4(MAXLOAD, MAXFOLD, 4)
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VMAXPS X1, X0, X0
	VPSHUFD $1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// Constants of the float32 exp, broadcast from here. The polynomial and the
// two-part ln 2 are Cephes expf's: exp(r) ≈ 1 + r + r²·P(r) on
// |r| ≤ ln2/2, and C1 has 9 significant bits so that n·C1 and t − n·C1 are
// exact for |n| ≤ 150.
DATA expconst<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expconst<>+4(SB)/4, $0x3f318000  // C1 = 0.693359375
DATA expconst<>+8(SB)/4, $0xb95e8083  // C2 = −2.12194440e−4; C1 + C2 ≈ ln 2
DATA expconst<>+12(SB)/4, $0x39506967 // P0 = 1.9875691500e−4
DATA expconst<>+16(SB)/4, $0x3ab743ce // P1 = 1.3981999507e−3
DATA expconst<>+20(SB)/4, $0x3c088908 // P2 = 8.3334519073e−3
DATA expconst<>+24(SB)/4, $0x3d2aa9c1 // P3 = 4.1665795894e−2
DATA expconst<>+28(SB)/4, $0x3e2aaaaa // P4 = 1.6666665459e−1
DATA expconst<>+32(SB)/4, $0x3f000000 // P5 = 0.5
DATA expconst<>+36(SB)/4, $0xc2d00000 // −104: exp rounds to 0 below
DATA expconst<>+40(SB)/4, $0x42b20000 // 89: exp overflows above
DATA expconst<>+44(SB)/4, $0x3f800000 // 1
DATA expconst<>+48(SB)/4, $127        // exponent bias
GLOBL expconst<>(SB), RODATA|NOPTR, $52

// EXP sets Y3 = exp(Y0 − m) for Y0 = x, with Y10 = m, Y11 = C2, Y12 = C1,
// Y13 = 89, Y14 = −104, Y15 = log2(e), Y8 = 127; Y1, Y2, Y4, Y5 are
// clobbered.
//
// t = x − m is clamped to [−104, 89], NaN passing through (MAXPS and MINPS
// return their second source for a NaN). n = round(t·log2 e) and
// r = t − n·ln 2 in two FMA steps, then exp(t) = P(r)·2^⌊n/2⌋·2^(n−⌊n/2⌋): the
// split keeps both factors normal for n ∈ [−150, 128], so results round
// correctly into the subnormal range and to +Inf above FLT_MAX.
#define EXP \
	VSUBPS Y10, Y0, Y0; \
	VMAXPS Y0, Y14, Y0; \
	VMINPS Y0, Y13, Y0; \
	VMULPS Y15, Y0, Y1; \
	VROUNDPS $0, Y1, Y1; \
	VMOVAPS Y0, Y2; \
	VFNMADD231PS Y12, Y1, Y2; \
	VFNMADD231PS Y11, Y1, Y2; \
	VBROADCASTSS expconst<>+12(SB), Y3; \
	VBROADCASTSS expconst<>+16(SB), Y4; \
	VFMADD213PS Y4, Y2, Y3; \
	VBROADCASTSS expconst<>+20(SB), Y4; \
	VFMADD213PS Y4, Y2, Y3; \
	VBROADCASTSS expconst<>+24(SB), Y4; \
	VFMADD213PS Y4, Y2, Y3; \
	VBROADCASTSS expconst<>+28(SB), Y4; \
	VFMADD213PS Y4, Y2, Y3; \
	VBROADCASTSS expconst<>+32(SB), Y4; \
	VFMADD213PS Y4, Y2, Y3; \
	VMULPS Y2, Y2, Y4; \
	VFMADD213PS Y2, Y4, Y3; \
	VBROADCASTSS expconst<>+44(SB), Y4; \
	VADDPS Y4, Y3, Y3; \
	VCVTPS2DQ Y1, Y1; \
	VPSRAD $1, Y1, Y5; \
	VPSUBD Y5, Y1, Y1; \
	VPADDD Y8, Y5, Y5; \
	VPADDD Y8, Y1, Y1; \
	VPSLLD $23, Y5, Y5; \
	VPSLLD $23, Y1, Y1; \
	VMULPS Y5, Y3, Y3; \
	VMULPS Y1, Y3, Y3

// func expSubAsm(x *float32, n int, m float32) float32
TEXT ·expSubAsm(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y10
	VBROADCASTSS expconst<>+8(SB), Y11
	VBROADCASTSS expconst<>+4(SB), Y12
	VBROADCASTSS expconst<>+40(SB), Y13
	VBROADCASTSS expconst<>+36(SB), Y14
	VBROADCASTSS expconst<>+0(SB), Y15
	VPBROADCASTD expconst<>+48(SB), Y8
	VXORPS Y9, Y9, Y9
	CMPQ CX, $8
	JLT exptail

	PCALIGN $32
exploop:
	VMOVUPS (SI), Y0
	EXP
	VMOVUPS Y3, (SI)
	VADDPS Y3, Y9, Y9
	ADDQ $32, SI
	SUBQ $8, CX
	CMPQ CX, $8
	JGE exploop

exptail:
	// The last n mod 8 elements through a mask; masked-off lanes are
	// zeroed before the sum and never stored.
	TESTQ CX, CX
	JZ expdone
	SHLQ $2, CX
	LEAQ tailmask<>+32(SB), DX
	SUBQ CX, DX
	VMOVUPS (DX), Y7
	VMASKMOVPS (SI), Y7, Y0
	EXP
	VANDPS Y7, Y3, Y3
	VMASKMOVPS Y3, Y7, (SI)
	VADDPS Y3, Y9, Y9

expdone:
	VEXTRACTF128 $1, Y9, X0
	VADDPS X0, X9, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func axpyAsm(a float32, x, y *float32, n int)
//
// n ≥ 1. One rounding per element (FMA), in the masked tail too.
TEXT ·axpyAsm(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	CMPQ CX, $32
	JLT axpy8

	PCALIGN $32
axpy32:
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VMOVUPS 64(DI), Y3
	VMOVUPS 96(DI), Y4
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VFMADD231PS 64(SI), Y0, Y3
	VFMADD231PS 96(SI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE axpy32

axpy8:
	CMPQ CX, $8
	JLT axpytail
	VMOVUPS (DI), Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP axpy8

axpytail:
	// The last n mod 8 elements through a mask: the same FMA on the
	// lanes that are loaded and stored, nothing read or written past y.
	TESTQ CX, CX
	JZ axpydone
	SHLQ $2, CX
	LEAQ tailmask<>+32(SB), DX
	SUBQ CX, DX
	VMOVUPS (DX), Y7
	VMASKMOVPS (SI), Y7, Y2
	VMASKMOVPS (DI), Y7, Y1
	VFMADD231PS Y2, Y0, Y1
	VMASKMOVPS Y1, Y7, (DI)

axpydone:
	VZEROUPPER
	RET

// The weighted sums walk the n rows once per block of output columns, the
// block's sums held in registers: 64 columns (8 accumulators, so each
// accumulator's FMA chain has 4 cycles, its latency, between updates), then
// 32, then 8. The Go wrapper sizes n so that the rows stay in L1 from the
// first column block to the last. out is added to, not overwritten.
//
// Register use: R8 out, R9 the column in row 0, R10 columns left, R11 the
// row stride in bytes; SI walks p, DI the rows, CX counts rows.

// WFMA_F32 and WFMA_F16 add the weight in Y8 times the 8 values at element
// offset off of the row at DI to acc: a fused load for float32, a
// VCVTPH2PS widening into tmp for float16.
#define WFMA_F32(off, tmp, acc) VFMADD231PS (off*4)(DI), Y8, acc
#define WFMA_F16(off, tmp, acc) VCVTPH2PS (off*2)(DI), tmp; VFMADD231PS tmp, Y8, acc

// WS1ROWS runs the rows of one column block: for each row, broadcast its
// weight, then FMAS (the block's WFMAs).
#define WS1ROWS(label, FMAS, P, N) \
	MOVQ P, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
	PCALIGN $32; \
label: \
	VBROADCASTSS (SI), Y8; \
	FMAS; \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ label

// WS1 is the body of wsum1 for values of esz = 1 << esh bytes added by WFMA;
// P … W are the arguments.
#define WS1(WFMA, esz, esh, P, N, VALS, STRIDE, OUT, W) \
	MOVQ OUT, R8; \
	MOVQ VALS, R9; \
	MOVQ W, R10; \
	MOVQ STRIDE, R11; \
	SHLQ $esh, R11; \
ws64: \
	CMPQ R10, $64; \
	JLT ws32; \
	VMOVUPS (R8), Y0; \
	VMOVUPS 32(R8), Y1; \
	VMOVUPS 64(R8), Y2; \
	VMOVUPS 96(R8), Y3; \
	VMOVUPS 128(R8), Y4; \
	VMOVUPS 160(R8), Y5; \
	VMOVUPS 192(R8), Y6; \
	VMOVUPS 224(R8), Y7; \
	WS1ROWS(ws64row, WFMA(0, Y9, Y0); WFMA(8, Y10, Y1); WFMA(16, Y11, Y2); WFMA(24, Y12, Y3); WFMA(32, Y9, Y4); WFMA(40, Y10, Y5); WFMA(48, Y11, Y6); WFMA(56, Y12, Y7), P, N); \
	VMOVUPS Y0, (R8); \
	VMOVUPS Y1, 32(R8); \
	VMOVUPS Y2, 64(R8); \
	VMOVUPS Y3, 96(R8); \
	VMOVUPS Y4, 128(R8); \
	VMOVUPS Y5, 160(R8); \
	VMOVUPS Y6, 192(R8); \
	VMOVUPS Y7, 224(R8); \
	ADDQ $256, R8; \
	ADDQ $(64*esz), R9; \
	SUBQ $64, R10; \
	JMP ws64; \
ws32: \
	CMPQ R10, $32; \
	JLT ws8; \
	VMOVUPS (R8), Y0; \
	VMOVUPS 32(R8), Y1; \
	VMOVUPS 64(R8), Y2; \
	VMOVUPS 96(R8), Y3; \
	WS1ROWS(ws32row, WFMA(0, Y9, Y0); WFMA(8, Y10, Y1); WFMA(16, Y11, Y2); WFMA(24, Y12, Y3), P, N); \
	VMOVUPS Y0, (R8); \
	VMOVUPS Y1, 32(R8); \
	VMOVUPS Y2, 64(R8); \
	VMOVUPS Y3, 96(R8); \
	ADDQ $128, R8; \
	ADDQ $(32*esz), R9; \
	SUBQ $32, R10; \
ws8: \
	TESTQ R10, R10; \
	JZ wsdone; \
	VMOVUPS (R8), Y0; \
	WS1ROWS(ws8row, WFMA(0, Y9, Y0), P, N); \
	VMOVUPS Y0, (R8); \
	ADDQ $32, R8; \
	ADDQ $(8*esz), R9; \
	SUBQ $8, R10; \
	JMP ws8; \
wsdone: \
	VZEROUPPER; \
	RET

// func wsum1(p *float32, n int, vals *float32, stride int, out *float32, w int)
//
// For c < w (a positive multiple of 8): out[c] += Σ_{i<n} p[i]·vals[i·stride+c]; n ≥ 1.
TEXT ·wsum1(SB), NOSPLIT, $0-48
	WS1(WFMA_F32, 4, 2, p+0(FP), n+8(FP), vals+16(FP), stride+24(FP), out+32(FP), w+40(FP))

// func wsum1F16(p *float32, n int, vals *uint16, stride int, out *float32, w int)
//
// wsum1 over float16 rows, widened by VCVTPH2PS as they are read.
TEXT ·wsum1F16(SB), NOSPLIT, $0-48
	WS1(WFMA_F16, 2, 1, p+0(FP), n+8(FP), vals+16(FP), stride+24(FP), out+32(FP), w+40(FP))

// ABSMASK sets Y15 to 0x7fffffff in every lane: AND clears the sign.
#define ABSMASK \
	VPCMPEQD Y15, Y15, Y15; \
	VPSRLD $1, Y15, Y15

// HSUM4 folds the accumulators Y0–Y3 into X0[0].
#define HSUM4 \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VHADDPS X0, X0, X0; \
	VHADDPS X0, X0, X0

// L1ABS_F32 and L1ABS_F16 are the l1 norms' LOAD: |x| for the 8 elements
// at element offset off of SI, float16 widened first; L1ADD is their FOLD.
#define L1ABS_F32(off, reg) VANDPS (off*4)(SI), Y15, reg
#define L1ABS_F16(off, reg) VCVTPH2PS (off*2)(SI), reg; VANDPS reg, Y15, reg
#define L1ADD(v, acc) VADDPS v, acc, acc

// NORM1 is the body of the l1 norms of x (elements of esz bytes) and n, the
// sum into SUM.
#define NORM1(L1ABS, esz, X, N, SUM) \
	MOVQ X, SI; \
	MOVQ N, CX; \
	ABSMASK; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	RED4(L1ABS, L1ADD, esz); \
	HSUM4; \
	VMOVSS X0, SUM; \
	VZEROUPPER; \
	RET

// func l1NormAsm(x *float32, n int) float32
TEXT ·l1NormAsm(SB), NOSPLIT, $0-20
	NORM1(L1ABS_F32, 4, x+0(FP), n+8(FP), ret+16(FP))

// func l1NormF16Asm(x *uint16, n int) float32
TEXT ·l1NormF16Asm(SB), NOSPLIT, $0-20
	NORM1(L1ABS_F16, 2, x+0(FP), n+8(FP), ret+16(FP))

// func widenAsm(dst *float32, src *uint16, n int)
//
// n is a positive multiple of 8. VCVTPH2PS is exact, subnormals included
// (it ignores MXCSR.DAZ), and quiets NaNs keeping their payload.
TEXT ·widenAsm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	CMPQ CX, $32
	JLT widen8

	PCALIGN $32
widen32:
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VCVTPH2PS 32(SI), Y2
	VCVTPH2PS 48(SI), Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE widen32
	TESTQ CX, CX
	JZ widendone

widen8:
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ widen8

widendone:
	VZEROUPPER
	RET

// func narrowAsm(dst *uint16, src *float32, n int)
//
// n is a positive multiple of 8. Immediate 0 of VCVTPS2PH: bits 1:0 = 00
// round to nearest even, bit 2 = 0 take the rounding mode from the
// immediate rather than MXCSR.RC. Results are not flushed to zero (FTZ does
// not apply to VCVTPS2PH), NaNs are quieted keeping the top payload bits.
TEXT ·narrowAsm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	CMPQ CX, $32
	JLT narrow8

	PCALIGN $32
narrow32:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, 16(DI)
	VCVTPS2PH $0, Y2, 32(DI)
	VCVTPS2PH $0, Y3, 48(DI)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE narrow32
	TESTQ CX, CX
	JZ narrowdone

narrow8:
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JNZ narrow8

narrowdone:
	VZEROUPPER
	RET

// The finiteness checks of Append. Each lane keeps the largest exponent
// field (x AND the exponent mask, VPMAXUD/VPMAXUW) over its elements, two
// operations per vector on ports the loads and stores leave free; it is all
// ones iff some element of the lane is Inf or NaN. At the end one compare
// and VPTEST set the result's top bit iff some lane is, with no horizontal
// fold to wait for.

// func copyCheckAsm(dst, src *float32, n int) uint32
//
// n is a positive multiple of 8: 32 elements a step, then 8.
TEXT ·copyCheckAsm(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7f800000, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	CMPQ CX, $32
	JLT cc8

	PCALIGN $32
cc32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	VPAND Y15, Y4, Y4
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPAND Y15, Y7, Y7
	VPMAXUD Y4, Y0, Y0
	VPMAXUD Y5, Y1, Y1
	VPMAXUD Y6, Y2, Y2
	VPMAXUD Y7, Y3, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE cc32
	TESTQ CX, CX
	JZ ccfold

cc8:
	VMOVUPS (SI), Y4
	VMOVUPS Y4, (DI)
	VPAND Y15, Y4, Y4
	VPMAXUD Y4, Y0, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ cc8

ccfold:
	VPMAXUD Y1, Y0, Y0
	VPMAXUD Y3, Y2, Y2
	VPMAXUD Y2, Y0, Y0
	VPCMPEQD Y15, Y0, Y0
	XORL AX, AX
	VPTEST Y0, Y0
	SETNE AX
	SHLL $31, AX
	MOVL AX, ret+24(FP)
	VZEROUPPER
	RET

// func checkF16Asm(x *uint16, n int) uint16
//
// n is a positive multiple of 8: 64 elements a step, then 16, then 8.
TEXT ·checkF16Asm(SB), NOSPLIT, $0-18
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0x7c00, AX
	MOVQ AX, X15
	VPBROADCASTW X15, Y15
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	CMPQ CX, $64
	JLT cf16

	PCALIGN $32
cf64:
	VPAND (SI), Y15, Y4
	VPAND 32(SI), Y15, Y5
	VPAND 64(SI), Y15, Y6
	VPAND 96(SI), Y15, Y7
	VPMAXUW Y4, Y0, Y0
	VPMAXUW Y5, Y1, Y1
	VPMAXUW Y6, Y2, Y2
	VPMAXUW Y7, Y3, Y3
	ADDQ $128, SI
	SUBQ $64, CX
	CMPQ CX, $64
	JGE cf64

cf16:
	CMPQ CX, $16
	JLT cf8
	VPAND (SI), Y15, Y4
	VPMAXUW Y4, Y0, Y0
	ADDQ $32, SI
	SUBQ $16, CX
	JMP cf16

cf8:
	TESTQ CX, CX
	JZ cffold
	VPAND (SI), X15, X4 // zeroes the upper half of Y4
	VPMAXUW Y4, Y1, Y1

cffold:
	VPMAXUW Y1, Y0, Y0
	VPMAXUW Y3, Y2, Y2
	VPMAXUW Y2, Y0, Y0
	VPCMPEQW Y15, Y0, Y0
	XORL AX, AX
	VPTEST Y0, Y0
	SETNE AX
	SHLL $15, AX
	MOVW AX, ret+16(FP)
	VZEROUPPER
	RET

// func fmaPeak(n int)
//
// The FMA roofline for the benchmarks, not a kernel: n iterations of 12
// independent VFMADD231PS (192 flops), 12 accumulators being more than the
// FMA latency × throughput product (4 × 2) of current cores.
TEXT ·fmaPeak(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	ZERO12
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	PCALIGN $32
peakloop:
	VFMADD231PS Y15, Y14, Y0
	VFMADD231PS Y15, Y14, Y1
	VFMADD231PS Y15, Y14, Y2
	VFMADD231PS Y15, Y14, Y3
	VFMADD231PS Y15, Y14, Y4
	VFMADD231PS Y15, Y14, Y5
	VFMADD231PS Y15, Y14, Y6
	VFMADD231PS Y15, Y14, Y7
	VFMADD231PS Y15, Y14, Y8
	VFMADD231PS Y15, Y14, Y9
	VFMADD231PS Y15, Y14, Y10
	VFMADD231PS Y15, Y14, Y11
	DECQ CX
	JNZ peakloop
	VZEROUPPER
	RET

// COPY256 copies 256 bytes from SI to DI: eight loads, then eight stores
// with ST (VMOVUPS, or VMOVNTDQ for aligned non-temporal stores).
#define COPY256(ST) \
	VMOVDQU (SI), Y0; \
	VMOVDQU 32(SI), Y1; \
	VMOVDQU 64(SI), Y2; \
	VMOVDQU 96(SI), Y3; \
	VMOVDQU 128(SI), Y4; \
	VMOVDQU 160(SI), Y5; \
	VMOVDQU 192(SI), Y6; \
	VMOVDQU 224(SI), Y7; \
	ST Y0, (DI); \
	ST Y1, 32(DI); \
	ST Y2, 64(DI); \
	ST Y3, 96(DI); \
	ST Y4, 128(DI); \
	ST Y5, 160(DI); \
	ST Y6, 192(DI); \
	ST Y7, 224(DI)

// func gatherAsm(dst, src unsafe.Pointer, idx *int32, n, rowBytes, nt int)
//
// Copies row idx[r] of src to row r of dst for r < n, rows of rowBytes ≥ 32
// bytes: 128 bytes per step (four loads, then four stores) for rows of 512
// bytes or more, 256 per step for shorter ones, then 32, then one last
// vector ending at the row end, which may overlap bytes already copied.
// The split is measured: with 512-byte rows from every other row of an L2
// resident source, the 128-byte step runs at 88 % of copy against 75-82 %
// for the 256-byte one; with 256-byte rows the 256-byte step is faster. That is safe in place too:
// with strictly increasing idx, source row idx[r] ≥ r is either row r itself
// or a row not yet written.
//
// nt ≠ 0 asks for non-temporal stores, which the Go wrapper does only for a
// large destination apart from src: they write whole lines to memory
// without first reading them for ownership and without evicting the source
// from the caches, as runtime·memmove does for copies of 1 MiB and more.
// VMOVNTDQ needs 32-byte aligned addresses, so they are used only when dst
// and rowBytes are multiples of 32 (every row then starts aligned); the
// SFENCE orders them before whatever the caller stores next.
TEXT ·gatherAsm(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), R8
	MOVQ idx+16(FP), R9
	MOVQ n+24(FP), R10
	MOVQ rowBytes+32(FP), R11
	MOVQ nt+40(FP), AX
	TESTQ AX, AX
	JZ gatherrow
	MOVQ DI, AX
	ORQ R11, AX
	TESTQ $31, AX
	JZ ntrow

gatherrow:
	MOVLQSX (R9), SI
	IMULQ R11, SI
	ADDQ R8, SI
	MOVQ R11, CX
	CMPQ CX, $512
	JGE gather128
	CMPQ CX, $256
	JLT gather32

	PCALIGN $32
gather256:
	COPY256(VMOVUPS)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $256, CX
	CMPQ CX, $256
	JGE gather256

	JMP gather32

	PCALIGN $32
gather128:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $128, CX
	CMPQ CX, $128
	JGE gather128

gather32:
	CMPQ CX, $32
	JLT gatherlast
	VMOVUPS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $32, CX
	JMP gather32

gatherlast:
	// CX < 32 bytes remain: copy the 32 bytes ending at the row end.
	TESTQ CX, CX
	JZ gathernext
	ADDQ CX, SI
	ADDQ CX, DI
	VMOVUPS -32(SI), Y0
	VMOVUPS Y0, -32(DI)

gathernext:
	ADDQ $4, R9
	DECQ R10
	JNZ gatherrow
	VZEROUPPER
	RET

ntrow:
	// As gatherrow with aligned non-temporal stores; rowBytes is a
	// multiple of 32, so there is no partial last vector.
	MOVLQSX (R9), SI
	IMULQ R11, SI
	ADDQ R8, SI
	MOVQ R11, CX
	CMPQ CX, $256
	JLT nt32

	PCALIGN $32
nt256:
	COPY256(VMOVNTDQ)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $256, CX
	CMPQ CX, $256
	JGE nt256

nt32:
	TESTQ CX, CX
	JZ ntnext
	VMOVDQU (SI), Y0
	VMOVNTDQ Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $32, CX
	JMP nt32

ntnext:
	ADDQ $4, R9
	DECQ R10
	JNZ ntrow
	SFENCE
	VZEROUPPER
	RET

// The grouped weighted sums read each value row once for several output
// rows: per row of vals, every value vector is loaded into a register once
// and multiplied by the broadcast weight of each output row, so g query heads
// sharing a KV head cost one pass over its values per group instead of g.
// The column blocking is wsum1's: a block of output columns stays
// in registers while the n rows stream past, and the Go wrapper sizes n so
// that the rows stay in L1 from the first column block (and group) to the
// last. out is added to, not overwritten.
//
// Output row k of the group has its weights at p + k·pn and its sums at
// out + k·stride (elements), except that the last row of a four-row group
// is at offsets p3 and o3, which the Go wrapper sets to 2·pn and 2·stride
// for a group of three: the repeated row's accumulators start from the same
// out, see the same weights and values in the same order, and store the
// same bits twice. Rows 2 are addressed with scale 8, twice row 1's offset.
//
// Every row step also prefetches the line it reads pf bytes further on, in
// the next block of rows (the Go wrapper passes pf = 0 when there is none):
// the first column pass over a block then finds it on its way instead of
// waiting on memory one line per row.
//
// Register use: R8 out, R9 the column in value row 0, R10 columns left,
// R11 the value row stride in bytes, R12 the output row stride and R13 the
// output offset of row 3 (elements), R14 pf (scratch in ABI0 code: Go
// restores g there when control returns to it), BX the weights of row 0, AX the weight
// row stride and DX the weight offset of row 3 (elements); SI walks the
// weights, DI the value rows, CX counts rows.

// LOAD4 and STORE4 move the accumulators of the output column block at
// off(R8) of rows 0–3 to and from a0–a3.
#define LOAD4(off, a0, a1, a2, a3) \
	VMOVUPS off(R8), a0; \
	VMOVUPS off(R8)(R12*4), a1; \
	VMOVUPS off(R8)(R12*8), a2; \
	VMOVUPS off(R8)(R13*4), a3

#define STORE4(off, a0, a1, a2, a3) \
	VMOVUPS a0, off(R8); \
	VMOVUPS a1, off(R8)(R12*4); \
	VMOVUPS a2, off(R8)(R12*8); \
	VMOVUPS a3, off(R8)(R13*4)

// FMA4x2 adds the two value vectors in Y8, Y9 times the weights of the four
// rows to the 4 × 2 accumulators Y0–Y7 (row k in Y(2k), Y(2k+1)).
#define FMA4x2 \
	VBROADCASTSS (SI), Y10; \
	VBROADCASTSS (SI)(AX*4), Y11; \
	VFMADD231PS Y8, Y10, Y0; \
	VFMADD231PS Y9, Y10, Y1; \
	VFMADD231PS Y8, Y11, Y2; \
	VFMADD231PS Y9, Y11, Y3; \
	VBROADCASTSS (SI)(AX*8), Y12; \
	VBROADCASTSS (SI)(DX*4), Y13; \
	VFMADD231PS Y8, Y12, Y4; \
	VFMADD231PS Y9, Y12, Y5; \
	VFMADD231PS Y8, Y13, Y6; \
	VFMADD231PS Y9, Y13, Y7

// FMA4x1 adds the value vector in Y8 times the four weights to Y0–Y3.
#define FMA4x1 \
	VBROADCASTSS (SI), Y10; \
	VBROADCASTSS (SI)(AX*4), Y11; \
	VBROADCASTSS (SI)(AX*8), Y12; \
	VBROADCASTSS (SI)(DX*4), Y13; \
	VFMADD231PS Y8, Y10, Y0; \
	VFMADD231PS Y8, Y11, Y1; \
	VFMADD231PS Y8, Y12, Y2; \
	VFMADD231PS Y8, Y13, Y3

// VALS_F32 and VALS_F16 load the 8 values at element offset off of the row at
// DI into reg, float16 widened by VCVTPH2PS.
#define VALS_F32(off, reg) VMOVUPS (off*4)(DI), reg
#define VALS_F16(off, reg) VCVTPH2PS (off*2)(DI), reg

// WSARGS4 loads the arguments of the four-row kernels but n; the value row
// stride in bytes is for elements of 1 << esh bytes.
#define WSARGS4(P, PN, P3, VALS, STRIDE, OUT, O3, W, PF, esh) \
	MOVQ P, BX; \
	MOVQ PN, AX; \
	MOVQ P3, DX; \
	MOVQ VALS, R9; \
	MOVQ STRIDE, R12; \
	MOVQ R12, R11; \
	SHLQ $esh, R11; \
	MOVQ OUT, R8; \
	MOVQ O3, R13; \
	MOVQ W, R10; \
	MOVQ PF, R14

// WS4 is the body of the four-row kernels for values of esz bytes loaded by
// VALS; N is the argument n. Blocks of 16 columns (8 accumulators, enough to
// cover the FMA latency), then one of 8.
#define WS4(VALS, esz, N) \
ws4x16: \
	CMPQ R10, $16; \
	JLT ws4x8; \
	LOAD4(0, Y0, Y2, Y4, Y6); \
	LOAD4(32, Y1, Y3, Y5, Y7); \
	MOVQ BX, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
	PCALIGN $32; \
ws4x16row: \
	PREFETCHT0 (DI)(R14*1); \
	VALS(0, Y8); \
	VALS(8, Y9); \
	FMA4x2; \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ ws4x16row; \
	STORE4(0, Y0, Y2, Y4, Y6); \
	STORE4(32, Y1, Y3, Y5, Y7); \
	ADDQ $64, R8; \
	ADDQ $(16*esz), R9; \
	SUBQ $16, R10; \
	JMP ws4x16; \
ws4x8: \
	TESTQ R10, R10; \
	JZ ws4done; \
	LOAD4(0, Y0, Y1, Y2, Y3); \
	MOVQ BX, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
ws4x8row: \
	VALS(0, Y8); \
	FMA4x1; \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ ws4x8row; \
	STORE4(0, Y0, Y1, Y2, Y3); \
ws4done: \
	VZEROUPPER; \
	RET

// func wsums4(p *float32, pn, p3, n int, vals *float32, stride int, out *float32, o3, w, pf int)
//
// For rows k < 4 and c < w (a positive multiple of 8):
// out[k·stride+c] += Σ_{i<n} p[k·pn+i]·vals[i·stride+c] (row 3 at p3, o3);
// n ≥ 1.
TEXT ·wsums4(SB), NOSPLIT, $0-80
	WSARGS4(p+0(FP), pn+8(FP), p3+16(FP), vals+32(FP), stride+40(FP), out+48(FP), o3+56(FP), w+64(FP), pf+72(FP), 2)
	WS4(VALS_F32, 4, n+24(FP))

// func wsums4F16(p *float32, pn, p3, n int, vals *uint16, stride int, out *float32, o3, w, pf int)
//
// wsums4 over float16 rows, widened by VCVTPH2PS as they are read.
TEXT ·wsums4F16(SB), NOSPLIT, $0-80
	WSARGS4(p+0(FP), pn+8(FP), p3+16(FP), vals+32(FP), stride+40(FP), out+48(FP), o3+56(FP), w+64(FP), pf+72(FP), 1)
	WS4(VALS_F16, 2, n+24(FP))

// The two-row kernels: blocks of 32 columns keep the 8 accumulators that
// hide the FMA latency, then blocks of 8. Registers as above, with AX the
// weight row stride, R12 the output row stride (elements) and DX pf.

// FMA2x4 adds the value vectors in Y8–Y11 times the weights of the two rows
// to Y0–Y3 (row 0) and Y4–Y7 (row 1).
#define FMA2x4 \
	VBROADCASTSS (SI), Y12; \
	VBROADCASTSS (SI)(AX*4), Y13; \
	VFMADD231PS Y8, Y12, Y0; \
	VFMADD231PS Y9, Y12, Y1; \
	VFMADD231PS Y10, Y12, Y2; \
	VFMADD231PS Y11, Y12, Y3; \
	VFMADD231PS Y8, Y13, Y4; \
	VFMADD231PS Y9, Y13, Y5; \
	VFMADD231PS Y10, Y13, Y6; \
	VFMADD231PS Y11, Y13, Y7

#define LOAD2x4 \
	VMOVUPS (R8), Y0; VMOVUPS 32(R8), Y1; VMOVUPS 64(R8), Y2; VMOVUPS 96(R8), Y3; \
	VMOVUPS (R8)(R12*4), Y4; VMOVUPS 32(R8)(R12*4), Y5; \
	VMOVUPS 64(R8)(R12*4), Y6; VMOVUPS 96(R8)(R12*4), Y7

#define STORE2x4 \
	VMOVUPS Y0, (R8); VMOVUPS Y1, 32(R8); VMOVUPS Y2, 64(R8); VMOVUPS Y3, 96(R8); \
	VMOVUPS Y4, (R8)(R12*4); VMOVUPS Y5, 32(R8)(R12*4); \
	VMOVUPS Y6, 64(R8)(R12*4); VMOVUPS Y7, 96(R8)(R12*4)

// FMA2x1 adds the value vector in Y8 times the two weights to Y0, Y1.
#define FMA2x1 \
	VBROADCASTSS (SI), Y12; \
	VBROADCASTSS (SI)(AX*4), Y13; \
	VFMADD231PS Y8, Y12, Y0; \
	VFMADD231PS Y8, Y13, Y1

// WSARGS2 loads the arguments of the two-row kernels but n.
#define WSARGS2(P, PN, VALS, STRIDE, OUT, W, PF, esh) \
	MOVQ P, BX; \
	MOVQ PN, AX; \
	MOVQ VALS, R9; \
	MOVQ STRIDE, R12; \
	MOVQ R12, R11; \
	SHLQ $esh, R11; \
	MOVQ OUT, R8; \
	MOVQ W, R10; \
	MOVQ PF, DX

// PREFETCH_F32 and PREFETCH_F16 prefetch the 32 values of a row step pf
// bytes on: two lines of float32, one of float16.
#define PREFETCH_F32 PREFETCHT0 (DI)(DX*1); PREFETCHT0 64(DI)(DX*1)
#define PREFETCH_F16 PREFETCHT0 (DI)(DX*1)

// WS2 is the body of the two-row kernels for values of esz bytes loaded by
// VALS and prefetched by PREFETCH; N is the argument n.
#define WS2(VALS, esz, PREFETCH, N) \
ws2x32: \
	CMPQ R10, $32; \
	JLT ws2x8; \
	LOAD2x4; \
	MOVQ BX, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
	PCALIGN $32; \
ws2x32row: \
	PREFETCH; \
	VALS(0, Y8); \
	VALS(8, Y9); \
	VALS(16, Y10); \
	VALS(24, Y11); \
	FMA2x4; \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ ws2x32row; \
	STORE2x4; \
	ADDQ $128, R8; \
	ADDQ $(32*esz), R9; \
	SUBQ $32, R10; \
	JMP ws2x32; \
ws2x8: \
	TESTQ R10, R10; \
	JZ ws2done; \
	VMOVUPS (R8), Y0; \
	VMOVUPS (R8)(R12*4), Y1; \
	MOVQ BX, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
ws2x8row: \
	VALS(0, Y8); \
	FMA2x1; \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ ws2x8row; \
	VMOVUPS Y0, (R8); \
	VMOVUPS Y1, (R8)(R12*4); \
	ADDQ $32, R8; \
	ADDQ $(8*esz), R9; \
	SUBQ $8, R10; \
	JMP ws2x8; \
ws2done: \
	VZEROUPPER; \
	RET

// func wsums2(p *float32, pn, n int, vals *float32, stride int, out *float32, w, pf int)
//
// For rows k < 2 and c < w (a positive multiple of 8):
// out[k·stride+c] += Σ_{i<n} p[k·pn+i]·vals[i·stride+c]; n ≥ 1.
TEXT ·wsums2(SB), NOSPLIT, $0-64
	WSARGS2(p+0(FP), pn+8(FP), vals+24(FP), stride+32(FP), out+40(FP), w+48(FP), pf+56(FP), 2)
	WS2(VALS_F32, 4, PREFETCH_F32, n+16(FP))

// func wsums2F16(p *float32, pn, n int, vals *uint16, stride int, out *float32, w, pf int)
//
// wsums2 over float16 rows.
TEXT ·wsums2F16(SB), NOSPLIT, $0-64
	WSARGS2(p+0(FP), pn+8(FP), vals+24(FP), stride+32(FP), out+40(FP), w+48(FP), pf+56(FP), 1)
	WS2(VALS_F16, 2, PREFETCH_F16, n+16(FP))

// The dequantisers: scale × integer for every element of nb blocks of 32,
// exact in float32, four vectors of 8 per block. A block's scale is
// broadcast as float16 and widened; the integers are widened to int32
// straight from memory.

// DQSTORE converts the block's integers in Y1–Y4 to float32, multiplies
// them by its scale in Y0, stores them and steps to the next block of bb
// bytes, looping to label while blocks remain.
#define DQSTORE(bb, label) \
	VCVTDQ2PS Y1, Y1; \
	VCVTDQ2PS Y2, Y2; \
	VCVTDQ2PS Y3, Y3; \
	VCVTDQ2PS Y4, Y4; \
	VMULPS Y0, Y1, Y1; \
	VMULPS Y0, Y2, Y2; \
	VMULPS Y0, Y3, Y3; \
	VMULPS Y0, Y4, Y4; \
	VMOVUPS Y1, (DI); \
	VMOVUPS Y2, 32(DI); \
	VMOVUPS Y3, 64(DI); \
	VMOVUPS Y4, 96(DI); \
	ADDQ $bb, SI; \
	ADDQ $128, DI; \
	DECQ CX; \
	JNZ label

// func dequantQ8Asm(dst *float32, src *byte, nb int)
TEXT ·dequantQ8Asm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nb+16(FP), CX
	PCALIGN $32
q8block:
	VPBROADCASTW (SI), X0
	VCVTPH2PS X0, Y0
	VPMOVSXBD 2(SI), Y1
	VPMOVSXBD 10(SI), Y2
	VPMOVSXBD 18(SI), Y3
	VPMOVSXBD 26(SI), Y4
	DQSTORE(34, q8block)
	VZEROUPPER
	RET

// func dequantQ4Asm(dst *float32, src *byte, nb int)
//
// Bytes 0–7 and 8–15 of a block's integers are widened to int32; their low
// nibbles are elements 0–15, their high nibbles 16–31, each minus 8.
TEXT ·dequantQ4Asm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nb+16(FP), CX
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $31, Y15, Y14
	VPSLLD $3, Y14, Y14  // 8 in every lane
	VPSRLD $28, Y15, Y15 // 0x0f in every lane
	PCALIGN $32
q4block:
	VPBROADCASTW (SI), X0
	VCVTPH2PS X0, Y0
	VPMOVZXBD 2(SI), Y1
	VPMOVZXBD 10(SI), Y2
	VPSRLD $4, Y1, Y3
	VPSRLD $4, Y2, Y4
	VPAND Y15, Y1, Y1
	VPAND Y15, Y2, Y2
	VPSUBD Y14, Y1, Y1
	VPSUBD Y14, Y2, Y2
	VPSUBD Y14, Y3, Y3
	VPSUBD Y14, Y4, Y4
	DQSTORE(18, q4block)
	VZEROUPPER
	RET

// The quantised score kernels: a tile of 2 queries × 4 keys over keys
// stored in Q8_0 or Q4_0 blocks of 32, each key vector dequantised in a
// register (exactly: the block's scale times the integer) and then
// accumulated as score3x4 accumulates a float32 key, so every score is
// bit for bit score3x4's over the dequantised key. Per block, the four
// keys' scales are widened into Y10–Y13; per vector of 8, the two query
// vectors are Y8, Y9 and the key vector Y14.
//
// Register use: R8, R9 the query rows, AX–DX the four key rows, SI the
// block's byte offset in a key row, R10 its byte offset in a query row,
// R11 the blocks left, R12 the keys left, R13 the blocks per row, R14 the
// key row stride, DI the output of query 0.

DATA q4mask<>+0(SB)/8, $0x0000000f0000000f
DATA q4mask<>+8(SB)/8, $0x0000000f0000000f
DATA q4mask<>+16(SB)/8, $0x0000000f0000000f
DATA q4mask<>+24(SB)/8, $0x0000000f0000000f
GLOBL q4mask<>(SB), RODATA|NOPTR, $32

// DQ8 and DQ4 set Y14 to the c-th vector of 8 of the block at SI of the
// key row at R, times its scale S; DQ4 reads it with NIB, DQ8 ignores NIB.
#define DQ8(R, c, S, NIB) \
	VPMOVSXBD (2+8*c)(R)(SI*1), Y14; \
	VCVTDQ2PS Y14, Y14; \
	VMULPS S, Y14, Y14

// Q4 vectors 0 and 1 are the low nibbles of bytes 0–7 and 8–15, vectors 2
// and 3 their high nibbles; Y15 holds 8, which each stored value exceeds
// its integer by.
#define NIB0(R) VPMOVZXBD 2(R)(SI*1), Y14; VPAND q4mask<>(SB), Y14, Y14
#define NIB1(R) VPMOVZXBD 10(R)(SI*1), Y14; VPAND q4mask<>(SB), Y14, Y14
#define NIB2(R) VPMOVZXBD 2(R)(SI*1), Y14; VPSRLD $4, Y14, Y14
#define NIB3(R) VPMOVZXBD 10(R)(SI*1), Y14; VPSRLD $4, Y14, Y14
#define DQ4(R, c, S, NIB) \
	NIB(R); \
	VPSUBD Y15, Y14, Y14; \
	VCVTDQ2PS Y14, Y14; \
	VMULPS S, Y14, Y14

#define FMA2(a0, a1) VFMADD231PS Y14, Y8, a0; VFMADD231PS Y14, Y9, a1

// FMA1 is FMA2 for the one-query kernels: a1 is left alone.
#define FMA1(a0, a1) VFMADD231PS Y14, Y8, a0

// QCHUNK accumulates vector c of the current block for both queries (FMAQ
// FMA2) or the first (FMA1) and the four keys.
#define QCHUNK(DQ, c, NIB, FMAQ) \
	VMOVUPS (32*c)(R8)(R10*1), Y8; \
	VMOVUPS (32*c)(R9)(R10*1), Y9; \
	DQ(AX, c, Y10, NIB); \
	FMAQ(Y0, Y4); \
	DQ(BX, c, Y11, NIB); \
	FMAQ(Y1, Y5); \
	DQ(CX, c, Y12, NIB); \
	FMAQ(Y2, Y6); \
	DQ(DX, c, Y13, NIB); \
	FMAQ(Y3, Y7)

// The second query's steps after the loop, which ROWQ keeps in the
// two-query kernels (WITHROW2) and drops from the one-query ones (NOROW2).
#define QREDUCE1 REDUCE4(Y4, Y5, Y6, Y7, X4, X5)
#define QSCALE1 VMULPS X14, X4, X4
#define QSTORE1(o) MOVQ o, SI; VMOVUPS X4, (DI)(SI*4)
#define QMSTORE1(o) MOVQ o, SI; VMASKMOVPS X4, X14, (DI)(SI*4)

#define QSCALE(R, S) VPBROADCASTW (R)(SI*1), X14; VCVTPH2PS X14, S

// SCORE2X4Q is the body of the kernels, for blocks of bb bytes dequantised
// by DQ, two queries (FMAQ FMA2, ROWQ WITHROW2) or one (FMA1, NOROW2, Q1
// and O1 unused but for loads of Q1 = Q0).
#define SCORE2X4Q(DQ, bb, Q0, Q1, K, OUT, D, NK, O1, SCALE, FMAQ, ROWQ) \
	MOVQ Q0, R8; \
	MOVQ Q1, R9; \
	MOVQ K, AX; \
	MOVQ OUT, DI; \
	MOVQ D, R13; \
	MOVQ NK, R12; \
	SHRQ $5, R13; \
	IMUL3Q $bb, R13, R14; \
qgroup: \
	KEYROWS; \
	VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7; \
	XORQ SI, SI; \
	XORQ R10, R10; \
	MOVQ R13, R11; \
	PCALIGN $32; \
qblock: \
	QSCALE(AX, Y10); \
	QSCALE(BX, Y11); \
	QSCALE(CX, Y12); \
	QSCALE(DX, Y13); \
	QCHUNK(DQ, 0, NIB0, FMAQ); \
	QCHUNK(DQ, 1, NIB1, FMAQ); \
	QCHUNK(DQ, 2, NIB2, FMAQ); \
	QCHUNK(DQ, 3, NIB3, FMAQ); \
	ADDQ $bb, SI; \
	ADDQ $128, R10; \
	DECQ R11; \
	JNZ qblock; \
	REDUCE4(Y0, Y1, Y2, Y3, X0, X1); \
	ROWQ(QREDUCE1); \
	VBROADCASTSS SCALE, X14; \
	VMULPS X14, X0, X0; \
	ROWQ(QSCALE1); \
	CMPQ R12, $4; \
	JLT qpartial; \
	VMOVUPS X0, (DI); \
	ROWQ(QSTORE1(O1)); \
	ADDQ $16, DI; \
	LEAQ (AX)(R14*4), AX; \
	SUBQ $4, R12; \
	JNZ qgroup; \
	VZEROUPPER; \
	RET; \
qpartial: \
	MOVQ R12, SI; \
	SHLQ $2, SI; \
	LEAQ tailmask<>+32(SB), R11; \
	SUBQ SI, R11; \
	VMOVUPS (R11), X14; \
	VMASKMOVPS X0, X14, (DI); \
	ROWQ(QMSTORE1(O1)); \
	VZEROUPPER; \
	RET

// func score2x4Q8(q0, q1 *float32, keys *byte, out *float32, d, nk, o1 int, scale float32)
TEXT ·score2x4Q8(SB), NOSPLIT, $0-60
	SCORE2X4Q(DQ8, 34, q0+0(FP), q1+8(FP), keys+16(FP), out+24(FP), d+32(FP), nk+40(FP), o1+48(FP), scale+56(FP), FMA2, WITHROW2)

// func score1x4Q8(q *float32, keys *byte, out *float32, d, nk int, scale float32)
TEXT ·score1x4Q8(SB), NOSPLIT, $0-44
	SCORE2X4Q(DQ8, 34, q+0(FP), q+0(FP), keys+8(FP), out+16(FP), d+24(FP), nk+32(FP), unused, scale+40(FP), FMA1, NOROW2)

// func score2x4Q4(q0, q1 *float32, keys *byte, out *float32, d, nk, o1 int, scale float32)
TEXT ·score2x4Q4(SB), NOSPLIT, $0-60
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $31, Y15, Y15
	VPSLLD $3, Y15, Y15 // 8 in every lane
	SCORE2X4Q(DQ4, 18, q0+0(FP), q1+8(FP), keys+16(FP), out+24(FP), d+32(FP), nk+40(FP), o1+48(FP), scale+56(FP), FMA2, WITHROW2)

// func score1x4Q4(q *float32, keys *byte, out *float32, d, nk int, scale float32)
TEXT ·score1x4Q4(SB), NOSPLIT, $0-44
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $31, Y15, Y15
	VPSLLD $3, Y15, Y15 // 8 in every lane
	SCORE2X4Q(DQ4, 18, q+0(FP), q+0(FP), keys+8(FP), out+16(FP), d+24(FP), nk+32(FP), unused, scale+40(FP), FMA1, NOROW2)

// The fused quantised weighted sum of one output row: out[c] += Σ p[i]·v_i[c]
// over n ≥ 1 rows of d elements (d a positive multiple of 32) stored in
// Q8_0 or Q4_0 blocks of bb bytes, each value vector dequantised in a
// register and added as wsum1 adds a float32 one (one fused multiply-add
// per row and column, the rows in order), so every sum is bit for bit
// wsum1's over the dequantised rows. Columns go in strips of 64 (two
// blocks, 8 accumulators), then one of 32.
//
// Register use: R8 out, R9 the strip's first block in row 0, R10 the
// columns left, R11 the row stride, SI walks p, DI the rows, CX counts
// rows; Y0–Y7 the sums, Y8 the weight, Y9–Y12 value vectors, Y13 and Y14
// the two blocks' scales, Y15 the 8 of Q4_0.

// WDQ8 and WDQ4 set V to vector c of the block at off(DI) times its scale S.
#define WDQ8(off, c, S, V, NIB) \
	VPMOVSXBD (off+2+8*c)(DI), V; \
	VCVTDQ2PS V, V; \
	VMULPS S, V, V

#define WNIB0(off, V) VPMOVZXBD (off+2)(DI), V; VPAND q4mask<>(SB), V, V
#define WNIB1(off, V) VPMOVZXBD (off+10)(DI), V; VPAND q4mask<>(SB), V, V
#define WNIB2(off, V) VPMOVZXBD (off+2)(DI), V; VPSRLD $4, V, V
#define WNIB3(off, V) VPMOVZXBD (off+10)(DI), V; VPSRLD $4, V, V
#define WDQ4(off, c, S, V, NIB) \
	NIB(off, V); \
	VPSUBD Y15, V, V; \
	VCVTDQ2PS V, V; \
	VMULPS S, V, V

// WQBLOCK adds the weight in Y8 times the block at off(DI), scale S, to the
// accumulators a0–a3.
#define WQBLOCK(WDQ, off, S, a0, a1, a2, a3) \
	WDQ(off, 0, S, Y9, WNIB0); \
	WDQ(off, 1, S, Y10, WNIB1); \
	WDQ(off, 2, S, Y11, WNIB2); \
	WDQ(off, 3, S, Y12, WNIB3); \
	VFMADD231PS Y9, Y8, a0; \
	VFMADD231PS Y10, Y8, a1; \
	VFMADD231PS Y11, Y8, a2; \
	VFMADD231PS Y12, Y8, a3

#define WQSCALE(off, S) VPBROADCASTW off(DI), X13; VCVTPH2PS X13, S

#define WSUM1Q(WDQ, bb, P, N, VALS, D, OUT) \
	MOVQ OUT, R8; \
	MOVQ VALS, R9; \
	MOVQ D, R10; \
	MOVQ R10, R11; \
	SHRQ $5, R11; \
	IMUL3Q $bb, R11, R11; \
wq64: \
	CMPQ R10, $64; \
	JLT wq32; \
	VMOVUPS (R8), Y0; VMOVUPS 32(R8), Y1; VMOVUPS 64(R8), Y2; VMOVUPS 96(R8), Y3; \
	VMOVUPS 128(R8), Y4; VMOVUPS 160(R8), Y5; VMOVUPS 192(R8), Y6; VMOVUPS 224(R8), Y7; \
	MOVQ P, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
	PCALIGN $32; \
wq64row: \
	VBROADCASTSS (SI), Y8; \
	WQSCALE(bb, Y14); \
	WQSCALE(0, Y13); \
	WQBLOCK(WDQ, 0, Y13, Y0, Y1, Y2, Y3); \
	WQBLOCK(WDQ, bb, Y14, Y4, Y5, Y6, Y7); \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ wq64row; \
	VMOVUPS Y0, (R8); VMOVUPS Y1, 32(R8); VMOVUPS Y2, 64(R8); VMOVUPS Y3, 96(R8); \
	VMOVUPS Y4, 128(R8); VMOVUPS Y5, 160(R8); VMOVUPS Y6, 192(R8); VMOVUPS Y7, 224(R8); \
	ADDQ $256, R8; \
	ADDQ $(2*bb), R9; \
	SUBQ $64, R10; \
	JMP wq64; \
wq32: \
	TESTQ R10, R10; \
	JZ wqdone; \
	VMOVUPS (R8), Y0; VMOVUPS 32(R8), Y1; VMOVUPS 64(R8), Y2; VMOVUPS 96(R8), Y3; \
	MOVQ P, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
wq32row: \
	VBROADCASTSS (SI), Y8; \
	WQSCALE(0, Y13); \
	WQBLOCK(WDQ, 0, Y13, Y0, Y1, Y2, Y3); \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ wq32row; \
	VMOVUPS Y0, (R8); VMOVUPS Y1, 32(R8); VMOVUPS Y2, 64(R8); VMOVUPS Y3, 96(R8); \
wqdone: \
	VZEROUPPER; \
	RET

// func wsum1Q8(p *float32, n int, vals *byte, d int, out *float32)
TEXT ·wsum1Q8(SB), NOSPLIT, $0-40
	WSUM1Q(WDQ8, 34, p+0(FP), n+8(FP), vals+16(FP), d+24(FP), out+32(FP))

// func wsum1Q4(p *float32, n int, vals *byte, d int, out *float32)
TEXT ·wsum1Q4(SB), NOSPLIT, $0-40
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $31, Y15, Y15
	VPSLLD $3, Y15, Y15 // 8 in every lane
	WSUM1Q(WDQ4, 18, p+0(FP), n+8(FP), vals+16(FP), d+24(FP), out+32(FP))

// The fused quantised weighted sums of four output rows, as wsums4 over the
// dequantised rows (bit for bit): per block of 32 columns, two passes over
// the rows, columns 0–15 then 16–31, each with 4 rows × 2 accumulators,
// the four weights in Y10–Y13, the block's scale in Y14. Registers as in
// WS4 (LOAD4, STORE4): BX p, AX pn, DX p3, R8 out, R12 the output row
// stride (elements), R13 o3; R9 the block in row 0, R10 the blocks left,
// R11 the row stride in bytes.

// WS4QPASS runs the rows for half h of the block: the two value vectors
// at OFF with NIBA and NIBB (Q4_0's nibbles), the output columns at
// OOFF(R8).
#define WS4QPASS(WDQ, OFF, NIBA, NIBB, OOFF, N, label) \
	LOAD4(OOFF, Y0, Y2, Y4, Y6); \
	LOAD4(OOFF+32, Y1, Y3, Y5, Y7); \
	MOVQ BX, SI; \
	MOVQ R9, DI; \
	MOVQ N, CX; \
	PCALIGN $32; \
label: \
	VPBROADCASTW (DI), X14; \
	VCVTPH2PS X14, Y14; \
	WDQ(OFF, 0, Y14, Y8, NIBA); \
	WDQ(OFF, 1, Y14, Y9, NIBB); \
	VBROADCASTSS (SI), Y10; \
	VBROADCASTSS (SI)(AX*4), Y11; \
	VBROADCASTSS (SI)(AX*8), Y12; \
	VBROADCASTSS (SI)(DX*4), Y13; \
	VFMADD231PS Y8, Y10, Y0; \
	VFMADD231PS Y9, Y10, Y1; \
	VFMADD231PS Y8, Y11, Y2; \
	VFMADD231PS Y9, Y11, Y3; \
	VFMADD231PS Y8, Y12, Y4; \
	VFMADD231PS Y9, Y12, Y5; \
	VFMADD231PS Y8, Y13, Y6; \
	VFMADD231PS Y9, Y13, Y7; \
	ADDQ $4, SI; \
	ADDQ R11, DI; \
	DECQ CX; \
	JNZ label; \
	STORE4(OOFF, Y0, Y2, Y4, Y6); \
	STORE4(OOFF+32, Y1, Y3, Y5, Y7)

// WS4Q is the body of both four-row kernels, for blocks of bb bytes whose
// second half's vectors are at OFF1 (16 for Q8_0, 0 for Q4_0's high
// nibbles).
#define WS4Q(WDQ, bb, OFF1, P, PN, P3, N, VALS, D, OUT, O3) \
	MOVQ P, BX; \
	MOVQ PN, AX; \
	MOVQ P3, DX; \
	MOVQ VALS, R9; \
	MOVQ D, R12; \
	MOVQ OUT, R8; \
	MOVQ O3, R13; \
	MOVQ R12, R10; \
	SHRQ $5, R10; \
	IMUL3Q $bb, R10, R11; \
ws4qblock: \
	WS4QPASS(WDQ, 0, WNIB0, WNIB1, 0, N, ws4qlo); \
	WS4QPASS(WDQ, OFF1, WNIB2, WNIB3, 64, N, ws4qhi); \
	ADDQ $128, R8; \
	ADDQ $bb, R9; \
	DECQ R10; \
	JNZ ws4qblock; \
	VZEROUPPER; \
	RET

// func wsums4Q8(p *float32, pn, p3, n int, vals *byte, d int, out *float32, o3 int)
TEXT ·wsums4Q8(SB), NOSPLIT, $0-64
	WS4Q(WDQ8, 34, 16, p+0(FP), pn+8(FP), p3+16(FP), n+24(FP), vals+32(FP), d+40(FP), out+48(FP), o3+56(FP))

// func wsums4Q4(p *float32, pn, p3, n int, vals *byte, d int, out *float32, o3 int)
TEXT ·wsums4Q4(SB), NOSPLIT, $0-64
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $31, Y15, Y15
	VPSLLD $3, Y15, Y15 // 8 in every lane
	WS4Q(WDQ4, 18, 0, p+0(FP), pn+8(FP), p3+16(FP), n+24(FP), vals+32(FP), d+40(FP), out+48(FP), o3+56(FP))
