package lava

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Ties (spec §8.9): identical inputs must give bit-identical outputs on every
// code path, or two prefix tokens with equal inputs get scores an ulp apart
// and their order depends on where they lie. Each test below puts the same
// input at every position of a kernel's output, across vector bodies,
// tails, tiles, group splits and per-call chunks, and requires the same
// bits everywhere. The comparison is within one implementation: the
// generic code on arm64 fuses a·b + c and on amd64 does not, so there are no
// golden bits.

// sameBits32 reports the first element of x whose bits differ from x[0].
func sameBits32(x []float32) (int, bool) {
	for i, v := range x {
		if math.Float32bits(v) != math.Float32bits(x[0]) {
			return i, false
		}
	}
	return 0, true
}

// tieLens are the lengths of the one-dimensional tie tests: every length up
// to 70, then across the per-call limit.
func tieLens() []int {
	var n []int
	for i := 1; i <= 70; i++ {
		n = append(n, i)
	}
	return append(n, asmWork+37, 2*asmWork+5)
}

func TestTiesScoreBlock(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(31, 32))
		for _, f16 := range []bool{false, true} {
			for _, d := range []int{1, 3, 5, 8, 9, 13, 16, 24, 37, 64, 100, 128} {
				size := 4
				if f16 {
					size = 2
				}
				for _, nq := range []int{1, 2, 3, 4, 5, 6, 7, 8} {
					for _, nk := range []int{1, 3, 4, 5, 9, 2*scoreKeys(d, size) + 5} {
						// One query row and one key row, repeated.
						qrow, krow := make([]float32, d), make([]float32, d)
						randF32(rng, qrow)
						randF32(rng, krow)
						q := make([]float32, nq*d)
						for i := range nq {
							copy(q[i*d:], qrow)
						}
						keys := make([]float32, nk*d)
						for j := range nk {
							copy(keys[j*d:], krow)
						}
						out := make([]float32, nq*nk)
						if f16 {
							k16 := make([]uint16, len(keys))
							narrowF16Generic(k16, keys)
							scoreBlockF16(q, k16, d, 0.125, out)
						} else {
							scoreBlock(q, keys, d, 0.125, out)
						}
						if i, ok := sameBits32(out); !ok {
							t.Fatalf("f16=%v d=%d nq=%d nk=%d: score %d (query %d, key %d) = %g, score 0 = %g", f16, d, nq, nk, i, i/nk, i%nk, out[i], out[0])
						}
					}
				}
			}
		}
	})
}

func TestTiesMaxOf(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(33, 34))
		for _, n := range tieLens() {
			x := make([]float32, n)
			for i := range x {
				x[i] = -10 * rng.Float32()
			}
			top := 1 + float32(math.Abs(rng.NormFloat64())) // above the rest
			positions := []int{0, n / 2, n - 1, min(8, n-1), min(asmWork, n-1), min(asmWork-1, n-1)}
			if n <= 70 {
				positions = positions[:0]
				for p := range n {
					positions = append(positions, p)
				}
			}
			for _, p := range positions {
				y := append([]float32(nil), x...)
				y[p] = top
				if got := maxOf(y); math.Float32bits(got) != math.Float32bits(top) {
					t.Fatalf("n=%d: the maximum %g at %d gives %g", n, top, p, got)
				}
			}
			for i := range x {
				x[i] = top
			}
			if got := maxOf(x); math.Float32bits(got) != math.Float32bits(top) {
				t.Fatalf("n=%d: max of %d copies of %g = %g", n, n, top, got)
			}
		}
	})
}

func TestTiesExpSub(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(35, 36))
		for _, n := range tieLens() {
			m := float32(rng.NormFloat64())
			v := m - 20*rng.Float32()
			x := make([]float32, n)
			for i := range x {
				x[i] = v
			}
			expSub(x, m)
			if i, ok := sameBits32(x); !ok {
				t.Fatalf("n=%d: exp(%g − %g) = %g at %d, %g at 0", n, v, m, x[i], i, x[0])
			}
		}
	})
}

func TestTiesAxpy(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(37, 38))
		for _, n := range tieLens() {
			// Values whose products need rounding, so that fused and
			// unfused arithmetic differ.
			a, xv, yv := float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
			x, y := make([]float32, n), make([]float32, n)
			for i := range x {
				x[i], y[i] = xv, yv
			}
			axpy(a, x, y)
			if i, ok := sameBits32(y); !ok {
				t.Fatalf("n=%d: %g·%g + %g = %g at %d, %g at 0", n, a, xv, yv, y[i], i, y[0])
			}
		}
	})
}

// TestTiesWeightedSums gives every column of a value row the same value and
// every head the same weights: all g·d outputs must agree, whichever
// column block, tail, group kernel or row block they fall in.
func TestTiesWeightedSums(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(39, 40))
		for _, f16 := range []bool{false, true} {
			size := 4
			if f16 {
				size = 2
			}
			for g := 1; g <= 9; g++ {
				for _, d := range []int{1, 3, 8, 9, 15, 16, 17, 24, 31, 33, 40, 63, 64, 65, 100, 128, 129} {
					ns := []int{1, 2, 5}
					if d >= 8 {
						ns = append(ns, 2*wsumsRows(d, size*d)+3)
					}
					for _, n := range ns {
						w := make([]float32, n)
						vals := make([]float32, n*d)
						for j := range n {
							w[j] = rng.Float32()
							v := float32(rng.NormFloat64())
							for c := range d {
								vals[j*d+c] = v
							}
						}
						p := make([]float32, g*n)
						for i := range g {
							copy(p[i*n:], w)
						}
						out := make([]float32, g*d)
						if f16 {
							v16 := make([]uint16, len(vals))
							narrowF16Generic(v16, vals)
							weightedSumsF16(p, v16, out, d)
						} else {
							weightedSums(p, vals, out, d)
						}
						if i, ok := sameBits32(out); !ok {
							t.Fatalf("f16=%v g=%d d=%d n=%d: out[%d·d+%d] = %g, out[0] = %g", f16, g, d, n, i/d, i%d, out[i], out[0])
						}
					}
				}
			}
		}
	})
}

// TestTiesL1Norm checks that one element contributes |v| exactly wherever it
// lies, and that equal rows at different offsets of a buffer have equal
// norms (score.go ranks tokens by the norms of their value rows).
func TestTiesL1Norm(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(41, 42))
		for _, n := range tieLens()[:70] {
			v := float32(rng.NormFloat64())
			h := f32ToF16(v)
			for p := range n {
				x, x16 := make([]float32, n), make([]uint16, n)
				x[p], x16[p] = v, h
				if got := l1Norm(x); got != float32(math.Abs(float64(v))) {
					t.Fatalf("n=%d: l1Norm with %g at %d alone = %g", n, v, p, got)
				}
				if got, want := l1NormF16(x16), float32(math.Abs(float64(f16ToF32(h)))); got != want {
					t.Fatalf("n=%d: l1NormF16 with %#04x at %d alone = %g, want %g", n, h, p, got, want)
				}
			}
		}
		for _, d := range []int{1, 7, 8, 13, 64, 128} {
			row := make([]float32, d)
			randF32(rng, row)
			const rows = 11
			buf := make([]float32, rows*d+7)
			buf16 := make([]uint16, len(buf))
			norms := make([]float32, 0, 2*rows)
			for r := range rows {
				off := r*d + r%8 // every alignment
				if off+d > len(buf) {
					off = r * d
				}
				copy(buf[off:], row)
				narrowF16Generic(buf16[off:off+d], row)
				norms = append(norms, l1Norm(buf[off:off+d]))
				norms = append(norms, l1NormF16(buf16[off:off+d]))
			}
			for r := 0; r < len(norms); r += 2 {
				if norms[r] != norms[0] || norms[r+1] != norms[1] {
					t.Fatalf("d=%d: row %d has norms %g, %g; row 0 %g, %g", d, r/2, norms[r], norms[r+1], norms[0], norms[1])
				}
			}
		}
	})
}

func TestTiesConvert(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(43, 44))
		for _, n := range tieLens() {
			h := uint16(rng.Uint32())
			src := make([]uint16, n)
			for i := range src {
				src[i] = h
			}
			wide := make([]float32, n)
			widenF16(wide, src)
			back := make([]uint16, n)
			narrowF16(back, wide)
			for i := range n {
				if math.Float32bits(wide[i]) != math.Float32bits(wide[0]) || back[i] != back[0] {
					t.Fatalf("n=%d: %#04x widens to %#08x at %d, %#08x at 0", n, h, math.Float32bits(wide[i]), i, math.Float32bits(wide[0]))
				}
			}
		}
	})
}
