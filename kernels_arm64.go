//go:build gc && !purego

package lava

// Dispatch for arm64: NEON assembly kernels in kernels_arm64.s.
//
// The Go wrappers below validate lengths and split the work; the assembly
// trusts the pointers and counts it is given. Every assembly call covers a
// bounded amount of work (at most about asmChunk elements, or asmChunk
// multiply-adds for scoring) because assembly is never preempted: one call
// over a 128k-token cache would stall the garbage collector.

// useAsm selects the NEON kernels; tests turn it off to run the generic ones.
// There is no CPU feature detection: Advanced SIMD (NEON), including the
// half-precision conversions FCVTL/FCVTN, is a mandatory part of ARMv8-A, so
// every arm64 CPU Go runs on has it.
var useAsm = true

// asmChunk bounds the elements (or multiply-adds) of one assembly call:
// 64 Ki single-precision operations take a few tens of microseconds.
const asmChunk = 1 << 16

// Prototypes of the kernels in kernels_arm64.s. Counts are in elements and are
// at least 1 unless noted; the pointers cover them.

// dotScaleNEON sets out[j] = scale·dot(q, k_j) for the nk ≥ 1 rows k_j of d ≥ 1
// elements at keys.
//
//go:noescape
func dotScaleNEON(q, keys *float32, d, nk int, scale float32, out *float32)

// dotScaleF16NEON is dotScaleNEON over float16 keys.
//
//go:noescape
func dotScaleF16NEON(q *float32, keys *uint16, d, nk int, scale float32, out *float32)

// maxNEON returns the largest of the n ≥ 0 elements at x, ignoring NaNs, or
// −Inf if there is none.
//
//go:noescape
func maxNEON(x *float32, n int) float32

// expSubNEON replaces the n ≥ 0 elements x_i with exp(x_i − m) and returns
// their sum.
//
//go:noescape
func expSubNEON(x *float32, n int, m float32) float32

// axpyNEON adds a·x to y, n ≥ 0 elements.
//
//go:noescape
func axpyNEON(a float32, x, y *float32, n int)

// wsumAccNEON adds Σ_i p[i]·row_i to out for the n ≥ 1 rows of d ≥ 1 elements
// at vals.
//
//go:noescape
func wsumAccNEON(p *float32, n int, vals *float32, d int, out *float32)

// wsumAccF16NEON is wsumAccNEON over float16 rows.
//
//go:noescape
func wsumAccF16NEON(p *float32, n int, vals *uint16, d int, out *float32)

// l1NormNEON returns Σ|x_i| over n ≥ 0 elements.
//
//go:noescape
func l1NormNEON(x *float32, n int) float32

// l1NormF16NEON returns Σ|x_i| over n ≥ 0 float16 elements.
//
//go:noescape
func l1NormF16NEON(x *uint16, n int) float32

// widenF16NEON converts n ≥ 0 float16 values to float32 (FCVTL, exact).
//
//go:noescape
func widenF16NEON(dst *float32, src *uint16, n int)

// narrowF16NEON converts n ≥ 0 float32 values to float16 (FCVTN, rounding to
// nearest even: Go leaves FPCR at its reset value, RNE with no flush-to-zero).
//
//go:noescape
func narrowF16NEON(dst *uint16, src *float32, n int)

// keysPerCall is how many key rows of d elements one scoring call may cover.
func keysPerCall(d int) int {
	return max(1, asmChunk/d)
}

func scoreBlock(q, keys []float32, d int, scale float32, out []float32) {
	if !useAsm {
		scoreBlockGeneric(q, keys, d, scale, out)
		return
	}
	if d <= 0 {
		panic("lava: scoreBlock: d must be positive")
	}
	nq, nk := len(q)/d, len(keys)/d
	if len(out) < nq*nk {
		panic("lava: scoreBlock: out shorter than nq·nk")
	}
	step := keysPerCall(d)
	for i := range nq {
		for j := 0; j < nk; j += step {
			n := min(step, nk-j)
			dotScaleNEON(&q[i*d], &keys[j*d], d, n, scale, &out[i*nk+j])
		}
	}
}

func scoreBlockF16(q []float32, keys []uint16, d int, scale float32, out []float32) {
	if !useAsm {
		scoreBlockF16Generic(q, keys, d, scale, out)
		return
	}
	if d <= 0 {
		panic("lava: scoreBlockF16: d must be positive")
	}
	nq, nk := len(q)/d, len(keys)/d
	if len(out) < nq*nk {
		panic("lava: scoreBlockF16: out shorter than nq·nk")
	}
	step := keysPerCall(d)
	for i := range nq {
		for j := 0; j < nk; j += step {
			n := min(step, nk-j)
			dotScaleF16NEON(&q[i*d], &keys[j*d], d, n, scale, &out[i*nk+j])
		}
	}
}

func maxOf(x []float32) float32 {
	if !useAsm {
		return maxGeneric(x)
	}
	m := maxGeneric(nil) // −Inf, the identity
	for len(x) > 0 {
		n := min(len(x), asmChunk)
		// The generic rule v > m also ignores NaN chunk results, of which
		// there are none: maxNEON never returns NaN.
		if v := maxNEON(&x[0], n); v > m {
			m = v
		}
		x = x[n:]
	}
	return m
}

func expSub(x []float32, m float32) float32 {
	if !useAsm {
		return expSubGeneric(x, m)
	}
	var s float32
	for len(x) > 0 {
		n := min(len(x), asmChunk)
		s += expSubNEON(&x[0], n, m)
		x = x[n:]
	}
	return s
}

func axpy(a float32, x, y []float32) {
	if !useAsm {
		axpyGeneric(a, x, y)
		return
	}
	y = y[:len(x)] // the generic code would panic on y[i] too
	for len(x) > 0 {
		n := min(len(x), asmChunk)
		axpyNEON(a, &x[0], &y[0], n)
		x, y = x[n:], y[n:]
	}
}

func weightedSum(p, vals, out []float32) {
	if !useAsm {
		weightedSumGeneric(p, vals, out)
		return
	}
	d := len(out)
	clear(out)
	if d == 0 || len(p) == 0 {
		return
	}
	if len(vals) < len(p)*d {
		panic("lava: weightedSum: vals shorter than len(p)·len(out)")
	}
	// The assembly accumulates into out row by row, in the order of p, so
	// splitting the rows across calls does not change the result.
	step := max(1, asmChunk/d)
	for i := 0; i < len(p); i += step {
		n := min(step, len(p)-i)
		wsumAccNEON(&p[i], n, &vals[i*d], d, &out[0])
	}
}

func weightedSumF16(p []float32, vals []uint16, out []float32) {
	if !useAsm {
		weightedSumF16Generic(p, vals, out)
		return
	}
	d := len(out)
	clear(out)
	if d == 0 || len(p) == 0 {
		return
	}
	if len(vals) < len(p)*d {
		panic("lava: weightedSumF16: vals shorter than len(p)·len(out)")
	}
	step := max(1, asmChunk/d)
	for i := 0; i < len(p); i += step {
		n := min(step, len(p)-i)
		wsumAccF16NEON(&p[i], n, &vals[i*d], d, &out[0])
	}
}

func l1Norm(x []float32) float32 {
	if !useAsm {
		return l1NormGeneric(x)
	}
	var s float32
	for len(x) > 0 {
		n := min(len(x), asmChunk)
		s += l1NormNEON(&x[0], n)
		x = x[n:]
	}
	return s
}

func l1NormF16(x []uint16) float32 {
	if !useAsm {
		return l1NormF16Generic(x)
	}
	var s float32
	for len(x) > 0 {
		n := min(len(x), asmChunk)
		s += l1NormF16NEON(&x[0], n)
		x = x[n:]
	}
	return s
}

// gatherRows and gatherRowsF16 stay in Go: the generic kernel is a loop of
// copy calls, and copy is already runtime·memmove in assembly, which also
// handles the overlap of in-place compaction. A NEON gather would only save
// the per-row call.

func gatherRows(dst, src []float32, idx []int32, d int) { gatherRowsGeneric(dst, src, idx, d) }

func gatherRowsF16(dst, src []uint16, idx []int32, d int) { gatherRowsGeneric(dst, src, idx, d) }

func widenF16(dst []float32, src []uint16) {
	if !useAsm {
		widenF16Generic(dst, src)
		return
	}
	dst = dst[:len(src)]
	for len(src) > 0 {
		n := min(len(src), asmChunk)
		widenF16NEON(&dst[0], &src[0], n)
		dst, src = dst[n:], src[n:]
	}
}

func narrowF16(dst []uint16, src []float32) {
	if !useAsm {
		narrowF16Generic(dst, src)
		return
	}
	dst = dst[:len(src)]
	for len(src) > 0 {
		n := min(len(src), asmChunk)
		narrowF16NEON(&dst[0], &src[0], n)
		dst, src = dst[n:], src[n:]
	}
}

// wsums4NEON adds, for the output rows k < 4 and columns c < d,
// Σ_{i<n} p[k·pn+i]·vals[i·d+c] to out[k·d+c], except that row 3 has its
// weights at p+p3 and its output at out+o3 (elements): a group of three
// passes p3 = 2·pn, o3 = 2·d. Each value vector is loaded once for the four
// rows. n ≥ 1, d ≥ 1.
//
//go:noescape
func wsums4NEON(p *float32, pn, p3, n int, vals *float32, d int, out *float32, o3 int)

// wsums4F16NEON is wsums4NEON over float16 values.
//
//go:noescape
func wsums4F16NEON(p *float32, pn, p3, n int, vals *uint16, d int, out *float32, o3 int)

// wsums2NEON is wsums4NEON for the two output rows at out and out+d, with
// weights at p and p+pn.
//
//go:noescape
func wsums2NEON(p *float32, pn, n int, vals *float32, d int, out *float32)

// wsums2F16NEON is wsums2NEON over float16 values.
//
//go:noescape
func wsums2F16NEON(p *float32, pn, n int, vals *uint16, d int, out *float32)

// wsumsBlock is the bytes of value rows one grouped call visits. A group of
// more than four heads passes over each block once per four heads, so the
// block should still be in L1 for the second pass: 16 KiB is a quarter of
// the 64 KiB L1D of Neoverse N1/V1/V2 and half that of a Cortex-A55, with
// room for the weights and the output rows. It also bounds each call to at
// most 4·16 Ki/4 = 16 Ki multiply-adds over float32 values, 32 Ki over
// float16 ones (both within asmChunk), unless one row alone is larger.
// (Chosen by that reasoning, not measured on hardware.)
const wsumsBlock = 16 << 10

// wsumsRows is how many value rows of rowBytes bytes one grouped call takes.
func wsumsRows(rowBytes int) int {
	return max(1, wsumsBlock/rowBytes)
}

// weightedSums computes the g = len(out)/d weighted sums of a query group in
// one pass over the values: per block of value rows, the output rows are
// taken four at a time (a group of three repeats its last row), then two,
// then one, each kernel loading a value vector once for all its rows; later
// groups of four find the block in L1. Every output element accumulates the
// rows in the order of p, across blocks too, as the generic kernel does.
func weightedSums(p, vals, out []float32, d int) {
	if !useAsm {
		weightedSumsGeneric(p, vals, out, d)
		return
	}
	if d <= 0 || len(out) < d {
		return // no output rows, as on amd64
	}
	g := len(out) / d
	if g == 1 {
		weightedSum(p, vals, out[:d])
		return
	}
	n := len(p) / g
	if len(vals)/d < n {
		panic("lava: weightedSums: vals shorter than n·d")
	}
	p, vals, out = p[:g*n], vals[:n*d], out[:g*d]
	clear(out)
	if n == 0 {
		return
	}
	rows := wsumsRows(4 * d)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		for i := 0; i < g; {
			pi, oi := &p[i*n+j], &out[i*d]
			switch r := g - i; {
			case r >= 3:
				r = min(r, 4)
				k3 := r - 1 // 2 repeats row 2 in a group of three
				wsums4NEON(pi, n, k3*n, m, &vals[j*d], d, oi, k3*d)
				i += r
			case r == 2:
				wsums2NEON(pi, n, m, &vals[j*d], d, oi)
				i += 2
			default:
				wsumAccNEON(pi, m, &vals[j*d], d, oi)
				i++
			}
		}
	}
}

func weightedSumsF16(p []float32, vals []uint16, out []float32, d int) {
	if !useAsm {
		weightedSumsF16Generic(p, vals, out, d)
		return
	}
	if d <= 0 || len(out) < d {
		return
	}
	g := len(out) / d
	if g == 1 {
		weightedSumF16(p, vals, out[:d])
		return
	}
	n := len(p) / g
	if len(vals)/d < n {
		panic("lava: weightedSumsF16: vals shorter than n·d")
	}
	p, vals, out = p[:g*n], vals[:n*d], out[:g*d]
	clear(out)
	if n == 0 {
		return
	}
	rows := wsumsRows(2 * d)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		for i := 0; i < g; {
			pi, oi := &p[i*n+j], &out[i*d]
			switch r := g - i; {
			case r >= 3:
				r = min(r, 4)
				k3 := r - 1
				wsums4F16NEON(pi, n, k3*n, m, &vals[j*d], d, oi, k3*d)
				i += r
			case r == 2:
				wsums2F16NEON(pi, n, m, &vals[j*d], d, oi)
				i += 2
			default:
				wsumAccF16NEON(pi, m, &vals[j*d], d, oi)
				i++
			}
		}
	}
}
