package lava

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// The kernel tests call only the dispatch functions (scoreBlock, expSub, …)
// and flip useAsm, so the same bodies check the assembly of this
// architecture (AVX2 on amd64, NEON on arm64) and the generic Go code in one
// run, as subtests avx2 or neon and generic. The expected values come from
// float64 oracles, not from the generic kernels, so a bug shared by both
// variants still fails.

// asmImpl names the assembly kernels of this architecture.
var asmImpl = map[string]string{"amd64": "avx2", "arm64": "neon"}[runtime.GOARCH]

// forEachImpl runs f once per kernel variant, as subtests named after it:
// the assembly (skipped where this build or CPU has none) and generic.
func forEachImpl(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	asm := useAsm
	defer func() { useAsm = asm }()
	for _, impl := range []struct {
		name string
		on   bool
	}{{asmImpl, true}, {"generic", false}} {
		if impl.name == "" {
			continue // no assembly for this architecture
		}
		t.Run(impl.name, func(t *testing.T) {
			if impl.on && !asm {
				t.Skip("no assembly kernels in this build or on this CPU")
			}
			useAsm = impl.on
			defer func() { useAsm = asm }()
			f(t)
		})
	}
}

// u32 is the unit roundoff of float32, 2⁻²⁴.
const u32 = 1.0 / (1 << 24)

// guardLen is how many guard elements surround every buffer.
const guardLen = 16

// canaryF32 and canaryF16 fill the space around output buffers: NaNs with a
// payload no kernel produces, checked bit for bit after each call.
var canaryF32 = math.Float32frombits(0x7fa5a5a5)

const canaryF16 = 0x7da5

// poisonF32 and poisonF16 surround input buffers: a kernel that reads past
// its input and uses the value turns its result into NaN.
var poisonF32 = float32(math.NaN())

const poisonF16 = 0x7e00

// guarded32 returns a slice of n elements starting off elements into a
// buffer padded on both sides with fill, and the whole buffer.
func guarded32(n, off int, fill float32) (s, buf []float32) {
	buf = make([]float32, guardLen+off+n+guardLen)
	for i := range buf {
		buf[i] = fill
	}
	return buf[guardLen+off : guardLen+off+n : guardLen+off+n], buf
}

func guarded16(n, off int, fill uint16) (s, buf []uint16) {
	buf = make([]uint16, guardLen+off+n+guardLen)
	for i := range buf {
		buf[i] = fill
	}
	return buf[guardLen+off : guardLen+off+n : guardLen+off+n], buf
}

// checkGuard32 reports any element of buf outside [lo, lo+n) that is no
// longer the canary.
func checkGuard32(t *testing.T, buf []float32, lo, n int, what string) {
	t.Helper()
	for i, v := range buf {
		if (i < lo || i >= lo+n) && math.Float32bits(v) != math.Float32bits(canaryF32) {
			t.Fatalf("%s: element %d outside the output [%d, %d) overwritten with %#x", what, i-lo, 0, n, math.Float32bits(v))
		}
	}
}

func checkGuard16(t *testing.T, buf []uint16, lo, n int, what string) {
	t.Helper()
	for i, v := range buf {
		if (i < lo || i >= lo+n) && v != canaryF16 {
			t.Fatalf("%s: element %d outside the output [%d, %d) overwritten with %#x", what, i-lo, 0, n, v)
		}
	}
}

// randF32 fills x with values in (−1, 1).
func randF32(rng *rand.Rand, x []float32) {
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
}

// randF16 fills x with float16 values in (−2, 2).
func randF16(rng *rand.Rand, x []uint16) {
	for i := range x {
		x[i] = f16Bits(4*rng.Float64() - 2)
	}
}

// f16Bits rounds v to float16 bits with the test's own reference rounding.
func f16Bits(v float64) uint16 {
	return refNarrow(float32(v))
}

// offsets returns the pointer offsets of the k-th case: each of the three
// pointers of a kernel sees every offset 0..7 over k = 0..7.
func offsets(k int) (a, b, c int) {
	return k, (k + 3) % 8, (k + 5) % 8
}

// within reports whether got is within bound of want, treating a NaN want
// as requiring a NaN.
func within(got float32, want, bound float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(float64(got))
	}
	if math.IsInf(want, 0) {
		return float64(got) == want
	}
	return math.Abs(float64(got)-want) <= bound
}

// dotBound is the forward-error bound of an n-term float32 dot product
// followed by k more roundings: (n+k)·u·Σ|terms|, plus an absolute term for
// products that underflow into subnormals.
func dotBound(n, k int, absSum float64) float64 {
	return float64(n+k)*u32*absSum*(1+1e-6) + float64(n+k)*0x1p-149
}

var scoreDims = []int{1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 127, 128, 129}

func TestScoreBlock(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, d := range scoreDims {
			for _, nq := range []int{1, 2, 3, 4, 5, 6, 7, 8} {
				for _, nk := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 33, 70} {
					k := rng.IntN(8)
					checkScore(t, rng, d, nq, nk, k, false)
					checkScore(t, rng, d, nq, nk, k, true)
				}
			}
		}
		// Every row length up to 70: each vector step and tail of both
		// architectures' tiles.
		for d := 1; d <= 70; d++ {
			checkScore(t, rng, d, 1+d%3, d%9, d%8, false)
			checkScore(t, rng, d, 1+d%3, d%9, d%8, true)
		}
		// Long key blocks cross the wrappers' per-call key limit.
		for _, c := range []struct{ d, nq, nk int }{{4, 2, 5000}, {128, 32, 300}, {96, 5, 1027}, {13, 3, 2000}} {
			checkScore(t, rng, c.d, c.nq, c.nk, 3, false)
			checkScore(t, rng, c.d, c.nq, c.nk, 6, true)
		}
		for _, d := range []int{3, 8, 13, 64} {
			checkScore(t, rng, d, 4, 2*scoreKeys(d, 4)+5, d%8, false)
			checkScore(t, rng, d, 4, 2*scoreKeys(d, 2)+5, (d+1)%8, true)
		}
	})
}

// checkScore runs scoreBlock or scoreBlockF16 on random data with the
// pointer offsets of case k and compares with a float64 oracle.
func checkScore(t *testing.T, rng *rand.Rand, d, nq, nk, k int, f16 bool) {
	t.Helper()
	oq, ok, oo := offsets(k)
	q, _ := guarded32(nq*d, oq, poisonF32)
	randF32(rng, q)
	var keys32 []float32
	var keys16 []uint16
	key := func(j, t int) float64 { return float64(keys32[j*d+t]) }
	if f16 {
		keys16, _ = guarded16(nk*d, ok, poisonF16)
		randF16(rng, keys16)
		key = func(j, t int) float64 { return refWiden(keys16[j*d+t]) }
	} else {
		keys32, _ = guarded32(nk*d, ok, poisonF32)
		randF32(rng, keys32)
	}
	out, buf := guarded32(nq*nk, oo, canaryF32)
	scale := float32(1 / math.Sqrt(float64(d)))
	if f16 {
		scoreBlockF16(q, keys16, d, scale, out)
	} else {
		scoreBlock(q, keys32, d, scale, out)
	}
	name := "scoreBlock"
	if f16 {
		name = "scoreBlockF16"
	}
	checkGuard32(t, buf, guardLen+oo, nq*nk, name)
	for i := range nq {
		for j := range nk {
			var s, abs float64
			for t := range d {
				p := float64(q[i*d+t]) * key(j, t)
				s += p
				abs += math.Abs(p)
			}
			want := float64(scale) * s
			bound := dotBound(d, 3, float64(scale)*abs)
			if got := out[i*nk+j]; !within(got, want, bound) {
				t.Fatalf("%s d=%d nq=%d nk=%d offsets %d: out[%d·nk+%d] = %g, want %g ± %.3g", name, d, nq, nk, k, i, j, got, want, bound)
			}
		}
	}
}

// TestScoreBlockSpecial checks that scores see infinities and NaNs in their
// own rows, and only there: a tile must not mix rows.
func TestScoreBlockSpecial(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		for _, d := range []int{8, 12, 128} {
			nq, nk := 4, 6
			q := make([]float32, nq*d)
			keys := make([]float32, nk*d)
			for i := range q {
				q[i] = 1
			}
			for i := range keys {
				keys[i] = 0.5
			}
			keys[2*d+d-1] = float32(math.Inf(1))
			keys[4*d] = float32(math.NaN())
			out := make([]float32, nq*nk)
			scoreBlock(q, keys, d, 1, out)
			for i := range nq {
				for j := range nk {
					got := out[i*nk+j]
					switch j {
					case 2:
						if !math.IsInf(float64(got), 1) {
							t.Errorf("d=%d: out[%d,%d] = %g, want +Inf", d, i, j, got)
						}
					case 4:
						if !math.IsNaN(float64(got)) {
							t.Errorf("d=%d: out[%d,%d] = %g, want NaN", d, i, j, got)
						}
					default:
						if got != float32(d)/2 {
							t.Errorf("d=%d: out[%d,%d] = %g, want %g", d, i, j, got, float32(d)/2)
						}
					}
				}
			}
		}
	})
}

// Lengths for the one-dimensional kernels: every length up to well past
// unroll × width × 2 of any variant, then a few long ones.
func vecLens() []int {
	var n []int
	for i := 0; i <= 140; i++ {
		n = append(n, i)
	}
	return append(n, 255, 256, 257, 1000, 4099, asmWork-1, asmWork+1, 2*asmWork+13)
}

func TestMaxOf(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, n := range vecLens() {
			for k := range 8 {
				x, _ := guarded32(n, k, poisonF32)
				randF32(rng, x)
				for i := range x {
					x[i] -= 3 // all negative: a kernel that pads with 0 fails
				}
				if n > 0 && k%2 == 1 {
					x[rng.IntN(n)] = float32(math.NaN()) // ignored, as v > m is false
				}
				if n > 0 && k%4 == 3 {
					x[rng.IntN(n)] = math.Float32frombits(0x7f800001) // signalling
					x[rng.IntN(n)] = float32(math.Inf(-1))
				}
				want := math.Inf(-1)
				for _, v := range x {
					if v == v {
						want = max(want, float64(v))
					}
				}
				if got := maxOf(x); float64(got) != want {
					t.Fatalf("maxOf n=%d off=%d = %g, want %g", n, k, got, want)
				}
			}
		}
	})
}

// expULP is the accuracy bound of expSub in units in the last place of the
// float32 result, for results ≥ 2⁻¹²⁶; below, the error is at most expULP
// units of 2⁻¹⁴⁹.
const expULP = 2

// ulpDiff returns |got − want| in units of the float32 ulp at want
// (2⁻¹⁴⁹ in the subnormal range).
func ulpDiff(got float32, want float64) float64 {
	a := math.Abs(want)
	e := math.Max(math.Floor(math.Log2(a)), -126)
	if a == 0 {
		e = -126
	}
	return math.Abs(float64(got)-want) / math.Ldexp(1, int(e)-23)
}

func TestExpSub(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		worst := 0.0
		for _, n := range vecLens() {
			for k := range 8 {
				x, buf := guarded32(n, k, canaryF32)
				// Differences from −110 (past underflow) to +80, most
				// in the softmax range [−30, 0]; overflow is in
				// TestExpSubSpecial.
				for i := range x {
					switch rng.IntN(4) {
					case 0:
						x[i] = 190*rng.Float32() - 110
					default:
						x[i] = -30 * rng.Float32()
					}
				}
				m := float32(rng.NormFloat64())
				for i := range x {
					x[i] += m
				}
				in := slices.Clone(x)
				sum := expSub(x, m)
				checkGuard32(t, buf, guardLen+k, n, "expSub")
				var ref, abs float64
				for i, v := range x {
					want := math.Exp(float64(in[i] - m))
					if e := ulpDiff(v, want); !(e <= expULP) {
						t.Fatalf("expSub n=%d: exp(%g − %g) = %g, want %g (%.2f ulp)", n, in[i], m, v, want, e)
					} else {
						worst = max(worst, e)
					}
					ref += float64(v)
					abs += math.Abs(float64(v))
				}
				if !within(sum, ref, dotBound(n, 1, abs)) {
					t.Fatalf("expSub n=%d: sum = %g, want %g", n, sum, ref)
				}
			}
		}
		t.Logf("worst error %.3f ulp", worst)
	})
}

// TestExpSubSpecial checks the values a softmax depends on exactly.
func TestExpSubSpecial(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	forEachImpl(t, func(t *testing.T) {
		for _, c := range []struct {
			x, m, want float32
		}{
			{0, 0, 1},
			{3.5, 3.5, 1},
			{-1e30, 0, 0},
			{-inf, 0, 0},
			{-104, 0, 0},
			{-200, 0, 0},
			{89, 0, inf},
			{1e30, 0, inf},
			{inf, 0, inf},
			{nan, 0, nan},
			{0, nan, nan},
			{-inf, -inf, nan},
		} {
			for n := 1; n <= 19; n += 9 { // in a vector and in the tail
				x := make([]float32, n)
				for i := range x {
					x[i] = c.m
				}
				x[n-1] = c.x
				sum := expSub(x, c.m)
				got := x[n-1]
				if math.Float32bits(got) != math.Float32bits(c.want) && !(got != got && c.want != c.want) {
					t.Errorf("expSub n=%d: exp(%g − %g) = %g, want %g", n, c.x, c.m, got, c.want)
				}
				if c.m == c.m && c.want == c.want && sum != float32(n-1)+c.want {
					t.Errorf("expSub n=%d (x=%g, m=%g): sum = %g, want %g", n, c.x, c.m, sum, float32(n-1)+c.want)
				}
			}
		}
	})
}

// TestExpSubSweep sweeps the exp argument over its whole range, subnormal
// results and the special values included.
func TestExpSubSweep(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	var xs []float32
	for v := float32(-110); v < 90; v += 0.0009765625 * 3.1 {
		xs = append(xs, v)
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, -103.97, -103.98, -87.33, -87.34,
		88.72, 88.73, inf, -inf, nan, -1e30, 1e30)
	forEachImpl(t, func(t *testing.T) {
		got := slices.Clone(xs)
		expSub(got, 0)
		for i, v := range xs {
			if !expOK(got[i], v) || v == 0 && got[i] != 1 {
				t.Fatalf("exp(%g) = %g (%#08x), want %g", v, got[i], math.Float32bits(got[i]), math.Exp(float64(v)))
			}
		}
	})
}

func TestAxpy(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, n := range vecLens() {
			for k := range 8 {
				ox, oy, _ := offsets(k)
				x, _ := guarded32(n, ox, poisonF32)
				y, buf := guarded32(n, oy, canaryF32)
				randF32(rng, x)
				randF32(rng, y)
				y0 := slices.Clone(y)
				a := float32(rng.NormFloat64())
				axpy(a, x, y)
				checkGuard32(t, buf, guardLen+oy, n, "axpy")
				for i := range y {
					p := float64(a) * float64(x[i])
					want := float64(y0[i]) + p
					if !within(y[i], want, dotBound(2, 0, math.Abs(p)+math.Abs(float64(y0[i])))) {
						t.Fatalf("axpy n=%d: y[%d] = %g, want %g", n, i, y[i], want)
					}
				}
			}
		}
	})
}

func TestWeightedSum(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, d := range []int{1, 3, 7, 8, 9, 15, 16, 24, 31, 32, 33, 40, 63, 64, 65, 72, 100, 127, 128, 129, 256} {
			for _, n := range []int{0, 1, 2, 3, 5, 8, 17, 100} {
				k := rng.IntN(8)
				checkWeightedSum(t, rng, d, n, k, false)
				checkWeightedSum(t, rng, d, n, k, true)
			}
		}
		for _, c := range []struct{ d, n int }{{128, 3000}, {64, 5001}, {8, 20000}, {33, 777}} {
			checkWeightedSum(t, rng, c.d, c.n, 1, false)
			checkWeightedSum(t, rng, c.d, c.n, 2, true)
		}
	})
}

func checkWeightedSum(t *testing.T, rng *rand.Rand, d, n, k int, f16 bool) {
	t.Helper()
	op, ov, oo := offsets(k)
	p, _ := guarded32(n, op, poisonF32)
	for i := range p {
		p[i] = rng.Float32() // softmax numerators are ≥ 0
	}
	var v32 []float32
	var v16 []uint16
	val := func(i int) float64 { return float64(v32[i]) }
	if f16 {
		v16, _ = guarded16(n*d, ov, poisonF16)
		randF16(rng, v16)
		val = func(i int) float64 { return refWiden(v16[i]) }
	} else {
		v32, _ = guarded32(n*d, ov, poisonF32)
		randF32(rng, v32)
	}
	out, buf := guarded32(d, oo, canaryF32)
	for i := range out {
		out[i] = float32(math.NaN()) // must be overwritten, not added to
	}
	name := "weightedSum"
	if f16 {
		name = "weightedSumF16"
		weightedSumsF16(p, v16, out, len(out))
	} else {
		weightedSums(p, v32, out, len(out))
	}
	checkGuard32(t, buf, guardLen+oo, d, name)
	for c := range d {
		var s, abs float64
		for i := range n {
			x := float64(p[i]) * val(i*d+c)
			s += x
			abs += math.Abs(x)
		}
		if bound := dotBound(n, 1, abs); !within(out[c], s, bound) {
			t.Fatalf("%s d=%d n=%d: out[%d] = %g, want %g ± %.3g", name, d, n, c, out[c], s, bound)
		}
	}
}

// TestWeightedSums covers the grouped weighted sum of Attend: g query
// heads' weights over the values of the KV head they share. Every group
// size 1..9 meets every kernel split of the assembly (groups of four, three
// repeating a row, two, one), and column counts that end in each column
// block and in the scalar tail.
func TestWeightedSums(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(15, 16))
		k := 0
		for g := 1; g <= 9; g++ {
			for _, d := range []int{1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 48, 63, 64, 65, 72, 100, 128, 129, 136, 200} {
				for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 50} {
					checkWeightedSums(t, rng, g, d, n, k%8, false)
					checkWeightedSums(t, rng, g, d, n, k%8, true)
					k++
				}
			}
		}
		// Every column count up to 70 (each column block and tail of
		// both architectures' kernels) with every group split.
		for g := 1; g <= 9; g++ {
			for d := 1; d <= 70; d++ {
				for _, n := range []int{0, 1, 2, 5} {
					checkWeightedSums(t, rng, g, d, n, k%8, false)
					checkWeightedSums(t, rng, g, d, n, (k+3)%8, true)
					k++
				}
			}
		}
		// Row counts that cross the wrappers' per-call row limit.
		for _, c := range []struct{ g, d, n int }{{4, 128, 1000}, {8, 128, 301}, {5, 64, 777}, {3, 8, 3000}, {6, 33, 777}, {2, 256, 200}} {
			checkWeightedSums(t, rng, c.g, c.d, c.n, 1, false)
			checkWeightedSums(t, rng, c.g, c.d, c.n, 6, true)
		}
		for _, c := range []struct{ g, d int }{{1, 8}, {2, 9}, {3, 33}, {4, 128}, {5, 64}, {9, 15}} {
			checkWeightedSums(t, rng, c.g, c.d, 2*wsumsRows(c.d, 4*c.d)+3, c.g, false)
			checkWeightedSums(t, rng, c.g, c.d, 2*wsumsRows(c.d, 2*c.d)+3, c.g+1, true)
		}
	})
}

func checkWeightedSums(t *testing.T, rng *rand.Rand, g, d, n, k int, f16 bool) {
	t.Helper()
	op, ov, oo := offsets(k)
	p, _ := guarded32(g*n, op, poisonF32)
	for i := range p {
		p[i] = rng.Float32() // softmax numerators are ≥ 0
	}
	var v32 []float32
	var v16 []uint16
	val := func(i int) float64 { return float64(v32[i]) }
	if f16 {
		v16, _ = guarded16(n*d, ov, poisonF16)
		randF16(rng, v16)
		val = func(i int) float64 { return refWiden(v16[i]) }
	} else {
		v32, _ = guarded32(n*d, ov, poisonF32)
		randF32(rng, v32)
	}
	out, buf := guarded32(g*d, oo, canaryF32)
	for i := range out {
		out[i] = float32(math.NaN()) // must be overwritten, not added to
	}
	name := "weightedSums"
	if f16 {
		name = "weightedSumsF16"
		weightedSumsF16(p, v16, out, d)
	} else {
		weightedSums(p, v32, out, d)
	}
	checkGuard32(t, buf, guardLen+oo, g*d, name)
	for i := range g {
		for c := range d {
			var s, abs float64
			for j := range n {
				x := float64(p[i*n+j]) * val(j*d+c)
				s += x
				abs += math.Abs(x)
			}
			if bound := dotBound(n, 1, abs); !within(out[i*d+c], s, bound) {
				t.Fatalf("%s g=%d d=%d n=%d offsets %d: out[%d·d+%d] = %g, want %g ± %.3g", name, g, d, n, k, i, c, out[i*d+c], s, bound)
			}
		}
	}
}

// TestWeightedSumsRowsApart checks that each output row sees only its own
// weights: a NaN weight in row i makes row i NaN and no other, whichever
// kernel split row i falls in.
func TestWeightedSumsRowsApart(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		for _, g := range []int{2, 3, 4, 5, 7, 8} {
			for _, d := range []int{8, 40, 128} {
				n := 5
				vals := make([]float32, n*d)
				vals16 := make([]uint16, n*d)
				for i := range vals {
					vals[i] = 0.5
					vals16[i] = f16Bits(0.5)
				}
				for bad := range g {
					p := make([]float32, g*n)
					for i := range p {
						p[i] = 1
					}
					p[bad*n+3] = float32(math.NaN())
					out := make([]float32, g*d)
					out16 := make([]float32, g*d)
					weightedSums(p, vals, out, d)
					weightedSumsF16(p, vals16, out16, d)
					for i := range g {
						for c := range d {
							for _, got := range []float32{out[i*d+c], out16[i*d+c]} {
								if i == bad && got == got {
									t.Fatalf("g=%d d=%d: row %d has a NaN weight, out[%d,%d] = %g, want NaN", g, d, bad, i, c, got)
								}
								if i != bad && got != float32(n)/2 {
									t.Fatalf("g=%d d=%d NaN in row %d: out[%d,%d] = %g, want %g", g, d, bad, i, c, got, float32(n)/2)
								}
							}
						}
					}
				}
			}
		}
	})
}

func TestL1Norm(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, n := range vecLens() {
			for k := range 8 {
				x, _ := guarded32(n, k, poisonF32)
				randF32(rng, x)
				h, _ := guarded16(n, k, poisonF16)
				randF16(rng, h)
				var s32, s16 float64
				for i := range n {
					s32 += math.Abs(float64(x[i]))
					s16 += math.Abs(refWiden(h[i]))
				}
				if got := l1Norm(x); !within(got, s32, dotBound(n, 0, s32)) {
					t.Fatalf("l1Norm n=%d = %g, want %g", n, got, s32)
				}
				if got := l1NormF16(h); !within(got, s16, dotBound(n, 0, s16)) {
					t.Fatalf("l1NormF16 n=%d = %g, want %g", n, got, s16)
				}
			}
		}
		// Infinities and NaNs, in a vector and in the tail: the sum is
		// +Inf or NaN.
		inf, nan := float32(math.Inf(-1)), float32(math.NaN())
		for _, c := range []struct {
			x    []float32
			want float64
		}{{[]float32{1, inf, 2}, math.Inf(1)}, {[]float32{1, nan}, math.NaN()}, {[]float32{inf, nan, 3, 4, 5, 6, 7, 8, 9}, math.NaN()},
			{[]float32{1, 2, 3, 4, 5, 6, 7, 8, inf}, math.Inf(1)}, {[]float32{1, 2, 3, 4, 5, 6, 7, nan, 9}, math.NaN()}} {
			h := make([]uint16, len(c.x))
			narrowF16Generic(h, c.x)
			if got := l1Norm(c.x); !within(got, c.want, 0) {
				t.Errorf("l1Norm(%v) = %g, want %g", c.x, got, c.want)
			}
			if got := l1NormF16(h); !within(got, c.want, 0) {
				t.Errorf("l1NormF16(%v) = %g, want %g", c.x, got, c.want)
			}
		}
	})
}

// TestGatherRows checks gathers bit for bit, out of place with repeated
// and unordered rows and in place with strictly increasing rows. Element c
// of source row r holds r·1000 + c, so a wrong row or column shows in the
// value.
func TestGatherRows(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(13, 14))
		for _, d := range []int{1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 128, 129, 160, 200, 256} {
			for _, rows := range []int{0, 1, 2, 5, 33, 300} {
				k := rng.IntN(8)
				os, od, _ := offsets(k)
				idx := make([]int32, rng.IntN(rows+1))
				for i := range idx {
					idx[i] = int32(rng.IntN(max(rows, 1)))
				}
				if rows == 0 {
					idx = idx[:0]
				}
				src32, _ := guarded32(rows*d, os, poisonF32)
				src16, _ := guarded16(rows*d, os, poisonF16)
				for i := range src32 {
					src32[i] = float32(i/d*1000 + i%d)
					src16[i] = uint16(i/d*1000 + i%d)
				}
				dst32, b32 := guarded32(len(idx)*d, od, canaryF32)
				dst16, b16 := guarded16(len(idx)*d, od, canaryF16)
				gatherRows(dst32, src32, idx, d)
				gatherRowsF16(dst16, src16, idx, d)
				checkGuard32(t, b32, guardLen+od, len(idx)*d, "gatherRows")
				checkGuard16(t, b16, guardLen+od, len(idx)*d, "gatherRowsF16")
				for r, i := range idx {
					for c := range d {
						if want := int(i)*1000 + c; dst32[r*d+c] != float32(want) || dst16[r*d+c] != uint16(want) {
							t.Fatalf("gather d=%d: row %d col %d = %g, %d, want %d (row %d)", d, r, c, dst32[r*d+c], dst16[r*d+c], want, i)
						}
					}
				}

				// In place: keep a random increasing subset.
				var keep []int32
				for i := range rows {
					if rng.IntN(3) != 0 {
						keep = append(keep, int32(i))
					}
				}
				want32 := make([]float32, 0, len(keep)*d)
				want16 := make([]uint16, 0, len(keep)*d)
				for _, i := range keep {
					want32 = append(want32, src32[int(i)*d:int(i+1)*d]...)
					want16 = append(want16, src16[int(i)*d:int(i+1)*d]...)
				}
				gatherRows(src32, src32, keep, d)
				gatherRowsF16(src16, src16, keep, d)
				if !slices.Equal(src32[:len(want32)], want32) || !slices.Equal(src16[:len(want16)], want16) {
					t.Fatalf("in-place gather d=%d rows=%d keep=%v: wrong rows", d, rows, keep)
				}
			}
		}
	})
}

// TestGatherRowsLarge gathers destinations of more than 1 MiB, where the
// amd64 kernel switches to non-temporal stores when the destination is
// apart from the source and 32-byte aligned: every destination offset 0..7
// (aligned and not), rows whose size is a multiple of 32 bytes and rows
// whose size is not, and the same sizes in place, which must keep ordinary
// stores.
func TestGatherRowsLarge(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(17, 18))
		for _, d := range []int{128, 100, 64} {
			rows := (3 << 20) / (2 * d) // 1.5 MiB of kept float16 rows, 3 MiB float32
			idx := make([]int32, rows/2)
			for i := range idx {
				idx[i] = int32(2*i + rng.IntN(2)) // increasing, gaps of 0–2
			}
			src32 := make([]float32, rows*d)
			src16 := make([]uint16, rows*d)
			for i := range src32 {
				src32[i] = float32(i/d*1000 + i%d)
				src16[i] = uint16(i/d*7 + i%d)
			}
			for k := range 8 {
				dst32, b32 := guarded32(len(idx)*d, k, canaryF32)
				dst16, b16 := guarded16(len(idx)*d, k, canaryF16)
				gatherRows(dst32, src32, idx, d)
				gatherRowsF16(dst16, src16, idx, d)
				checkGuard32(t, b32, guardLen+k, len(dst32), "gatherRows")
				checkGuard16(t, b16, guardLen+k, len(dst16), "gatherRowsF16")
				for r, i := range idx {
					if !slices.Equal(dst32[r*d:(r+1)*d], src32[int(i)*d:int(i+1)*d]) || !slices.Equal(dst16[r*d:(r+1)*d], src16[int(i)*d:int(i+1)*d]) {
						t.Fatalf("gather d=%d offset %d: row %d is not source row %d", d, k, r, i)
					}
				}
			}
			want32 := make([]float32, 0, len(idx)*d)
			want16 := make([]uint16, 0, len(idx)*d)
			for _, i := range idx {
				want32 = append(want32, src32[int(i)*d:int(i+1)*d]...)
				want16 = append(want16, src16[int(i)*d:int(i+1)*d]...)
			}
			gatherRows(src32, src32, idx, d)
			gatherRowsF16(src16, src16, idx, d)
			if !slices.Equal(src32[:len(want32)], want32) || !slices.Equal(src16[:len(want16)], want16) {
				t.Fatalf("in-place gather d=%d: wrong rows", d)
			}
		}
	})
}

// refWiden decodes float16 bits with float64 arithmetic, independently of
// f16ToF32: (−1)^s · 2^(e−15) · (1 + m/1024), or m·2⁻²⁴ when e = 0. NaNs
// are returned as NaN; their bits are checked separately.
func refWiden(h uint16) float64 {
	s, e, m := h>>15, int(h>>10&0x1f), float64(h&0x3ff)
	var v float64
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		v = math.Inf(1)
	case 0:
		v = math.Ldexp(m, -24)
	default:
		v = math.Ldexp(1+m/1024, e-15)
	}
	if s == 1 {
		v = -v
	}
	return v
}

// TestWidenF16All converts all 65,536 float16 bit patterns, at every
// output offset and across vector and tail positions. NaNs must keep sign
// and payload and come out quiet, as VCVTPH2PS and FCVTL do.
func TestWidenF16All(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		src := make([]uint16, 1<<16)
		for i := range src {
			src[i] = uint16(i)
		}
		for k := range 8 {
			s := src[k:] // a different element lands in the tail for each k
			dst, buf := guarded32(len(s), k, canaryF32)
			widenF16(dst, s)
			checkGuard32(t, buf, guardLen+k, len(s), "widenF16")
			for i, h := range s {
				got, want := dst[i], refWiden(h)
				if math.IsNaN(want) {
					wantBits := uint32(h>>15)<<31 | 0x7fc00000 | uint32(h&0x3ff)<<13
					if math.Float32bits(got) != wantBits {
						t.Fatalf("widenF16(%#04x) = %#08x, want %#08x", h, math.Float32bits(got), wantBits)
					}
					continue
				}
				if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
					t.Fatalf("widenF16(%#04x) = %g, want %g", h, got, want)
				}
			}
		}
	})
}

// f16Values maps every non-negative finite float16 value to its bits, for
// refNarrow; built from refWiden, which TestWidenF16All checks.
var f16Values = func() map[float64]uint16 {
	m := make(map[float64]uint16)
	for h := range uint16(0x7c00) {
		m[refWiden(h)] = h
	}
	return m
}()

// refNarrow rounds f to float16 with float64 arithmetic: the nearest
// multiple of the binary16 quantum at f's exponent, ties to even (Go's
// math.RoundToEven), overflowing to Inf from 65520 = 65504 + half an ulp up.
// NaNs become quiet NaNs keeping sign and the top 9 payload bits.
func refNarrow(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	a := math.Abs(float64(f))
	switch {
	case math.IsNaN(a):
		return sign | 0x7e00 | uint16(b>>13)&0x1ff
	case a >= 65520:
		return sign | 0x7c00
	case a == 0:
		return sign
	}
	e := max(math.Floor(math.Log2(a)), -14)
	q := math.Ldexp(1, int(e)-10)
	r := math.RoundToEven(a/q) * q
	h, ok := f16Values[r]
	if !ok {
		panic("refNarrow: rounded value is not a float16")
	}
	return sign | h
}

// narrowCases returns float32 values around every float16: each value, the
// halfway points to its neighbours and one float32 ulp either side of
// them, plus the ranges float16 does not have (tiny, huge, NaN).
func narrowCases() []float32 {
	var v []float32
	add := func(x float32) {
		v = append(v, x, -x, math.Nextafter32(x, 0), math.Nextafter32(x, float32(math.Inf(1))))
	}
	for h := range uint16(0x7c00) {
		lo, hi := refWiden(h), refWiden(h+1)
		add(float32(lo))
		add(float32((lo + hi) / 2)) // exact: float16 has 11 bits, float32 24
	}
	for _, x := range []float32{
		0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 0x1p-14, 0x1.ffcp-15, 0x1p-149, 0x1p-126, 0x1.fffffep-127,
		65504, 65519, 65519.996, 65520, 65536, 1e10, math.MaxFloat32, float32(math.Inf(1)),
	} {
		add(x)
	}
	for _, bits := range []uint32{0x7fc00000, 0x7f800001, 0x7fbfffff, 0x7fffffff, 0x7fa02000, 0x7f802000, 0x7fc01fff} {
		v = append(v, math.Float32frombits(bits), math.Float32frombits(bits|1<<31))
	}
	// A sweep through all float32 exponents.
	for b := uint32(0); b < 1<<31; b += 65521 * 7 {
		v = append(v, math.Float32frombits(b), math.Float32frombits(b|1<<31))
	}
	return v
}

func TestNarrowF16(t *testing.T) {
	cases := narrowCases()
	forEachImpl(t, func(t *testing.T) {
		for k := range 8 {
			src, _ := guarded32(len(cases)-k, k, poisonF32)
			copy(src, cases[k:])
			dst, buf := guarded16(len(src), (k+3)%8, canaryF16)
			narrowF16(dst, src)
			checkGuard16(t, buf, guardLen+(k+3)%8, len(dst), "narrowF16")
			for i, f := range src {
				if want := refNarrow(f); dst[i] != want {
					t.Fatalf("narrowF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), dst[i], want)
				}
			}
		}
	})
}

// TestConvertLengths widens and narrows every length up to 140 and past the
// per-call limit at every pair of offsets, bit for bit against the reference
// conversions.
func TestConvertLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	forEachImpl(t, func(t *testing.T) {
		for _, n := range vecLens() {
			for k := range 8 {
				oa, ob, _ := offsets(k)
				h, _ := guarded16(n, oa, poisonF16)
				for i := range h {
					h[i] = uint16(rng.Uint32())
				}
				wide, wbuf := guarded32(n, ob, canaryF32)
				widenF16(wide, h)
				checkGuard32(t, wbuf, guardLen+ob, n, "widenF16")
				back, nbuf := guarded16(n, oa, canaryF16)
				narrowF16(back, wide)
				checkGuard16(t, nbuf, guardLen+oa, n, "narrowF16")
				for i := range n {
					if w := f16ToF32(h[i]); math.Float32bits(wide[i]) != math.Float32bits(w) {
						t.Fatalf("n=%d: widenF16(%#04x) = %#08x, want %#08x", n, h[i], math.Float32bits(wide[i]), math.Float32bits(w))
					}
					if w := refNarrow(wide[i]); back[i] != w {
						t.Fatalf("n=%d: narrowF16(%#08x) = %#04x, want %#04x", n, math.Float32bits(wide[i]), back[i], w)
					}
				}
			}
		}
	})
}

// TestNarrowF16Random rounds random float32 bit patterns, NaNs and
// signalling NaNs with assorted payloads among them, at every offset.
func TestNarrowF16Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	forEachImpl(t, func(t *testing.T) {
		for k := range 8 {
			src, _ := guarded32(25000+k, k, poisonF32)
			for i := range src {
				src[i] = math.Float32frombits(rng.Uint32())
			}
			dst, buf := guarded16(len(src), (k+5)%8, canaryF16)
			narrowF16(dst, src)
			checkGuard16(t, buf, guardLen+(k+5)%8, len(dst), "narrowF16")
			for i, f := range src {
				if want := refNarrow(f); dst[i] != want {
					t.Fatalf("narrowF16(%#08x) = %#04x, want %#04x", math.Float32bits(f), dst[i], want)
				}
			}
		}
	})
}

// TestKernelPanics checks that a precondition violation panics before
// anything is written out of bounds, whichever variant runs.
func TestKernelPanics(t *testing.T) {
	mustPanic := func(t *testing.T, name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	forEachImpl(t, func(t *testing.T) {
		f32, f16 := func(n int) []float32 { return make([]float32, n) }, func(n int) []uint16 { return make([]uint16, n) }
		mustPanic(t, "scoreBlock", func() { scoreBlock(f32(4), f32(8), 4, 1, f32(1)) })
		mustPanic(t, "scoreBlockF16", func() { scoreBlockF16(f32(16), f16(32), 16, 1, f32(1)) })
		mustPanic(t, "weightedSums", func() { weightedSums(f32(2*5), f32(4*8+7), f32(2*8), 8) })
		mustPanic(t, "weightedSumsF16", func() { weightedSumsF16(f32(2*5), f16(4*8+7), f32(2*8), 8) })
		mustPanic(t, "weightedSums g=1", func() { weightedSums(f32(3), f32(5), f32(2), 2) })
		mustPanic(t, "axpy", func() { axpy(1, f32(3), f32(2)) })
		mustPanic(t, "widenF16", func() { widenF16(f32(2), f16(3)) })
		mustPanic(t, "narrowF16", func() { narrowF16(f16(2), f32(3)) })
		mustPanic(t, "copyFinite", func() { copyFinite(f32(15), f32(16)) })
		mustPanic(t, "copyFinite tail", func() { copyFinite(f32(2), f32(3)) })
		mustPanic(t, "gatherRows index", func() { gatherRows(f32(16), f32(32), []int32{0, 2}, 16) })
		mustPanic(t, "gatherRows dst", func() { gatherRows(f32(16), f32(32), []int32{0, 1}, 16) })
		mustPanic(t, "gatherRowsF16 index", func() { gatherRowsF16(f16(32), f16(64), []int32{-1, 0}, 32) })
	})
}

// TestNarrowWidenRoundTrip checks that every float16 survives widening and
// narrowing unchanged, NaNs included (they are quiet after widening).
func TestNarrowWidenRoundTrip(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		src := make([]uint16, 1<<16)
		for i := range src {
			src[i] = uint16(i)
		}
		wide := make([]float32, len(src))
		back := make([]uint16, len(src))
		widenF16(wide, src)
		narrowF16(back, wide)
		for i, h := range src {
			want := h
			if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
				want |= 0x200
			}
			if back[i] != want {
				t.Fatalf("narrowF16(widenF16(%#04x)) = %#04x, want %#04x", h, back[i], want)
			}
		}
	})
}

// TestKernelsAllocateNothing: the kernels run on Attend's zero-allocation
// path.
func TestKernelsAllocateNothing(t *testing.T) {
	d, n := 128, 300
	q, keys, out := make([]float32, 4*d), make([]float32, n*d), make([]float32, 4*n)
	k16, v := make([]uint16, n*d), make([]float32, d)
	forEachImpl(t, func(t *testing.T) {
		allocs := testing.AllocsPerRun(10, func() {
			scoreBlock(q, keys, d, 1, out)
			scoreBlockF16(q, k16, d, 1, out)
			expSub(out[:n], maxOf(out[:n]))
			weightedSums(out[:n], keys, v, len(v))
			weightedSumsF16(out[:n], k16, v, len(v))
			weightedSums(out[:4*(n/4)], keys[:n/4*d], q[:4*d], d)
			weightedSumsF16(out[:4*(n/4)], k16[:n/4*d], q[:4*d], d)
			axpy(2, v, q[:d])
			l1Norm(keys)
			l1NormF16(k16)
			copyFinite(keys[:n*d/2], keys[n*d/2:])
			finiteF16Row(k16)
		})
		if allocs != 0 {
			t.Errorf("kernels allocate %v times per run", allocs)
		}
	})
}

// refNonFinite reports, with math's own predicates and independently of the
// exponent tricks of the kernels, whether f is NaN or infinite.
func refNonFinite(f float32) bool {
	return math.IsNaN(float64(f)) || math.IsInf(float64(f), 0)
}

// refNonFiniteF16 reports whether the float16 bits h are NaN or infinite,
// as refWiden decodes them.
func refNonFiniteF16(h uint16) bool {
	v := refWiden(h)
	return math.IsNaN(v) || math.IsInf(v, 0)
}

// badF32 are NaNs (quiet, signalling, either sign, assorted payloads) and
// infinities; edgeF32 are finite values next to them and elsewhere at the
// ends of the exponent range, which must pass.
var (
	badF32  = []uint32{0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff, 0xffffffff, 0x7fa5a5a5}
	edgeF32 = []uint32{0x7f7fffff, 0xff7fffff, 0x7f000000, 0x00800000, 0x807fffff, 0x00000001, 0x80000000, 0x3f800000, 0x7effffff}
)

// randEdgeF32 fills x with random float32 bit patterns that are finite, a
// quarter of them with the largest finite exponent, so that a check that is
// off by one exponent fails.
func randEdgeF32(rng *rand.Rand, x []float32) {
	for i := range x {
		b := rng.Uint32()
		if b&0x7f800000 == 0x7f800000 || rng.IntN(4) == 0 {
			b = b&0x807fffff | 0x7f000000
		}
		x[i] = math.Float32frombits(b)
	}
}

// checkCopyFinite runs copyFinite on src into a guarded dst at offset od
// and checks the copy bit for bit, the canaries and the index returned.
func checkCopyFinite(t *testing.T, src []float32, od int, what string) {
	t.Helper()
	dst, buf := guarded32(len(src), od, canaryF32)
	got := copyFinite(dst, src)
	checkGuard32(t, buf, guardLen+od, len(src), "copyFinite "+what)
	want := slices.IndexFunc(src, refNonFinite)
	if got != want {
		t.Fatalf("copyFinite %s n=%d: %d, want %d", what, len(src), got, want)
	}
	for i := range src {
		if math.Float32bits(dst[i]) != math.Float32bits(src[i]) {
			t.Fatalf("copyFinite %s n=%d: dst[%d] = %#08x, want %#08x", what, len(src), i, math.Float32bits(dst[i]), math.Float32bits(src[i]))
		}
	}
}

// TestCopyFinite copies every length at every pair of offsets, finite data
// (with poisoned NaNs around the source, so that a kernel reading past it
// reports one), and then every NaN and infinity above at every position of
// every length up to 140, in every lane of every vector and in the tail.
// Past the per-call limit, bad elements sit at the edges of the calls.
func TestCopyFinite(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(23, 24))
		for _, n := range vecLens() {
			for k := range 8 {
				os, od, _ := offsets(k)
				src, _ := guarded32(n, os, poisonF32)
				randEdgeF32(rng, src)
				if n > 0 {
					src[rng.IntN(n)] = math.Float32frombits(edgeF32[rng.IntN(len(edgeF32))])
				}
				checkCopyFinite(t, src, od, "finite")
			}
		}
		for n := 1; n <= 140; n++ {
			src, _ := guarded32(n, n%8, poisonF32)
			for i := range n {
				for j, bad := range badF32 {
					randEdgeF32(rng, src)
					src[i] = math.Float32frombits(bad)
					if j%3 == 0 && i+1 < n { // a second bad element later must not matter
						src[i+1+rng.IntN(n-i-1)] = math.Float32frombits(badF32[rng.IntN(len(badF32))])
					}
					checkCopyFinite(t, src, (n+i)%8, "bad")
				}
			}
		}
		for _, n := range []int{asmWork - 1, asmWork, asmWork + 1, 2*asmWork + 13} {
			src := make([]float32, n)
			for _, i := range []int{0, 7, 8, 31, 32, asmWork - 8, asmWork - 1, asmWork, asmWork + 7, n - 8, n - 1, rng.IntN(n)} {
				if i < 0 || i >= n {
					continue
				}
				randEdgeF32(rng, src)
				src[i] = math.Float32frombits(badF32[i%len(badF32)])
				checkCopyFinite(t, src, i%8, "long")
			}
		}
	})
}

// TestFiniteF16Row puts each of the 65,536 float16 bit patterns into every
// position of a row of 40 elements (two vectors of 16 and one of 8 on
// amd64; a step of 32 and one of 8 on arm64) and into one position of
// longer rows and rows with a tail, among finite values up to the largest
// one, 65504.
func TestFiniteF16Row(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(25, 26))
		fill := func(row []uint16) {
			for i := range row {
				row[i] = uint16(rng.Uint32()) & 0xfbff // exponent ≤ 0x1e
				if rng.IntN(4) == 0 {
					row[i] |= 0x7800 // the largest finite exponent
				}
			}
		}
		rows := make(map[int][]uint16)
		for _, n := range []int{40, 64, 72, 128, 129, 137} {
			rows[n], _ = guarded16(n, n%8, poisonF16)
			fill(rows[n])
		}
		// check puts h at position p of the row of n, checks, and puts
		// the finite value there back.
		check := func(h uint16, want bool, n, p int) {
			row := rows[n]
			old := row[p]
			row[p] = h
			if got := finiteF16Row(row); got != want {
				t.Fatalf("finiteF16Row with %#04x at %d of %d = %v, want %v", h, p, n, got, want)
			}
			row[p] = old
		}
		for h := range 1 << 16 {
			want := !refNonFiniteF16(uint16(h))
			for p := range 40 {
				check(uint16(h), want, 40, p)
			}
			for _, n := range []int{64, 72, 128, 129, 137} {
				check(uint16(h), want, n, h%n)
			}
		}
		for _, n := range vecLens() {
			for k := range 8 {
				row, _ := guarded16(n, k, poisonF16)
				fill(row)
				if !finiteF16Row(row) {
					t.Fatalf("finiteF16Row n=%d offset %d: false for finite values", n, k)
				}
				if n == 0 {
					continue
				}
				for _, p := range []int{0, n - 1, rng.IntN(n), asmWork - 1, asmWork} {
					if p >= n {
						continue
					}
					old := row[p]
					row[p] = []uint16{0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff}[rng.IntN(5)]
					if finiteF16Row(row) {
						t.Fatalf("finiteF16Row n=%d offset %d: true with %#04x at %d", n, k, row[p], p)
					}
					row[p] = old
				}
			}
		}
	})
}
