//go:build (amd64 || arm64) && gc && !purego

package lava

import (
	"math"
	"unsafe"
)

// The assembly kernels and their Go side, the same for amd64 (AVX2, FMA and
// F16C: kernels_amd64.s) and arm64 (NEON: kernels_arm64.s). Both files
// implement the prototypes below with the same semantics; kernels_amd64.go
// and kernels_arm64.go only say whether this CPU runs them (useAsm).
//
// The assembly trusts its arguments. The Go wrappers check lengths and row
// indices before anything is written, cut the work into calls of at most
// asmWork operations, split a query group over the one-, two- and four-row
// kernels, and do the elements past the last whole vector of 8. Where the
// vector code fuses a multiply-add, so does the Go tail (fma32): an element
// gets the same bits wherever it lies relative to vectors, tiles and calls.
//
// Counts are in elements. A kernel reads and writes only the elements its
// pointers and counts cover; the guard-page test checks it.

// asmWork bounds one assembly call to this many elements visited or
// multiply-adds, as crypto/internal/fips140/sha256 bounds its blocks:
// assembly is not preemptible, and 64 Ki operations take at most a few tens
// of microseconds. Scoring and the weighted sums work in L1-sized blocks well
// inside the bound; only rows of more than asmWork/12 elements (one tile of
// three queries and four keys) exceed it.
const asmWork = 1 << 16

// kvElem is the element type of stored keys and values: float32, or the bit
// patterns of IEEE binary16 values.
type kvElem interface{ float32 | uint16 }

// rowElem is what gather copies rows of: keys and values in any storage
// type, quantised blocks as bytes.
type rowElem interface{ float32 | uint16 | uint8 }

// score3x4 sets out[o_i + j] = scale·Σ_{t<d} q_i[t]·keys[j·d+t] for the three
// queries q0, q1, q2 (o_0 = 0, o_1 = o1, o_2 = o2) and the keys j < nk ≥ 1,
// d ≥ 1, in tiles of 3 queries × 4 keys; past the last whole tile the
// missing keys repeat the last one and only the real ones are stored. Every
// score is the same sequence of operations (lane-parallel fused multiply-adds
// over t, the lanes summed in one fixed tree, one product with scale),
// whatever its key's place in a tile. With pf ≠ 0 the amd64 kernel also
// prefetches the keys a few tiles ahead, for a first pass over keys not yet
// in cache; arm64 leaves that to its hardware prefetcher.
//
//go:noescape
func score3x4(q0, q1, q2, keys, out *float32, d, nk, o1, o2 int, scale float32, pf int)

// score3x4F16 is score3x4 over float16 keys and only the first d &^ 7
// elements of each row (d ≥ 8): the wrapper adds the rest.
//
//go:noescape
func score3x4F16(q0, q1, q2 *float32, keys *uint16, out *float32, d, nk, o1, o2 int, scale float32, pf int)

// maxAsm returns the largest of the n elements at x, n a positive multiple of
// 8, ignoring NaNs as maxGeneric's v > m does, or −Inf if all are NaN. It
// never returns NaN.
//
//go:noescape
func maxAsm(x *float32, n int) float32

// expSubAsm replaces the n ≥ 1 elements x_i with exp(x_i − m) and returns
// their sum. See expSub for the accuracy.
//
//go:noescape
func expSubAsm(x *float32, n int, m float32) float32

// axpyAsm adds a·x_i to y_i with one rounding (a fused multiply-add), n ≥ 1.
//
//go:noescape
func axpyAsm(a float32, x, y *float32, n int)

// wsum1 adds Σ_{i<n} p[i]·vals[i·stride+c] to out[c] for the columns c < w, w a
// positive multiple of 8, n ≥ 1: one fused multiply-add per row and column,
// the rows in order.
//
//go:noescape
func wsum1(p *float32, n int, vals *float32, stride int, out *float32, w int)

// wsum1F16 is wsum1 over float16 values.
//
//go:noescape
func wsum1F16(p *float32, n int, vals *uint16, stride int, out *float32, w int)

// wsums2 is wsum1 for two output rows, at out and out+stride with weights at p
// and p+pn, each value vector loaded once for both. It also prefetches the
// value rows pf bytes on (0: none); arm64 leaves that to its hardware
// prefetcher.
//
//go:noescape
func wsums2(p *float32, pn, n int, vals *float32, stride int, out *float32, w, pf int)

// wsums2F16 is wsums2 over float16 values.
//
//go:noescape
func wsums2F16(p *float32, pn, n int, vals *uint16, stride int, out *float32, w, pf int)

// wsums4 is wsums2 for four output rows: k < 3 at out+k·stride with weights at
// p+k·pn, and the fourth at out+o3 with weights at p+p3, which a group of
// three sets to row 2's (the repeated row computes and stores the same bits).
//
//go:noescape
func wsums4(p *float32, pn, p3, n int, vals *float32, stride int, out *float32, o3, w, pf int)

// wsums4F16 is wsums4 over float16 values.
//
//go:noescape
func wsums4F16(p *float32, pn, p3, n int, vals *uint16, stride int, out *float32, o3, w, pf int)

// l1NormAsm returns Σ|x_i| over n elements, n a positive multiple of 8.
//
//go:noescape
func l1NormAsm(x *float32, n int) float32

// l1NormF16Asm is l1NormAsm over float16 elements.
//
//go:noescape
func l1NormF16Asm(x *uint16, n int) float32

// widenAsm converts n float16 values to float32 exactly, n a positive
// multiple of 8; NaNs are quieted keeping sign and payload, as f16ToF32 does.
//
//go:noescape
func widenAsm(dst *float32, src *uint16, n int)

// narrowAsm converts n float32 values to float16 rounding to nearest even, n a
// positive multiple of 8, as f32ToF16 does.
//
//go:noescape
func narrowAsm(dst *uint16, src *float32, n int)

// copyCheckAsm copies n float32 values from src to dst, n a positive
// multiple of 8, and returns a word whose top bit is set iff some element's
// exponent is all ones (Inf or NaN); the other bits mean nothing. Each
// vector lane keeps the largest exponent field it has seen, all ones iff
// one of its elements was Inf or NaN.
//
//go:noescape
func copyCheckAsm(dst, src *float32, n int) uint32

// checkF16Asm is copyCheckAsm's check alone, over n float16 values, n a
// positive multiple of 8: the top bit of the result is set iff some
// element's exponent (0x7c00) is all ones.
//
//go:noescape
func checkF16Asm(x *uint16, n int) uint16

// gatherAsm copies row idx[r] of src to row r of dst for r < n ≥ 1, rows of
// rowBytes ≥ 32 bytes; the last 32 bytes of a row may be copied twice, which
// is safe in place with strictly increasing idx (a row idx[r] ≥ r is row r
// itself or not yet written). nt ≠ 0 allows non-temporal stores (amd64, for
// a 32-byte aligned destination apart from src); arm64 ignores it.
//
//go:noescape
func gatherAsm(dst, src unsafe.Pointer, idx *int32, n, rowBytes, nt int)

// dequantQ8Asm sets the 32·nb float32 at dst to the nb ≥ 1 Q8_0 blocks of
// 32 elements at src (34 bytes each: a float16 scale, 32 int8): scale ×
// integer, exactly, as dequantGeneric does.
//
//go:noescape
func dequantQ8Asm(dst *float32, src *byte, nb int)

// dequantQ4Asm is dequantQ8Asm over Q4_0 blocks (18 bytes each: a float16
// scale, 16 bytes whose low nibbles are elements 0–15 and high nibbles
// 16–31, each stored as value + 8).
//
//go:noescape
func dequantQ4Asm(dst *float32, src *byte, nb int)

// score2x4Q8 sets out[j] and out[o1 + j] to the scores of the queries q0
// and q1 against the keys j < nk ≥ 1 stored as Q8_0 rows of d elements, d
// a positive multiple of 32 (d/32 blocks of 34 bytes), dequantising each
// key vector in a register: every score is bit for bit score3x4's over the
// dequantised keys. Past the last whole tile of 4 the missing keys repeat
// the last one and only the real ones are stored.
//
//go:noescape
func score2x4Q8(q0, q1 *float32, keys *byte, out *float32, d, nk, o1 int, scale float32)

// score2x4Q4 is score2x4Q8 over Q4_0 rows (blocks of 18 bytes).
//
//go:noescape
func score2x4Q4(q0, q1 *float32, keys *byte, out *float32, d, nk, o1 int, scale float32)

// wsum1Q8 adds Σ_{i<n} p[i]·v_i[c] to out[c] for c < d, over n ≥ 1 Q8_0 rows
// v_i of d elements (d a positive multiple of 32) at vals, dequantising each
// value vector in a register: every sum is bit for bit wsum1's over the
// dequantised rows.
//
//go:noescape
func wsum1Q8(p *float32, n int, vals *byte, d int, out *float32)

// wsum1Q4 is wsum1Q8 over Q4_0 rows.
//
//go:noescape
func wsum1Q4(p *float32, n int, vals *byte, d int, out *float32)

// wsums4Q8 is wsum1Q8 for four output rows: k < 3 at out+k·d with weights
// at p+k·pn, and the fourth at out+o3 with weights at p+p3 (a group of
// three sets it to row 2's), each value vector dequantised once for all
// four: every sum is bit for bit wsums4's over the dequantised rows.
//
//go:noescape
func wsums4Q8(p *float32, pn, p3, n int, vals *byte, d int, out *float32, o3 int)

// wsums4Q4 is wsums4Q8 over Q4_0 rows.
//
//go:noescape
func wsums4Q4(p *float32, pn, p3, n int, vals *byte, d int, out *float32, o3 int)

// fmaPeak runs n × 192 flops of independent vector fused multiply-adds in
// registers: the compute roofline the benchmarks report beside scoring.
func fmaPeak(n int)

func scoreBlock(q, keys []float32, d int, scale float32, out []float32) {
	scoreBlockLD(q, keys, d, scale, out, len(keys)/max(d, 1))
}

func scoreBlockLD(q, keys []float32, d int, scale float32, out []float32, ld int) {
	if !useAsm {
		scoreBlockGeneric(q, keys, d, scale, out, ld)
		return
	}
	scoreAsm(q, keys, d, scale, out, ld)
}

func scoreBlockF16(q []float32, keys []uint16, d int, scale float32, out []float32) {
	if !useAsm || d < 8 {
		scoreBlockF16Generic(q, keys, d, scale, out)
		return
	}
	scoreAsm(q, keys, d, scale, out, len(keys)/d)
}

// scoreBlockBytes is the size of the block of keys one score call visits, so
// that it stays in L1 while every group of three queries passes over it.
const scoreBlockBytes = 16 << 10

// scoreKeys is how many keys of d elements of size bytes one score call
// takes: a block of about scoreBlockBytes, a multiple of 4, within asmWork.
func scoreKeys(d, size int) int {
	return max(4, min(scoreBlockBytes/(size*d), asmWork/(3*d))&^3)
}

// scoreAsm is scoreBlockLD on the assembly, for either key type.
func scoreAsm[T kvElem](q []float32, keys []T, d int, scale float32, out []float32, ld int) {
	if d <= 0 {
		panic("lava: scoreBlock: d must be positive")
	}
	nq, nk := len(q)/d, len(keys)/d
	if nq == 0 || nk == 0 {
		return
	}
	if ld < nk || len(out) < (nq-1)*ld+nk {
		panic("lava: scoreBlock: out shorter than nq rows of ld ≥ nk")
	}
	size := int(unsafe.Sizeof(keys[0]))
	kc := scoreKeys(d, size)
	for j := 0; j < nk; j += kc {
		n := min(kc, nk-j)
		pf := 1 // the first group's pass brings the block into L1
		for i := 0; i < nq; pf = 0 {
			// A decode group of up to 8 query heads passes over the block
			// at most twice, in fours and threes (8 = 4 + 4, 7 = 4 + 3,
			// 6 = 3 + 3); many queries (Compress's window) go in threes,
			// whose tile does the most work per load, and twos where three
			// would leave one or none would fit (4 = 2 + 2). Only a single
			// query computes a row twice (its repeat, written twice with
			// equal values).
			switch r := nq - i; {
			case r == 4 || nq <= 8 && r >= 7:
				score4x2T(&q[i*d], &q[(i+1)*d], &q[(i+2)*d], &q[(i+3)*d], &keys[j*d], &out[i*ld+j], d, n, ld, 2*ld, 3*ld, scale, pf)
				i += 4
			case r == 3 || r > 4:
				score3x4T(&q[i*d], &q[(i+1)*d], &q[(i+2)*d], &keys[j*d], &out[i*ld+j], d, n, ld, 2*ld, scale, pf)
				i += 3
			default:
				r1 := min(i+1, nq-1)
				score2x4T(&q[i*d], &q[r1*d], &keys[j*d], &out[i*ld+j], d, n, (r1-i)*ld, scale, pf)
				i += 2
			}
		}
		if w := d &^ 7; size == 2 && w < d {
			scoreTail(q, keys[j*d:], d, w, scale, out[j:], ld, n)
		}
	}
}

// scoreTail adds scale·Σ_{w≤t<d} q_i[t]·k_j[t] to the n scores of every query
// i: the last d − w elements of float16 rows, which have no masked load.
// Every key gets the same operations, so equal keys keep equal scores.
func scoreTail[T kvElem](q []float32, keys []T, d, w int, scale float32, out []float32, nk, n int) {
	var buf [8]float32
	kt := buf[:d-w]
	for k := range n {
		widenRow(kt, keys[k*d+w:(k+1)*d])
		for i := 0; i < len(q)/d; i++ {
			var s float32
			for t, x := range q[i*d+w : (i+1)*d] {
				s += x * kt[t]
			}
			out[i*nk+k] += scale * s
		}
	}
}

func maxOf(x []float32) float32 {
	if !useAsm {
		return maxGeneric(x)
	}
	m := maxGeneric(nil) // −Inf, the identity
	for len(x) >= 8 {
		n := vecChunk(len(x))
		// v > m, as in maxGeneric: the chunk maxima are never NaN.
		if v := maxAsm(&x[0], n); v > m {
			m = v
		}
		x = x[n:]
	}
	if v := maxGeneric(x); v > m {
		m = v
	}
	return m
}

// vecChunk is how many of n ≥ 8 elements the next call of a kernel that
// takes whole vectors of 8 covers.
func vecChunk(n int) int {
	return min(n, asmWork) &^ 7
}

// expSub's assembly is a float32 exp, not a call to math.Exp: range
// reduction t = n·ln2 + r with |r| ≤ ln2/2, Cephes' degree-7 polynomial and
// two exact power-of-two factors. It is within 2 ulp of exp(t) for results
// ≥ 2⁻¹²⁶ (TestExpSub states the bound), rounds subnormal results to within
// 2 units of 2⁻¹⁴⁹, gives exactly 1 for t = 0, 0 for t < −104 and −Inf, +Inf
// for t > 89, and NaN for NaN.
func expSub(x []float32, m float32) float32 {
	if !useAsm {
		return expSubGeneric(x, m)
	}
	var s float32
	for len(x) > 0 {
		n := min(len(x), asmWork)
		s += expSubAsm(&x[0], n, m)
		x = x[n:]
	}
	return s
}

func axpy(a float32, x, y []float32) {
	if !useAsm {
		axpyGeneric(a, x, y)
		return
	}
	if len(y) < len(x) {
		panic("lava: axpy: y shorter than x")
	}
	for len(x) > 0 {
		n := min(len(x), asmWork)
		axpyAsm(a, &x[0], &y[0], n)
		x, y = x[n:], y[n:]
	}
}

func weightedSums(p, vals, out []float32, d int) {
	if !useAsm || d < 8 {
		weightedSumsGeneric(p, vals, out, d)
		return
	}
	weightedSumsAsm(p, vals, out, d)
}

func weightedSumsAdd(p []float32, pn int, vals, out []float32, d int) {
	if !useAsm || d < 8 {
		weightedSumsAddGeneric(p, pn, vals, out, d)
		return
	}
	wsumsAddAsm(p, pn, vals, out, d)
}

func weightedSumsF16(p []float32, vals []uint16, out []float32, d int) {
	if !useAsm || d < 8 {
		weightedSumsF16Generic(p, vals, out, d)
		return
	}
	weightedSumsAsm(p, vals, out, d)
}

// wsumsBlockBytes is the size of the block of value rows one weighted-sum
// call visits. The block is revisited by every group of output rows and
// shares L1 with the next block, which the kernels prefetch while they work
// on this one; measured on amd64 at d = 128, 6 KiB blocks ran faster than
// 12, 24 or 36 KiB ones both in L2 and beyond it. (arm64: not measured.)
const wsumsBlockBytes = 6 << 10

// wsumsRows is how many value rows of d ≥ 8 elements, rowBytes bytes, one
// weighted-sum call takes: a block of about wsumsBlockBytes within asmWork.
func wsumsRows(d, rowBytes int) int {
	return max(1, min(wsumsBlockBytes/rowBytes, asmWork/(4*(d&^7))))
}

// weightedSumsAsm computes the g = len(out)/d weighted sums of a query group
// in one pass over the values: per block of rows, the kernels take the
// output rows four at a time (a group of three repeats its last row), then
// two, then one, each loading a value vector once for all the rows it
// serves; later groups find the block in L1. Each call prefetches the block
// after its own (pf = 0 for the last, which has nothing after it in vals):
// without that, the first column pass over a block waits on memory one line
// per row and the other passes do not overlap with it. Every output element
// is one chain of fused multiply-adds over the rows in the order of p,
// whichever kernel, block or column it falls in. d ≥ 8.
func weightedSumsAsm[T kvElem](p []float32, vals []T, out []float32, d int) {
	if len(out) < d {
		return // no output rows
	}
	g := len(out) / d
	n := len(p) / g
	if len(vals) < n*d {
		panic("lava: weightedSums: vals shorter than n·d")
	}
	clear(out[:g*d])
	wsumsAddAsm(p[:g*n], n, vals[:n*d], out[:g*d], d)
}

// wsumsAddAsm adds to each of the g = len(out)/d rows i of out the weighted
// sum Σ_j p[i·pn+j]·row_j of the n = len(vals)/d rows of vals (d ≥ 8): the
// work of weightedSumsAsm, which passes pn = n; a caller that dequantises
// the values a tile at a time passes each tile with its columns of p.
func wsumsAddAsm[T kvElem](p []float32, pn int, vals []T, out []float32, d int) {
	if len(out) < d {
		return // no output rows
	}
	g := len(out) / d
	n := len(vals) / d
	if n == 0 {
		return
	}
	if pn < n || len(p) < (g-1)*pn+n {
		panic("lava: weightedSums: p shorter than g rows of pn ≥ n")
	}
	w := d &^ 7
	rowBytes := d * int(unsafe.Sizeof(vals[0]))
	rows := wsumsRows(d, rowBytes)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		pf := 0
		if j+2*m <= n {
			pf = m * rowBytes
		}
		for i := 0; i < g; {
			pi, vj, oi := &p[i*pn+j], &vals[j*d], &out[i*d]
			switch r := g - i; {
			case r >= 3:
				r = min(r, 4)
				k3 := r - 1 // 2 repeats row 2 in a group of three
				wsums4T(pi, pn, k3*pn, m, vj, d, oi, k3*d, w, pf)
				i += r
			case r == 2:
				wsums2T(pi, pn, m, vj, d, oi, w, pf)
				i += 2
			default:
				wsum1T(pi, m, vj, d, oi, w)
				i++
			}
		}
	}
	if w == d {
		return
	}
	// The last d − w columns, fused like the kernels' and in the same row
	// order.
	var buf [8]float32
	vt := buf[:d-w]
	for j := range n {
		widenRow(vt, vals[j*d+w:(j+1)*d])
		for i := range g {
			o := out[i*d+w : (i+1)*d]
			for t, v := range vt {
				o[t] = fma32(p[i*pn+j], v, o[t])
			}
		}
	}
}

// fma32 returns x·y + z rounded once to float32, as a vector FMA does; Go
// does not fuse float32 arithmetic on amd64, and math.FMA rounds to float64,
// whose rounding to float32 can differ in the last bit. The product is exact
// in float64 (48 bits); the sum is made round-to-odd with the exact error of
// the float64 addition, and 53 ≥ 2·24 + 2 bits make its rounding to float32
// the correctly rounded result.
func fma32(x, y, z float32) float32 {
	p, c := float64(x)*float64(y), float64(z)
	s := p + c
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	b := s - p
	if e := (p - (s - b)) + (c - b); e != 0 {
		if bits := math.Float64bits(s); bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++ // away from zero, towards p + c
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

func l1Norm(x []float32) float32 {
	if !useAsm {
		return l1NormGeneric(x)
	}
	return l1NormAsmT(x)
}

func l1NormF16(x []uint16) float32 {
	if !useAsm {
		return l1NormF16Generic(x)
	}
	return l1NormAsmT(x)
}

// l1NormAsmT is l1Norm on the assembly, for either element type.
func l1NormAsmT[T kvElem](x []T) float32 {
	var s float32
	for len(x) >= 8 {
		n := vecChunk(len(x))
		s += l1NormT(&x[0], n)
		x = x[n:]
	}
	var buf [8]float32
	t := buf[:len(x)]
	widenRow(t, x)
	return s + l1NormGeneric(t)
}

func gatherRows(dst, src []float32, idx []int32, d int) {
	if !useAsm || 4*d < 32 || len(idx) == 0 {
		gatherRowsGeneric(dst, src, idx, d)
		return
	}
	gatherAsmT(dst, src, idx, d)
}

func gatherRowsF16(dst, src []uint16, idx []int32, d int) {
	if !useAsm || 2*d < 32 || len(idx) == 0 {
		gatherRowsGeneric(dst, src, idx, d)
		return
	}
	gatherAsmT(dst, src, idx, d)
}

func gatherRowsBytes(dst, src []byte, idx []int32, rowBytes int) {
	if !useAsm || rowBytes < 32 || len(idx) == 0 {
		gatherRowsGeneric(dst, src, idx, rowBytes)
		return
	}
	gatherAsmT(dst, src, idx, rowBytes)
}

// fusedQueries is the most queries scoreQuant scores with the fused
// kernels, which dequantise each key once per pair of queries; more
// queries share one dequantised tile instead.
const fusedQueries = 8

// scoreQuantFused is scoreQuant on the fused kernels, for rows of whole
// 32-element blocks and at most fusedQueries queries; it reports false,
// doing nothing, for any other call. Keys are taken in blocks of about
// scoreBlockBytes, which stay in L1 while every pair of queries passes.
func scoreQuantFused(q []float32, keys []byte, e Element, d int, scale float32, out []float32) bool {
	if !useAsm || d%quantBlock != 0 || len(q) > fusedQueries*d {
		return false
	}
	rb := e.rowBytes(d)
	nq, nk := len(q)/d, len(keys)/rb
	if nq == 0 || nk == 0 {
		return true
	}
	if len(out) < nq*nk {
		panic("lava: scoreQuant: out shorter than nq·nk")
	}
	kc := max(4, min(scoreBlockBytes/rb, asmWork/(2*d))&^3)
	for j := 0; j < nk; j += kc {
		n := min(kc, nk-j)
		for i := 0; i < nq; i += 2 {
			switch {
			case i+1 == nq && e == Q4_0: // a last odd query
				score1x4Q4(&q[i*d], &keys[j*rb], &out[i*nk+j], d, n, scale)
			case i+1 == nq:
				score1x4Q8(&q[i*d], &keys[j*rb], &out[i*nk+j], d, n, scale)
			case e == Q4_0:
				score2x4Q4(&q[i*d], &q[(i+1)*d], &keys[j*rb], &out[i*nk+j], d, n, nk, scale)
			default:
				score2x4Q8(&q[i*d], &q[(i+1)*d], &keys[j*rb], &out[i*nk+j], d, n, nk, scale)
			}
		}
	}
	return true
}

// weightedSumsQuantFused is weightedSumsQuant on the fused kernels, for
// rows of whole 32-element blocks; it reports false, doing nothing, for any
// other call. Per block of about wsumsBlockBytes of rows (which stay in L1
// while every group of output rows passes over them), the output rows go
// four at a time (a group of three repeats its last), the last one or two
// alone.
func weightedSumsQuantFused(p []float32, vals []byte, e Element, out []float32, d int) bool {
	if !useAsm || d%quantBlock != 0 || len(out) < d {
		return false
	}
	rb := e.rowBytes(d)
	g := len(out) / d
	n := len(p) / g
	if len(vals) < n*rb {
		panic("lava: weightedSums: vals shorter than n rows")
	}
	out = out[:g*d]
	clear(out)
	rows := wsumsRows(d, rb)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		vj := &vals[j*rb]
		for i := 0; i < g; {
			pi, oi := &p[i*n+j], &out[i*d]
			if r := g - i; r >= 3 {
				r = min(r, 4)
				k3 := r - 1 // 2 repeats row 2 in a group of three
				if e == Q4_0 {
					wsums4Q4(pi, n, k3*n, m, vj, d, oi, k3*d)
				} else {
					wsums4Q8(pi, n, k3*n, m, vj, d, oi, k3*d)
				}
				i += r
				continue
			}
			if e == Q4_0 {
				wsum1Q4(pi, m, vj, d, oi)
			} else {
				wsum1Q8(pi, m, vj, d, oi)
			}
			i++
		}
	}
	return true
}

// dequant sets dst to the values of the quantised rows of d elements in
// src; rows of whole 32-element blocks go to the assembly.
func dequant(dst []float32, src []byte, e Element, d int) {
	if !useAsm || d%quantBlock != 0 || len(src) == 0 {
		dequantGeneric(dst, src, e, d)
		return
	}
	bb := e.blockBytes(quantBlock)
	nb := len(src) / bb
	if len(dst) < nb*quantBlock {
		panic("lava: dequant: dst shorter than the blocks of src")
	}
	for b := 0; b < nb; {
		m := min(nb-b, asmWork/quantBlock)
		if e == Q4_0 {
			dequantQ4Asm(&dst[b*quantBlock], &src[b*bb], m)
		} else {
			dequantQ8Asm(&dst[b*quantBlock], &src[b*bb], m)
		}
		b += m
	}
}

// ntGatherBytes is the destination size from which a gather apart from its
// source uses non-temporal stores: runtime·memmove's threshold for the same
// switch, so the kernel and its copy roofline change strategy together.
// Below it the rows are likely to be read again soon, from the cache the
// ordinary stores leave them in.
const ntGatherBytes = 1 << 20

// gatherAsmT copies rows with an inline vector loop instead of a memmove
// call per row, which costs as much as copying a 512-byte row from L2. It
// panics, before anything is written, unless every row idx names is in src
// and dst holds len(idx) rows: the assembly trusts both.
func gatherAsmT[T rowElem](dst, src []T, idx []int32, d int) {
	rows := len(src) / d
	for _, i := range idx {
		if uint(i) >= uint(rows) {
			panic("lava: gatherRows: row index out of range")
		}
	}
	if len(dst) < len(idx)*d {
		panic("lava: gatherRows: dst too short")
	}
	size := int(unsafe.Sizeof(dst[0]))
	nt := 0
	if useNT(dst, src, size*d*len(idx)) {
		nt = 1
	}
	step := gatherStep(d)
	for r := 0; r < len(idx); r += step {
		n := min(step, len(idx)-r)
		gatherAsm(unsafe.Pointer(&dst[r*d]), unsafe.Pointer(&src[0]), &idx[r], n, size*d, nt)
	}
}

// gatherStep is how many rows of d elements one gather call copies.
func gatherStep(d int) int {
	return max(1, asmWork/d)
}

// useNT reports whether a gather writing bytes bytes to dst, from src,
// should use non-temporal stores: only for a large destination that shares
// no memory with src. In place (compaction) the stores land on lines just
// read, which must stay cached.
func useNT[T rowElem](dst, src []T, bytes int) bool {
	if bytes < ntGatherBytes {
		return false
	}
	size := uintptr(unsafe.Sizeof(dst[0]))
	d0 := uintptr(unsafe.Pointer(unsafe.SliceData(dst)))
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	return d0+uintptr(len(dst))*size <= s0 || s0+uintptr(len(src))*size <= d0
}

func widenF16(dst []float32, src []uint16) {
	if !useAsm {
		widenF16Generic(dst, src)
		return
	}
	convertAsm(dst, src)
}

func narrowF16(dst []uint16, src []float32) {
	if !useAsm {
		narrowF16Generic(dst, src)
		return
	}
	if n := len(src); n&7 == 0 && uint(n-1) < asmWork && len(dst) >= n {
		// A row of whole vectors, as Append narrows them: one call,
		// without convertAsm's loop and tail.
		narrowAsm(&dst[0], &src[0], n)
		return
	}
	convertAsm(dst, src)
}

// convertAsm is widenF16 (D float32, S uint16) or narrowF16 (the other way)
// on the assembly.
func convertAsm[D, S kvElem](dst []D, src []S) {
	if len(dst) < len(src) {
		panic("lava: widenF16/narrowF16: dst shorter than src")
	}
	for len(src) >= 8 {
		n := vecChunk(len(src))
		convertT(&dst[0], &src[0], n)
		dst, src = dst[n:], src[n:]
	}
	switch d := any(dst).(type) {
	case []float32:
		widenF16Generic(d, any(src).([]uint16))
	case []uint16:
		narrowF16Generic(d, any(src).([]float32))
	}
}

// copyFinite copies src to dst and returns −1, or the index of the first
// NaN or infinite element of src. The check is fused with the copy: the
// kernel tests each vector while it is in a register, and only a row that
// fails it is scanned again, by firstNonFinite, for the index. dst must be
// at least as long as src.
func copyFinite(dst, src []float32) int {
	if !useAsm {
		return copyFiniteGeneric(dst, src)
	}
	if len(dst) < len(src) {
		panic("lava: copyFinite: dst shorter than src")
	}
	var acc uint32
	if n := len(src); n&7 == 0 && uint(n-1) < asmWork {
		// A row of whole vectors (HeadDim a multiple of 8) in one call,
		// with no loop or tail state to keep across it.
		acc = copyCheckAsm(&dst[0], &src[0], n)
	} else {
		acc = copyCheckLong(dst, src)
	}
	if acc&(1<<31) == 0 {
		return -1
	}
	return firstNonFinite(src)
}

// copyCheckLong is copyFinite's copy and check of any length: calls of at
// most asmWork elements, then a Go tail.
func copyCheckLong(dst, src []float32) uint32 {
	var acc uint32
	for len(src) >= 8 {
		n := vecChunk(len(src))
		acc |= copyCheckAsm(&dst[0], &src[0], n)
		dst, src = dst[n:], src[n:]
	}
	return acc | copyCheckGeneric(dst, src)
}

// finiteF16Row tells whether no element of a float16 row has an exponent of
// all ones: Inf, NaN, or an input that overflowed when it was narrowed.
func finiteF16Row(row []uint16) bool {
	if !useAsm {
		return finiteF16RowGeneric(row)
	}
	if n := len(row); n&7 == 0 && uint(n-1) < asmWork {
		return checkF16Asm(&row[0], n)&0x8000 == 0
	}
	var acc uint16
	for len(row) >= 8 {
		n := vecChunk(len(row))
		acc |= checkF16Asm(&row[0], n)
		row = row[n:]
	}
	return (acc|checkF16Generic(row))&0x8000 == 0
}

// The element type picks the assembly kernel of a family: type switches on
// pointers, which allocate nothing and let nothing escape.

func score3x4T[T kvElem](q0, q1, q2 *float32, keys *T, out *float32, d, nk, o1, o2 int, scale float32, pf int) {
	switch k := any(keys).(type) {
	case *float32:
		score3x4(q0, q1, q2, k, out, d, nk, o1, o2, scale, pf)
	case *uint16:
		score3x4F16(q0, q1, q2, k, out, d, nk, o1, o2, scale, pf)
	}
}

func score4x2T[T kvElem](q0, q1, q2, q3 *float32, keys *T, out *float32, d, nk, o1, o2, o3 int, scale float32, pf int) {
	switch k := any(keys).(type) {
	case *float32:
		score4x2(q0, q1, q2, q3, k, out, d, nk, o1, o2, o3, scale, pf)
	case *uint16:
		score4x2F16(q0, q1, q2, q3, k, out, d, nk, o1, o2, o3, scale, pf)
	}
}

func score2x4T[T kvElem](q0, q1 *float32, keys *T, out *float32, d, nk, o1 int, scale float32, pf int) {
	switch k := any(keys).(type) {
	case *float32:
		score2x4(q0, q1, k, out, d, nk, o1, scale, pf)
	case *uint16:
		score2x4F16(q0, q1, k, out, d, nk, o1, scale, pf)
	}
}

func wsum1T[T kvElem](p *float32, n int, vals *T, stride int, out *float32, w int) {
	switch v := any(vals).(type) {
	case *float32:
		wsum1(p, n, v, stride, out, w)
	case *uint16:
		wsum1F16(p, n, v, stride, out, w)
	}
}

func wsums2T[T kvElem](p *float32, pn, n int, vals *T, stride int, out *float32, w, pf int) {
	switch v := any(vals).(type) {
	case *float32:
		wsums2(p, pn, n, v, stride, out, w, pf)
	case *uint16:
		wsums2F16(p, pn, n, v, stride, out, w, pf)
	}
}

func wsums4T[T kvElem](p *float32, pn, p3, n int, vals *T, stride int, out *float32, o3, w, pf int) {
	switch v := any(vals).(type) {
	case *float32:
		wsums4(p, pn, p3, n, v, stride, out, o3, w, pf)
	case *uint16:
		wsums4F16(p, pn, p3, n, v, stride, out, o3, w, pf)
	}
}

func l1NormT[T kvElem](x *T, n int) float32 {
	switch x := any(x).(type) {
	case *float32:
		return l1NormAsm(x, n)
	case *uint16:
		return l1NormF16Asm(x, n)
	}
	panic("unreachable")
}

func convertT[D, S kvElem](dst *D, src *S, n int) {
	switch d := any(dst).(type) {
	case *float32:
		widenAsm(d, any(src).(*uint16), n)
	case *uint16:
		narrowAsm(d, any(src).(*float32), n)
	}
}

// widenRow sets dst to the float32 values of src, a row tail of at most 8
// elements.
func widenRow[T kvElem](dst []float32, src []T) {
	switch s := any(src).(type) {
	case []float32:
		copy(dst, s)
	case []uint16:
		widenF16Generic(dst, s)
	}
}
