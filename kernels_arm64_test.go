//go:build arm64 && gc && !purego

package lava

// arm64-only checks of the NEON kernels against the generic ones and against
// float64 oracles: lengths 0..70 (more than two 16-element blocks plus every
// tail), offsets 0..7 for every pointer, canaries around every output, and
// lengths past asmWork so the Go wrappers' splitting is exercised.
// Run under qemu: GOARCH=arm64 go test -exec qemu-aarch64 .

import (
	"math"
	"math/rand/v2"
	"testing"
)

const (
	neonMaxLen = 70
	neonPad    = 8 // canary elements on each side of an output
	neonEps    = 1.0 / (1 << 24)
)

// neonBuf returns a slice of n elements at offset off inside a larger buffer
// whose other elements are canary; check reports any changed canary.
type neonBuf[T float32 | uint16] struct {
	all    []T
	off, n int
	canary T
}

func newNeonBuf[T float32 | uint16](n, off int, canary T) *neonBuf[T] {
	b := &neonBuf[T]{all: make([]T, off+n+neonPad), off: off, n: n, canary: canary}
	for i := range b.all {
		b.all[i] = canary
	}
	return b
}

func (b *neonBuf[T]) s() []T { return b.all[b.off : b.off+b.n : b.off+b.n] }

func (b *neonBuf[T]) check(t *testing.T, what string) {
	t.Helper()
	for i, v := range b.all {
		if (i < b.off || i >= b.off+b.n) && !sameBits(v, b.canary) {
			t.Fatalf("%s: canary at %d (slice [%d:%d]) overwritten: %v", what, i, b.off, b.off+b.n, v)
		}
	}
}

// sameBits compares bit patterns: the float32 canary is a NaN.
func sameBits[T float32 | uint16](a, b T) bool {
	if x, ok := any(a).(float32); ok {
		return math.Float32bits(x) == math.Float32bits(any(b).(float32))
	}
	return a == b
}

// f32Canary is a NaN pattern no kernel produces.
var f32Canary = math.Float32frombits(0x7fa5a5a5)

const f16Canary = 0x7ea5

func randF32s(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

func randF16s(r *rand.Rand, n int, scale float64) []uint16 {
	x := make([]uint16, n)
	for i := range x {
		x[i] = f32ToF16(float32(r.NormFloat64() * scale))
	}
	return x
}

// at copies x into a fresh buffer at offset off, so inputs are misaligned too.
func at[T float32 | uint16](x []T, off int) []T {
	b := make([]T, off+len(x))
	copy(b[off:], x)
	return b[off:]
}

func checkBound(t *testing.T, what string, got float32, exact, bound float64) {
	t.Helper()
	if err := math.Abs(float64(got) - exact); !(err <= bound) {
		t.Fatalf("%s: got %v, exact %v, |err| %g > bound %g", what, got, exact, err, bound)
	}
}

func TestNEONScoreBlock(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, f16 := range []bool{false, true} {
		for d := 1; d <= neonMaxLen; d++ {
			nq, nk := 1+d%3, d%9
			off := d % 8
			q := at(randF32s(r, nq*d, 1), off)
			k32 := randF32s(r, nk*d, 1)
			k16 := randF16s(r, nk*d, 1)
			scale := float32(1 / math.Sqrt(float64(d)))
			out := newNeonBuf[float32](nq*nk, (off+3)%8, f32Canary)
			if f16 {
				scoreBlockF16(q, at(k16, (off+5)%8), d, scale, out.s())
			} else {
				scoreBlock(q, at(k32, (off+5)%8), d, scale, out.s())
			}
			out.check(t, "scoreBlock")
			for i := range nq {
				for j := range nk {
					var exact, abs float64
					for c := range d {
						kv := float64(k32[j*d+c])
						if f16 {
							kv = float64(f16ToF32(k16[j*d+c]))
						}
						p := float64(q[i*d+c]) * kv
						exact += p
						abs += math.Abs(p)
					}
					s := float64(scale)
					checkBound(t, "scoreBlock", out.s()[i*nk+j], s*exact, 2*float64(d+2)*neonEps*s*abs)
				}
			}
		}
	}
}

// TestNEONScoreBlockChunks covers more keys than one assembly call takes.
func TestNEONScoreBlockChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const d, nk = 3, asmWork/3 + 1000
	q := randF32s(r, 2*d, 1)
	k32 := randF32s(r, nk*d, 1)
	k16 := make([]uint16, len(k32))
	narrowF16Generic(k16, k32)
	for _, f16 := range []bool{false, true} {
		out := newNeonBuf[float32](2*nk, 1, f32Canary)
		want := make([]float32, 2*nk)
		if f16 {
			scoreBlockF16(q, k16, d, 0.5, out.s())
			scoreBlockF16Generic(q, k16, d, 0.5, want)
		} else {
			scoreBlock(q, k32, d, 0.5, out.s())
			scoreBlockGeneric(q, k32, d, 0.5, want)
		}
		out.check(t, "scoreBlock chunks")
		for i, w := range want {
			// Three products: both sums are within 4u of the exact one.
			if g := out.s()[i]; math.Abs(float64(g-w)) > 1e-5*(1+math.Abs(float64(w))) {
				t.Fatalf("f16=%v: out[%d] = %v, generic %v", f16, i, g, w)
			}
		}
	}
}

func TestNEONMax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	nan := float32(math.NaN())
	snan := math.Float32frombits(0x7f800001)
	for n := 0; n <= neonMaxLen; n++ {
		for off := range 8 {
			x := at(randF32s(r, n, 100), off)
			for i := range x {
				switch r.IntN(8) {
				case 0:
					x[i] = nan
				case 1:
					x[i] = snan
				case 2:
					x[i] = float32(math.Inf(-1))
				}
			}
			if got, want := maxOf(x), maxGeneric(x); got != want {
				t.Fatalf("n=%d off=%d: maxOf = %v, generic %v (x=%v)", n, off, got, want, x)
			}
			// The maximum at every position, so each lane and tail path wins once.
			for p := range x {
				y := append([]float32(nil), x...)
				y[p] = 1e9
				if got := maxOf(y); got != 1e9 {
					t.Fatalf("n=%d off=%d: max at %d not found: %v", n, off, p, got)
				}
			}
		}
	}
	big := randF32s(r, 3*asmWork+5, 1)
	big[2*asmWork+3] = 77
	if got := maxOf(big); got != 77 {
		t.Fatalf("maxOf across chunks = %v, want 77", got)
	}
}

// ulps is the distance in units in the last place between two finite float32
// of the same sign, or a huge value otherwise.
func ulps(a, b float32) int64 {
	if a == b {
		return 0
	}
	if math.Signbit(float64(a)) != math.Signbit(float64(b)) || math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
		return math.MaxInt64
	}
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

func TestNEONExpSub(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for n := 0; n <= neonMaxLen; n++ {
		for off := range 8 {
			m := float32(r.NormFloat64() * 10)
			src := make([]float32, n)
			for i := range src {
				src[i] = m - float32(r.Float64()*30)
			}
			x := newNeonBuf[float32](n, off, f32Canary)
			copy(x.s(), src)
			s := expSub(x.s(), m)
			x.check(t, "expSub")
			var exact, abs float64
			for i, v := range src {
				e := math.Exp(float64(v - m))
				if g, w := x.s()[i], float32(e); ulps(g, w) > 2 {
					t.Fatalf("n=%d off=%d: exp(%v) = %v, want %v", n, off, v-m, g, w)
				}
				exact += e
				abs += e
			}
			// Each term within 2 ulp, then n float32 additions.
			checkBound(t, "expSub sum", s, exact, float64(n+4)*2*neonEps*abs)
		}
	}
}

// TestNEONExpAccuracy sweeps the whole range of exp arguments, including the
// subnormal results and the special values.
func TestNEONExpAccuracy(t *testing.T) {
	var xs []float32
	for v := float32(-110); v < 90; v += 0.0009765625 * 3.1 {
		xs = append(xs, v)
	}
	xs = append(xs, 0, -0.0, 1e-30, -1e-30, -103.97, -103.98, -87.33, -87.34, 88.72, 88.73,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -1e30, 1e30)
	got := append([]float32(nil), xs...)
	expSub(got, 0)
	var worst int64
	for i, v := range xs {
		want := float32(math.Exp(float64(v)))
		switch {
		case math.IsNaN(float64(want)):
			if !math.IsNaN(float64(got[i])) {
				t.Fatalf("exp(%v) = %v, want NaN", v, got[i])
			}
			continue
		case v == 0 && got[i] != 1:
			t.Fatalf("exp(%v) = %v, want exactly 1", v, got[i])
		}
		u := ulps(got[i], want)
		if u > 2 {
			t.Fatalf("exp(%v) = %v (%#x), want %v (%#x)", v, got[i], math.Float32bits(got[i]), want, math.Float32bits(want))
		}
		worst = max(worst, u)
	}
	t.Logf("%d arguments, worst error %d ulp", len(xs), worst)
}

func TestNEONAxpy(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for n := 0; n <= neonMaxLen; n++ {
		for off := range 8 {
			a := float32(r.NormFloat64())
			x := at(randF32s(r, n, 1), (off+3)%8)
			y0 := randF32s(r, n, 1)
			y := newNeonBuf[float32](n, off, f32Canary)
			copy(y.s(), y0)
			axpy(a, x, y.s())
			y.check(t, "axpy")
			for i := range n {
				p := float64(a) * float64(x[i])
				checkBound(t, "axpy", y.s()[i], float64(y0[i])+p, neonEps*(math.Abs(float64(y0[i]))+math.Abs(p)))
			}
		}
	}
}

func TestNEONWeightedSum(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, f16 := range []bool{false, true} {
		for d := 0; d <= neonMaxLen; d++ {
			for _, rows := range []int{0, 1, 2, 5} {
				off := (d + rows) % 8
				p := at(randF32s(r, rows, 1), off)
				v32 := at(randF32s(r, rows*d, 1), (off+1)%8)
				v16 := at(randF16s(r, rows*d, 1), (off+2)%8)
				out := newNeonBuf[float32](d, (off+5)%8, f32Canary)
				for i := range out.s() {
					out.s()[i] = 123 // weightedSum must overwrite, not add
				}
				if f16 {
					weightedSumsF16(p, v16, out.s(), d)
				} else {
					weightedSums(p, v32, out.s(), d)
				}
				out.check(t, "weightedSum")
				for c := range d {
					var exact, abs float64
					for i := range rows {
						v := float64(v32[i*d+c])
						if f16 {
							v = float64(f16ToF32(v16[i*d+c]))
						}
						exact += float64(p[i]) * v
						abs += math.Abs(float64(p[i]) * v)
					}
					checkBound(t, "weightedSum", out.s()[c], exact, float64(rows+1)*neonEps*abs)
				}
			}
		}
	}
}

// TestNEONWeightedSumChunks covers more rows than one assembly call takes;
// the row order is kept, so the result equals the generic one up to fusing.
func TestNEONWeightedSumChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const d, rows = 2, asmWork/2 + 300
	p := randF32s(r, rows, 1)
	v32 := randF32s(r, rows*d, 1)
	v16 := make([]uint16, len(v32))
	narrowF16Generic(v16, v32)
	for _, f16 := range []bool{false, true} {
		got, want := make([]float32, d), make([]float64, d)
		var abs [d]float64
		if f16 {
			weightedSumsF16(p, v16, got, d)
		} else {
			weightedSums(p, v32, got, d)
		}
		for i := range rows {
			for c := range d {
				v := float64(v32[i*d+c])
				if f16 {
					v = float64(f16ToF32(v16[i*d+c]))
				}
				want[c] += float64(p[i]) * v
				abs[c] += math.Abs(float64(p[i]) * v)
			}
		}
		for c := range d {
			checkBound(t, "weightedSum chunks", got[c], want[c], float64(rows+1)*neonEps*abs[c])
		}
	}
}

// wsumsCase runs the grouped weighted sum of g heads over n value rows of d
// columns with its inputs at offset off (p), off+1 (vals) and off+5 (out)
// and canaries around out, and checks every output element twice: against
// a float64 oracle under the forward-error bound, and bit for bit against
// the generic kernel. The second check holds on arm64 because both compute
// each element as one chain of fused multiply-adds over the rows in the
// order of p (the Go compiler fuses y[i] += a*x there), so it also catches
// a kernel that skips, repeats or reorders rows or mixes up heads.
func wsumsCase(t *testing.T, r *rand.Rand, f16 bool, g, d, n, off int) {
	t.Helper()
	p := at(randF32s(r, g*n, 1), off%8)
	for i := range p {
		p[i] = float32(math.Abs(float64(p[i]))) // softmax numerators
	}
	v32 := at(randF32s(r, n*d, 1), (off+1)%8)
	v16 := at(randF16s(r, n*d, 1), (off+1)%8)
	out := newNeonBuf[float32](g*d, (off+5)%8, f32Canary)
	for i := range out.s() {
		out.s()[i] = 123 // must be overwritten, not added to
	}
	want := make([]float32, g*d)
	name := "weightedSums"
	if f16 {
		name = "weightedSumsF16"
		weightedSumsF16(p, v16, out.s(), d)
		weightedSumsF16Generic(p, v16, want, d)
	} else {
		weightedSums(p, v32, out.s(), d)
		weightedSumsGeneric(p, v32, want, d)
	}
	out.check(t, name)
	got := out.s()
	for i := range g {
		for c := range d {
			var exact, abs float64
			for j := range n {
				v := float64(v32[j*d+c])
				if f16 {
					v = float64(f16ToF32(v16[j*d+c]))
				}
				exact += float64(p[i*n+j]) * v
				abs += math.Abs(float64(p[i*n+j]) * v)
			}
			k := i*d + c
			checkBound(t, name, got[k], exact, float64(n+1)*neonEps*abs)
			if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
				t.Fatalf("%s g=%d d=%d n=%d off=%d: out[%d·d+%d] = %v, generic %v", name, g, d, n, off, i, c, got[k], want[k])
			}
		}
	}
}

// TestNEONWeightedSums covers every split of a group into the four-row,
// two-row and one-row kernels (g = 1..9), every column count 1..70 (each
// column block and each tail of both the 32- and 16-column kernels), a few
// head dimensions used by models, row counts 0..17 and all offsets.
func TestNEONWeightedSums(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	k := 0
	for _, f16 := range []bool{false, true} {
		for g := 1; g <= 9; g++ {
			for d := 1; d <= neonMaxLen; d++ {
				for _, n := range []int{0, 1, 2, 5} {
					wsumsCase(t, r, f16, g, d, n, k)
					k++
				}
			}
			for _, d := range []int{96, 112, 127, 128, 129, 256} {
				for _, n := range []int{1, 3, 17} {
					wsumsCase(t, r, f16, g, d, n, k)
					k++
				}
			}
		}
	}
}

// TestNEONWeightedSumsChunks uses more value rows than one kernel call
// takes (wsumsRows), with a partial last block, so each output element is
// accumulated across calls; the bit-exact comparison with the generic
// kernel shows the order of the rows is kept.
func TestNEONWeightedSumsChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, f16 := range []bool{false, true} {
		for _, c := range []struct{ g, d int }{{2, 2}, {3, 33}, {4, 128}, {5, 64}, {8, 128}, {9, 7}} {
			rowBytes := 4 * c.d
			if f16 {
				rowBytes = 2 * c.d
			}
			n := 2*max(1, wsumsBlockBytes/rowBytes) + 3
			wsumsCase(t, r, f16, c.g, c.d, n, c.g)
		}
	}
}

// TestNEONWeightedSumsShortVals checks that the wrappers reject values
// shorter than n rows before any assembly runs.
func TestNEONWeightedSumsShortVals(t *testing.T) {
	for _, f16 := range []bool{false, true} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("f16=%v: weightedSums with too few values did not panic", f16)
				}
			}()
			p, out := make([]float32, 2*5), make([]float32, 2*8)
			if f16 {
				weightedSumsF16(p, make([]uint16, 4*8+7), out, 8)
			} else {
				weightedSums(p, make([]float32, 4*8+7), out, 8)
			}
		}()
	}
}

func TestNEONL1Norm(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	lens := []int{asmWork + 17, 3*asmWork + 1}
	for n := 0; n <= neonMaxLen; n++ {
		lens = append(lens, n)
	}
	for _, n := range lens {
		for off := range 8 {
			if n > neonMaxLen && off > 1 {
				break
			}
			x := at(randF32s(r, n, 10), off)
			h := at(randF16s(r, n, 10), off)
			var e32, e16 float64
			for i := range n {
				e32 += math.Abs(float64(x[i]))
				e16 += math.Abs(float64(f16ToF32(h[i])))
			}
			checkBound(t, "l1Norm", l1Norm(x), e32, float64(n+1)*neonEps*e32)
			checkBound(t, "l1NormF16", l1NormF16(h), e16, float64(n+1)*neonEps*e16)
		}
	}
	// Infinities and NaNs: the sum is +Inf or NaN like the generic one.
	inf, nan := float32(math.Inf(-1)), float32(math.NaN())
	for _, x := range [][]float32{{1, inf, 2}, {1, nan}, {inf, nan, 3, 4, 5}} {
		if g, w := l1Norm(x), l1NormGeneric(x); g != w && !(g != g && w != w) {
			t.Fatalf("l1Norm(%v) = %v, generic %v", x, g, w)
		}
	}
	for _, h := range [][]uint16{{0xfc00, 1}, {0x7e00}, {0x3c00, 0xfe01, 0xbc00}} {
		if g, w := l1NormF16(h), l1NormF16Generic(h); g != w && !(g != g && w != w) {
			t.Fatalf("l1NormF16(%x) = %v, generic %v", h, g, w)
		}
	}
}

// TestNEONWidenAll converts every float16 pattern, bit-exact with f16ToF32.
func TestNEONWidenAll(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	for off := range 8 {
		dst := newNeonBuf[float32](len(src), off, f32Canary)
		widenF16(dst.s(), at(src, (off+3)%8))
		dst.check(t, "widenF16")
		for i, h := range src {
			if g, w := math.Float32bits(dst.s()[i]), math.Float32bits(f16ToF32(h)); g != w {
				t.Fatalf("widenF16(%#04x) = %#08x, generic %#08x", h, g, w)
			}
		}
	}
	for n := 0; n <= neonMaxLen; n++ {
		for off := range 8 {
			s := at(src[n*911%60000:][:n], off)
			dst := newNeonBuf[float32](n, (off+1)%8, f32Canary)
			widenF16(dst.s(), s)
			dst.check(t, "widenF16")
			for i, h := range s {
				if g, w := math.Float32bits(dst.s()[i]), math.Float32bits(f16ToF32(h)); g != w {
					t.Fatalf("n=%d: widenF16(%#04x) = %#08x, generic %#08x", n, h, g, w)
				}
			}
		}
	}
}

// TestNEONNarrow rounds float32 values at and around every float16 rounding
// boundary, bit-exact with f32ToF16 (NaN payloads included).
func TestNEONNarrow(t *testing.T) {
	var src []float32
	for h := range 1 << 15 {
		lo := f16ToF32(uint16(h))
		src = append(src, lo, -lo)
		if h == 0x7c00 || h > 0x7c00 {
			continue // Inf and NaN have no successor to round between
		}
		// The midpoint between h and h+1 is a tie; its float32 neighbours
		// are not. Above the largest finite value it tests overflow.
		hi := f16ToF32(uint16(h + 1))
		mid := float32((float64(lo) + float64(hi)) / 2)
		for _, v := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))),
			math.Nextafter32(lo, 0), math.Nextafter32(lo, float32(math.Inf(1)))} {
			src = append(src, v, -v)
		}
	}
	src = append(src, 65504, 65519.996, 65520, 65536, 1e10, math.MaxFloat32, math.SmallestNonzeroFloat32,
		1e-40, 2.9802322e-08, 2.9802326e-08, 5.9604645e-08, 8.940697e-08)
	r := rand.New(rand.NewPCG(17, 18))
	for range 200000 {
		src = append(src, math.Float32frombits(r.Uint32()))
	}
	// NaNs with assorted payloads, quiet and signalling.
	for _, b := range []uint32{0x7fc00000, 0xffc00001, 0x7f800001, 0xff800fff, 0x7fbfe000, 0x7fffffff, 0x7f802000} {
		src = append(src, math.Float32frombits(b))
	}
	for off := range 8 {
		dst := newNeonBuf[uint16](len(src), off, f16Canary)
		narrowF16(dst.s(), at(src, (off+5)%8))
		dst.check(t, "narrowF16")
		for i, f := range src {
			if g, w := dst.s()[i], f32ToF16(f); g != w {
				t.Fatalf("narrowF16(%v = %#08x) = %#04x, generic %#04x", f, math.Float32bits(f), g, w)
			}
		}
	}
	for n := 0; n <= neonMaxLen; n++ {
		for off := range 8 {
			s := at(src[n*977:][:n], off)
			dst := newNeonBuf[uint16](n, (off+2)%8, f16Canary)
			narrowF16(dst.s(), s)
			dst.check(t, "narrowF16")
			for i, f := range s {
				if g, w := dst.s()[i], f32ToF16(f); g != w {
					t.Fatalf("n=%d: narrowF16(%#08x) = %#04x, generic %#04x", n, math.Float32bits(f), g, w)
				}
			}
		}
	}
}

// TestNEONGather checks the Go gather (copy per row), in place too.
func TestNEONGather(t *testing.T) {
	const d, rows = 5, 20
	src := make([]float32, rows*d)
	for i := range src {
		src[i] = float32(i/d*100 + i%d) // row·100 + column
	}
	idx := []int32{0, 2, 3, 7, 19}
	dst := make([]float32, len(idx)*d)
	gatherRows(dst, src, idx, d)
	gatherRows(src, src, idx, d)
	for r, i := range idx {
		for c := range d {
			want := float32(int(i)*100 + c)
			if dst[r*d+c] != want || src[r*d+c] != want {
				t.Fatalf("row %d col %d: %v / in place %v, want %v", r, c, dst[r*d+c], src[r*d+c], want)
			}
		}
	}
}

// TestNEONWrapperPanics checks that the wrappers reject an out too short
// for the assembly instead of letting it write past the end.
func TestNEONWrapperPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("scoreBlock", func() { scoreBlock(make([]float32, 4), make([]float32, 8), 4, 1, make([]float32, 1)) })
	mustPanic("scoreBlockF16", func() { scoreBlockF16(make([]float32, 4), make([]uint16, 8), 4, 1, make([]float32, 1)) })
	mustPanic("weightedSum", func() { weightedSums(make([]float32, 3), make([]float32, 5), make([]float32, 2), 2) })
	mustPanic("weightedSumF16", func() { weightedSumsF16(make([]float32, 3), make([]uint16, 5), make([]float32, 2), 2) })
	mustPanic("axpy", func() { axpy(1, make([]float32, 3), make([]float32, 2)) })
	mustPanic("widenF16", func() { widenF16(make([]float32, 2), make([]uint16, 3)) })
	mustPanic("narrowF16", func() { narrowF16(make([]uint16, 2), make([]float32, 3)) })
}
