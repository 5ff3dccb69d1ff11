//go:build gc && !purego

package lava

import (
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Dispatch for amd64: AVX2, FMA and F16C assembly in kernels_amd64.s.
//
// The wrappers here check what the assembly trusts (lengths, bounds) and cut
// the work into bounded calls: assembly is not preemptible, so no single call
// may run for long.

// useAsm selects the assembly kernels; tests turn it off to run the generic
// ones. HasFMA and HasF16C are raw CPUID bits and only HasAVX2 includes the
// OS check for saved YMM state, so all three are required.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

//go:noescape
func score3x4AVX2(q0, q1, q2, keys, out *float32, d, nk, o1, o2 int, scale float32)

//go:noescape
func score3x4F16AVX2(q0, q1, q2 *float32, keys *uint16, out *float32, d, nk, o1, o2 int, scale float32)

// scoreKeys is how many keys one score call visits: about 16 KiB of keys,
// so that the block stays in L1 while every query group passes over it.
func scoreKeys(rowBytes int) int {
	return max(4, 16384/rowBytes&^3)
}

func scoreBlock(q, keys []float32, d int, scale float32, out []float32) {
	if !useAsm || d <= 0 {
		scoreBlockGeneric(q, keys, d, scale, out)
		return
	}
	nq, nk := len(q)/d, len(keys)/d
	if nq == 0 || nk == 0 {
		return
	}
	_ = out[nq*nk-1]
	kc := scoreKeys(4 * d)
	for j := 0; j < nk; j += kc {
		n := min(kc, nk-j)
		for i := 0; i < nq; i += 3 {
			// A short last group repeats its last query; the repeated
			// rows are written twice with identical values.
			r1, r2 := min(i+1, nq-1), min(i+2, nq-1)
			score3x4AVX2(&q[i*d], &q[r1*d], &q[r2*d], &keys[j*d], &out[i*nk+j], d, n, (r1-i)*nk, (r2-i)*nk, scale)
		}
	}
}

func scoreBlockF16(q []float32, keys []uint16, d int, scale float32, out []float32) {
	if !useAsm || d < 8 {
		scoreBlockF16Generic(q, keys, d, scale, out)
		return
	}
	nq, nk := len(q)/d, len(keys)/d
	if nq == 0 || nk == 0 {
		return
	}
	_ = out[nq*nk-1]
	kc := scoreKeys(2 * d)
	d8 := d &^ 7
	for j := 0; j < nk; j += kc {
		n := min(kc, nk-j)
		for i := 0; i < nq; i += 3 {
			r1, r2 := min(i+1, nq-1), min(i+2, nq-1)
			score3x4F16AVX2(&q[i*d], &q[r1*d], &q[r2*d], &keys[j*d], &out[i*nk+j], d, n, (r1-i)*nk, (r2-i)*nk, scale)
		}
		if d8 == d {
			continue
		}
		// The last d mod 8 elements of every row, in scalar code.
		for i := range nq {
			qt := q[i*d+d8 : (i+1)*d]
			row := out[i*nk+j : i*nk+j+n]
			for k := range row {
				kt := keys[(j+k)*d+d8 : (j+k+1)*d]
				var s float32
				for t, x := range qt {
					s += x * f16ToF32(kt[t])
				}
				row[k] += scale * s
			}
		}
	}
}

// fmaPeakAVX2 runs n iterations of 192 flops of independent FMAs: the
// compute roofline BenchmarkKernel reports beside the score kernel.
func fmaPeakAVX2(n int)

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expSubAVX2(x *float32, n int, m float32) float32

//go:noescape
func axpyAVX2(a float32, x, y *float32, n int)

//go:noescape
func weightedSumAVX2(p *float32, n int, vals *float32, stride int, out *float32, w int)

//go:noescape
func weightedSumF16AVX2(p *float32, n int, vals *uint16, stride int, out *float32, w int)

//go:noescape
func l1NormAVX2(x *float32, n int) float32

//go:noescape
func l1NormF16AVX2(x *uint16, n int) float32

//go:noescape
func widenAVX2(dst *float32, src *uint16, n int)

//go:noescape
func narrowAVX2(dst *uint16, src *float32, n int)

// vecChunk bounds the elements one call of a streaming kernel visits:
// 16 Ki elements is a few microseconds of work.
const vecChunk = 1 << 14

func maxOf(x []float32) float32 {
	if !useAsm {
		return maxGeneric(x)
	}
	m := float32(math.Inf(-1))
	for len(x) >= 8 {
		n := min(len(x), vecChunk) &^ 7
		m = max32(m, maxAVX2(&x[0], n))
		x = x[n:]
	}
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

// max32 is maxGeneric's v > m: unlike the builtin max it ignores a NaN v,
// and the chunk maxima are never NaN.
func max32(m, v float32) float32 {
	if v > m {
		return v
	}
	return m
}

// expSub's assembly is a float32 exp, not a call to math.Exp: range
// reduction t = n·ln2 + r with |r| ≤ ln2/2, Cephes' degree-7 polynomial and
// two exact power-of-two factors. Measured over the test inputs it is within
// 2 ulp of exp(t) for results ≥ 2⁻¹²⁶ (TestExpSub states the bound), rounds
// subnormal results to within 2 units of 2⁻¹⁴⁹, gives exactly 1 for t = 0,
// 0 for t < −104 and −Inf, +Inf for t > 89, and NaN for NaN.
func expSub(x []float32, m float32) float32 {
	if !useAsm {
		return expSubGeneric(x, m)
	}
	var s float32
	for len(x) > 0 {
		n := min(len(x), vecChunk)
		s += expSubAVX2(&x[0], n, m)
		x = x[n:]
	}
	return s
}

func axpy(a float32, x, y []float32) {
	if !useAsm {
		axpyGeneric(a, x, y)
		return
	}
	y = y[:len(x)]
	for len(x) >= 8 {
		n := min(len(x), vecChunk) &^ 7
		axpyAVX2(a, &x[0], &y[0], n)
		x, y = x[n:], y[n:]
	}
	for i, v := range x {
		y[i] = float32(math.FMA(float64(a), float64(v), float64(y[i]))) // fused, as the vector body
	}
}

func weightedSum(p, vals, out []float32) {
	d := len(out)
	if !useAsm || d < 8 {
		weightedSumGeneric(p, vals, out)
		return
	}
	vals = vals[:len(p)*d]
	clear(out)
	d8 := d &^ 7
	rows := wsumsRows(4 * d)
	for i := 0; i < len(p); i += rows {
		n := min(rows, len(p)-i)
		weightedSumAVX2(&p[i], n, &vals[i*d], d, &out[0], d8)
	}
	if d8 == d {
		return
	}
	for i, w := range p {
		row := vals[i*d+d8 : (i+1)*d]
		for t, v := range row {
			out[d8+t] += w * v
		}
	}
}

func weightedSumF16(p []float32, vals []uint16, out []float32) {
	d := len(out)
	if !useAsm || d < 8 {
		weightedSumF16Generic(p, vals, out)
		return
	}
	vals = vals[:len(p)*d]
	clear(out)
	d8 := d &^ 7
	rows := wsumsRows(2 * d)
	for i := 0; i < len(p); i += rows {
		n := min(rows, len(p)-i)
		weightedSumF16AVX2(&p[i], n, &vals[i*d], d, &out[0], d8)
	}
	if d8 == d {
		return
	}
	for i, w := range p {
		row := vals[i*d+d8 : (i+1)*d]
		for t, v := range row {
			out[d8+t] += w * f16ToF32(v)
		}
	}
}

func l1Norm(x []float32) float32 {
	if !useAsm {
		return l1NormGeneric(x)
	}
	var s float32
	for len(x) >= 8 {
		n := min(len(x), vecChunk) &^ 7
		s += l1NormAVX2(&x[0], n)
		x = x[n:]
	}
	return s + l1NormGeneric(x)
}

func l1NormF16(x []uint16) float32 {
	if !useAsm {
		return l1NormF16Generic(x)
	}
	var s float32
	for len(x) >= 8 {
		n := min(len(x), vecChunk) &^ 7
		s += l1NormF16AVX2(&x[0], n)
		x = x[n:]
	}
	return s + l1NormF16Generic(x)
}

//go:noescape
func gatherF32AVX2(dst, src *float32, idx *int32, n, rowBytes, nt int)

//go:noescape
func gatherF16AVX2(dst, src *uint16, idx *int32, n, rowBytes, nt int)

// gatherChunk bounds the rows one gather call copies.
const gatherChunk = 256

// ntGatherBytes is the destination size from which a gather apart from its
// source uses non-temporal stores: runtime·memmove's threshold for the same
// switch, so the kernel and its copy roofline change strategy together.
// Below it the rows are likely to be read again soon, from the cache the
// ordinary stores leave them in.
const ntGatherBytes = 1 << 20

// checkGather panics, before anything is written, unless every row idx
// names is in src and dst holds len(idx) rows: the assembly trusts both.
func checkGather(ndst, nsrc int, idx []int32, d int) {
	rows := nsrc / d
	for _, i := range idx {
		if uint(i) >= uint(rows) {
			panic("lava: gatherRows: row index out of range")
		}
	}
	if ndst < len(idx)*d {
		panic("lava: gatherRows: dst too short")
	}
}

// useNT reports whether a gather writing bytes bytes to dst, from src,
// should use non-temporal stores: only for a large destination that shares
// no memory with src. In place (compaction) the stores land on lines just
// read, which must stay cached.
func useNT[T float32 | uint16](dst, src []T, bytes int) bool {
	if bytes < ntGatherBytes {
		return false
	}
	size := int(unsafe.Sizeof(dst[0]))
	d0 := uintptr(unsafe.Pointer(unsafe.SliceData(dst)))
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	return d0+uintptr(len(dst)*size) <= s0 || s0+uintptr(len(src)*size) <= d0
}

// gatherRows copies rows with an inline vector loop instead of a memmove
// call per row, which costs as much as copying a 512-byte row from L2.
func gatherRows(dst, src []float32, idx []int32, d int) {
	if !useAsm || 4*d < 32 || len(idx) == 0 {
		gatherRowsGeneric(dst, src, idx, d)
		return
	}
	checkGather(len(dst), len(src), idx, d)
	nt := 0
	if useNT(dst, src, 4*d*len(idx)) {
		nt = 1
	}
	for r := 0; r < len(idx); r += gatherChunk {
		n := min(gatherChunk, len(idx)-r)
		gatherF32AVX2(&dst[r*d], &src[0], &idx[r], n, 4*d, nt)
	}
}

func gatherRowsF16(dst, src []uint16, idx []int32, d int) {
	if !useAsm || 2*d < 32 || len(idx) == 0 {
		gatherRowsGeneric(dst, src, idx, d)
		return
	}
	checkGather(len(dst), len(src), idx, d)
	nt := 0
	if useNT(dst, src, 2*d*len(idx)) {
		nt = 1
	}
	for r := 0; r < len(idx); r += gatherChunk {
		n := min(gatherChunk, len(idx)-r)
		gatherF16AVX2(&dst[r*d], &src[0], &idx[r], n, 2*d, nt)
	}
}

func widenF16(dst []float32, src []uint16) {
	if !useAsm {
		widenF16Generic(dst, src)
		return
	}
	dst = dst[:len(src)]
	for len(src) >= 8 {
		n := min(len(src), vecChunk) &^ 7
		widenAVX2(&dst[0], &src[0], n)
		dst, src = dst[n:], src[n:]
	}
	widenF16Generic(dst, src)
}

func narrowF16(dst []uint16, src []float32) {
	if !useAsm {
		narrowF16Generic(dst, src)
		return
	}
	dst = dst[:len(src)]
	for len(src) >= 8 {
		n := min(len(src), vecChunk) &^ 7
		narrowAVX2(&dst[0], &src[0], n)
		dst, src = dst[n:], src[n:]
	}
	narrowF16Generic(dst, src)
}

//go:noescape
func weightedSums4AVX2(p *float32, pn, p3, n int, vals *float32, stride int, out *float32, o3, w, pf int)

//go:noescape
func weightedSums4F16AVX2(p *float32, pn, p3, n int, vals *uint16, stride int, out *float32, o3, w, pf int)

//go:noescape
func weightedSums2AVX2(p *float32, pn, n int, vals *float32, stride int, out *float32, w, pf int)

//go:noescape
func weightedSums2F16AVX2(p *float32, pn, n int, vals *uint16, stride int, out *float32, w, pf int)

// wsumsRows is how many value rows one grouped weighted-sum call visits:
// about 6 KiB of them. Smaller than wsumRows because the block is revisited
// by every group of output rows and shares L1 with the next block, which the
// kernels prefetch while they work on this one; measured at d = 128, 6 KiB
// blocks ran faster than 12, 24 or 36 KiB ones both in L2 and beyond it.
func wsumsRows(rowBytes int) int {
	return max(1, 6144/rowBytes)
}

// weightedSums computes the g weighted sums of a query group in one pass
// over the values: per block of rows, the kernels take the output rows four
// at a time (a group of three repeats its last row), then two, then one,
// each loading a value vector once for all the rows it serves; later groups
// find the block in L1. Each call prefetches the block after its own, pf
// bytes on (0 for the last, which has nothing after it in vals): without
// that, the first column pass over a block waits on memory one line per row
// and the other passes do not overlap with it.
func weightedSums(p, vals, out []float32, d int) {
	if d <= 0 || len(out) < d {
		return // no output rows
	}
	g := len(out) / d
	if !useAsm || d < 8 {
		weightedSumsGeneric(p, vals, out, d)
		return
	}
	if g == 1 {
		weightedSum(p, vals, out[:d])
		return
	}
	n := len(p) / g
	p, vals, out = p[:g*n], vals[:n*d], out[:g*d]
	clear(out)
	if n == 0 {
		return
	}
	d8 := d &^ 7
	rows := wsumsRows(4 * d)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		pf := 0
		if j+2*m <= n {
			pf = 4 * m * d
		}
		for i := 0; i < g; {
			pi, oi := &p[i*n+j], &out[i*d]
			switch r := g - i; {
			case r >= 3:
				r = min(r, 4)
				k3 := r - 1 // 2 repeats row 2 in a group of three
				weightedSums4AVX2(pi, n, k3*n, m, &vals[j*d], d, oi, k3*d, d8, pf)
				i += r
			case r == 2:
				weightedSums2AVX2(pi, n, m, &vals[j*d], d, oi, d8, pf)
				i += 2
			default:
				weightedSumAVX2(pi, m, &vals[j*d], d, oi, d8)
				i++
			}
		}
	}
	if d8 == d {
		return
	}
	for i := range g {
		o := out[i*d+d8 : (i+1)*d]
		for j, w := range p[i*n : (i+1)*n] {
			row := vals[j*d+d8 : (j+1)*d]
			for t, v := range row {
				o[t] += w * v
			}
		}
	}
}

func weightedSumsF16(p []float32, vals []uint16, out []float32, d int) {
	if d <= 0 || len(out) < d {
		return
	}
	g := len(out) / d
	if !useAsm || d < 8 {
		weightedSumsF16Generic(p, vals, out, d)
		return
	}
	if g == 1 {
		weightedSumF16(p, vals, out[:d])
		return
	}
	n := len(p) / g
	p, vals, out = p[:g*n], vals[:n*d], out[:g*d]
	clear(out)
	if n == 0 {
		return
	}
	d8 := d &^ 7
	rows := wsumsRows(2 * d)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		pf := 0
		if j+2*m <= n {
			pf = 2 * m * d
		}
		for i := 0; i < g; {
			pi, oi := &p[i*n+j], &out[i*d]
			switch r := g - i; {
			case r >= 3:
				r = min(r, 4)
				k3 := r - 1 // 2 repeats row 2 in a group of three
				weightedSums4F16AVX2(pi, n, k3*n, m, &vals[j*d], d, oi, k3*d, d8, pf)
				i += r
			case r == 2:
				weightedSums2F16AVX2(pi, n, m, &vals[j*d], d, oi, d8, pf)
				i += 2
			default:
				weightedSumF16AVX2(pi, m, &vals[j*d], d, oi, d8)
				i++
			}
		}
	}
	if d8 == d {
		return
	}
	for i := range g {
		o := out[i*d+d8 : (i+1)*d]
		for j, w := range p[i*n : (i+1)*n] {
			row := vals[j*d+d8 : (j+1)*d]
			for t, v := range row {
				o[t] += w * f16ToF32(v)
			}
		}
	}
}
