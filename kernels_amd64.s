//go:build gc && !purego

#include "textflag.h"

// AVX2 + FMA + F16C kernels. The Go wrappers in kernels_amd64.go validate
// lengths and split the work into bounded calls; these functions trust their
// arguments. Every function is a leaf with no frame and ends with VZEROUPPER
// so that SSE code after it pays no transition penalty.

// tailmask<>+32-4·r is an 8-lane mask whose first r lanes are set: the masked
// loads and stores of the last r < 8 elements of a row.
DATA tailmask<>+0(SB)/4, $0xffffffff
DATA tailmask<>+4(SB)/4, $0xffffffff
DATA tailmask<>+8(SB)/4, $0xffffffff
DATA tailmask<>+12(SB)/4, $0xffffffff
DATA tailmask<>+16(SB)/4, $0xffffffff
DATA tailmask<>+20(SB)/4, $0xffffffff
DATA tailmask<>+24(SB)/4, $0xffffffff
DATA tailmask<>+28(SB)/4, $0xffffffff
DATA tailmask<>+32(SB)/4, $0
DATA tailmask<>+36(SB)/4, $0
DATA tailmask<>+40(SB)/4, $0
DATA tailmask<>+44(SB)/4, $0
DATA tailmask<>+48(SB)/4, $0
DATA tailmask<>+52(SB)/4, $0
DATA tailmask<>+56(SB)/4, $0
DATA tailmask<>+60(SB)/4, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

#define ZERO12 \
	VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7; \
	VXORPS Y8, Y8, Y8; VXORPS Y9, Y9, Y9; VXORPS Y10, Y10, Y10; VXORPS Y11, Y11, Y11

// FMA3 multiplies the key vector in Y15 by the three query vectors in
// Y12–Y14 into the accumulators of one key column.
#define FMA3(a0, a1, a2) \
	VFMADD231PS Y15, Y12, a0; VFMADD231PS Y15, Y13, a1; VFMADD231PS Y15, Y14, a2

// REDUCE4 leaves in the low lane xa of a the four horizontal sums
// [Σa, Σb, Σc, Σd]: three HADDs and one 128-bit fold instead of four
// separate reductions. b, c, d are clobbered.
#define REDUCE4(a, b, c, d, xa, xb) \
	VHADDPS b, a, a; VHADDPS d, c, c; VHADDPS c, a, a; \
	VEXTRACTF128 $1, a, xb; VADDPS xb, xa, xa

// The score kernels compute a tile of 3 queries × 4 keys at a time: 12
// accumulators, 3 query and 1 key register, so each 8-lane step issues 7
// loads for 12 FMAs and stays FMA-bound. Query and key pointers point at the
// end of the vectorised part of their rows and SI counts up from −d8 to 0.
//
// Register use: R8–R10 query rows, AX–DX the four key rows, SI the element
// index, DI the output of query 0, R12 the keys left, R13 = −d8.

// func score3x4AVX2(q0, q1, q2, keys, out *float32, d, nk, o1, o2 int, scale float32)
TEXT ·score3x4AVX2(SB), NOSPLIT, $0-76
	MOVQ d+40(FP), R13
	ANDQ $-8, R13
	MOVQ q0+0(FP), R8
	MOVQ q1+8(FP), R9
	MOVQ q2+16(FP), R10
	MOVQ keys+24(FP), AX
	LEAQ (R8)(R13*4), R8
	LEAQ (R9)(R13*4), R9
	LEAQ (R10)(R13*4), R10
	LEAQ (AX)(R13*4), AX
	NEGQ R13
	MOVQ out+32(FP), DI
	MOVQ nk+48(FP), R12

group:
	// Key rows 1–3 of the tile; past the last key they repeat the last
	// one, whose duplicate sums are never stored.
	MOVQ d+40(FP), SI
	SHLQ $2, SI
	LEAQ (AX)(SI*1), BX
	LEAQ (BX)(SI*1), CX
	LEAQ (CX)(SI*1), DX
	CMPQ R12, $2
	CMOVQLT AX, BX
	CMPQ R12, $3
	CMOVQLT BX, CX
	CMPQ R12, $4
	CMOVQLT CX, DX
	ZERO12
	MOVQ R13, SI
	TESTQ SI, SI
	JZ tail

	PCALIGN $32
loop:
	VMOVUPS (R8)(SI*4), Y12
	VMOVUPS (R9)(SI*4), Y13
	VMOVUPS (R10)(SI*4), Y14
	VMOVUPS (AX)(SI*4), Y15
	FMA3(Y0, Y4, Y8)
	VMOVUPS (BX)(SI*4), Y15
	FMA3(Y1, Y5, Y9)
	VMOVUPS (CX)(SI*4), Y15
	FMA3(Y2, Y6, Y10)
	VMOVUPS (DX)(SI*4), Y15
	FMA3(Y3, Y7, Y11)
	ADDQ $8, SI
	JNZ loop

tail:
	// The last d mod 8 elements, with masked loads that read nothing past
	// the rows. Only Y12–Y15 are free, so query 2 takes a second pass.
	MOVQ d+40(FP), SI
	ANDQ $7, SI
	JZ reduce
	SHLQ $2, SI
	LEAQ tailmask<>+32(SB), R11
	SUBQ SI, R11
	VMOVUPS (R11), Y15
	VMASKMOVPS (R8), Y15, Y12
	VMASKMOVPS (R9), Y15, Y13
	VMASKMOVPS (AX), Y15, Y14
	VFMADD231PS Y14, Y12, Y0
	VFMADD231PS Y14, Y13, Y4
	VMASKMOVPS (BX), Y15, Y14
	VFMADD231PS Y14, Y12, Y1
	VFMADD231PS Y14, Y13, Y5
	VMASKMOVPS (CX), Y15, Y14
	VFMADD231PS Y14, Y12, Y2
	VFMADD231PS Y14, Y13, Y6
	VMASKMOVPS (DX), Y15, Y14
	VFMADD231PS Y14, Y12, Y3
	VFMADD231PS Y14, Y13, Y7
	VMASKMOVPS (R10), Y15, Y12
	VMASKMOVPS (AX), Y15, Y14
	VFMADD231PS Y14, Y12, Y8
	VMASKMOVPS (BX), Y15, Y14
	VFMADD231PS Y14, Y12, Y9
	VMASKMOVPS (CX), Y15, Y14
	VFMADD231PS Y14, Y12, Y10
	VMASKMOVPS (DX), Y15, Y14
	VFMADD231PS Y14, Y12, Y11

reduce:
	REDUCE4(Y0, Y1, Y2, Y3, X0, X1)
	REDUCE4(Y4, Y5, Y6, Y7, X4, X5)
	REDUCE4(Y8, Y9, Y10, Y11, X8, X9)
	VBROADCASTSS scale+72(FP), X15
	VMULPS X15, X0, X0
	VMULPS X15, X4, X4
	VMULPS X15, X8, X8
	CMPQ R12, $4
	JLT partial
	VMOVUPS X0, (DI)
	MOVQ o1+56(FP), SI
	VMOVUPS X4, (DI)(SI*4)
	MOVQ o2+64(FP), SI
	VMOVUPS X8, (DI)(SI*4)
	ADDQ $16, DI
	MOVQ d+40(FP), SI
	SHLQ $4, SI
	ADDQ SI, AX
	SUBQ $4, R12
	JNZ group
	VZEROUPPER
	RET

partial:
	// 1–3 keys left: store only their lanes.
	MOVQ R12, SI
	SHLQ $2, SI
	LEAQ tailmask<>+32(SB), R11
	SUBQ SI, R11
	VMOVUPS (R11), X15
	VMASKMOVPS X0, X15, (DI)
	MOVQ o1+56(FP), SI
	VMASKMOVPS X4, X15, (DI)(SI*4)
	MOVQ o2+64(FP), SI
	VMASKMOVPS X8, X15, (DI)(SI*4)
	VZEROUPPER
	RET

// score3x4F16AVX2 is score3x4AVX2 over float16 keys, widened by VCVTPH2PS
// as they are loaded. It covers the first d &^ 7 elements of each row; the
// Go wrapper adds the rest, since F16C has no 16-bit masked load. d ≥ 8.

// func score3x4F16AVX2(q0, q1, q2 *float32, keys *uint16, out *float32, d, nk, o1, o2 int, scale float32)
TEXT ·score3x4F16AVX2(SB), NOSPLIT, $0-76
	MOVQ d+40(FP), R13
	ANDQ $-8, R13
	MOVQ q0+0(FP), R8
	MOVQ q1+8(FP), R9
	MOVQ q2+16(FP), R10
	MOVQ keys+24(FP), AX
	LEAQ (R8)(R13*4), R8
	LEAQ (R9)(R13*4), R9
	LEAQ (R10)(R13*4), R10
	LEAQ (AX)(R13*2), AX
	NEGQ R13
	MOVQ out+32(FP), DI
	MOVQ nk+48(FP), R12

f16group:
	MOVQ d+40(FP), SI
	SHLQ $1, SI
	LEAQ (AX)(SI*1), BX
	LEAQ (BX)(SI*1), CX
	LEAQ (CX)(SI*1), DX
	CMPQ R12, $2
	CMOVQLT AX, BX
	CMPQ R12, $3
	CMOVQLT BX, CX
	CMPQ R12, $4
	CMOVQLT CX, DX
	ZERO12
	MOVQ R13, SI

	PCALIGN $32
f16loop:
	VMOVUPS (R8)(SI*4), Y12
	VMOVUPS (R9)(SI*4), Y13
	VMOVUPS (R10)(SI*4), Y14
	VCVTPH2PS (AX)(SI*2), Y15
	FMA3(Y0, Y4, Y8)
	VCVTPH2PS (BX)(SI*2), Y15
	FMA3(Y1, Y5, Y9)
	VCVTPH2PS (CX)(SI*2), Y15
	FMA3(Y2, Y6, Y10)
	VCVTPH2PS (DX)(SI*2), Y15
	FMA3(Y3, Y7, Y11)
	ADDQ $8, SI
	JNZ f16loop

	REDUCE4(Y0, Y1, Y2, Y3, X0, X1)
	REDUCE4(Y4, Y5, Y6, Y7, X4, X5)
	REDUCE4(Y8, Y9, Y10, Y11, X8, X9)
	VBROADCASTSS scale+72(FP), X15
	VMULPS X15, X0, X0
	VMULPS X15, X4, X4
	VMULPS X15, X8, X8
	CMPQ R12, $4
	JLT f16partial
	VMOVUPS X0, (DI)
	MOVQ o1+56(FP), SI
	VMOVUPS X4, (DI)(SI*4)
	MOVQ o2+64(FP), SI
	VMOVUPS X8, (DI)(SI*4)
	ADDQ $16, DI
	MOVQ d+40(FP), SI
	SHLQ $3, SI
	ADDQ SI, AX
	SUBQ $4, R12
	JNZ f16group
	VZEROUPPER
	RET

f16partial:
	MOVQ R12, SI
	SHLQ $2, SI
	LEAQ tailmask<>+32(SB), R11
	SUBQ SI, R11
	VMOVUPS (R11), X15
	VMASKMOVPS X0, X15, (DI)
	MOVQ o1+56(FP), SI
	VMASKMOVPS X4, X15, (DI)(SI*4)
	MOVQ o2+64(FP), SI
	VMASKMOVPS X8, X15, (DI)(SI*4)
	VZEROUPPER
	RET
