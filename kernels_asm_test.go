//go:build (amd64 || arm64) && gc && !purego

package lava

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// fma32Exact is x·y + z rounded once to float32, with big.Float.
func fma32Exact(x, y, z float32) float32 {
	p := new(big.Float).SetPrec(200).SetFloat64(float64(x))
	p.Mul(p, new(big.Float).SetFloat64(float64(y)))
	p.Add(p, new(big.Float).SetFloat64(float64(z)))
	f, _ := p.Float32()
	return f
}

// TestFMA32 checks the fused multiply-add of the Go tails against exact
// arithmetic, including a sum that a float64 FMA would round onto a float32
// midpoint, and against the vector FMA of axpyAsm.
func TestFMA32(t *testing.T) {
	// (1+2⁻²³)·(1−2⁻²³)·2⁻²⁴ = 2⁻²⁴ − 2⁻⁷⁰: added to 1+2⁻²³ it lies just
	// below a float32 midpoint, which float64 rounding would reach.
	hard := [][3]float32{{1 + 0x1p-23, (1 - 0x1p-23) * 0x1p-24, 1 + 0x1p-23}, {-(1 + 0x1p-23), (1 - 0x1p-23) * 0x1p-24, -(1 + 0x1p-23)}}
	for _, c := range hard {
		if got, want := fma32(c[0], c[1], c[2]), fma32Exact(c[0], c[1], c[2]); got != want {
			t.Fatalf("fma32(%g, %g, %g) = %#08x, want %#08x", c[0], c[1], c[2], math.Float32bits(got), math.Float32bits(want))
		}
	}
	rng := rand.New(rand.NewPCG(51, 52))
	const n = 20000
	xs, ys, zs := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range n {
		xs[i] = float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(60)-30))
		ys[i] = float32(math.Ldexp(2*rng.Float64()-1, rng.IntN(60)-30))
		zs[i] = float32(math.Ldexp(2*rng.Float64()-1, rng.IntN(60)-30))
		if i%5 == 0 { // |x·y| near |z|: cancellation
			zs[i] = -xs[i] * ys[i] * (1 + float32(rng.NormFloat64())*0x1p-20)
		}
		if want := fma32Exact(xs[i], ys[i], zs[i]); math.Float32bits(fma32(xs[i], ys[i], zs[i])) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", xs[i], ys[i], zs[i], fma32(xs[i], ys[i], zs[i]), want)
		}
	}
	if !useAsm {
		return
	}
	for i := range n {
		y := []float32{zs[i]}
		axpyAsm(xs[i], &ys[i], &y[0], 1)
		if got := fma32(xs[i], ys[i], zs[i]); math.Float32bits(got) != math.Float32bits(y[0]) {
			t.Fatalf("fma32(%g, %g, %g) = %g, the vector FMA %g", xs[i], ys[i], zs[i], got, y[0])
		}
	}
}

// TestCopyCheckAsmExact checks the verdict of copyCheckAsm itself. Through
// copyFinite a false alarm is invisible, as the rescan finds no bad element
// and returns −1; it only costs a second pass. So the top bit must be clear
// for finite data, the largest exponents included, at every length and
// offset, and set for a NaN or infinity at every position.
func TestCopyCheckAsmExact(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly kernels in this build or on this CPU")
	}
	rng := rand.New(rand.NewPCG(53, 54))
	for n := 8; n <= 320; n += 8 {
		for k := range 8 {
			os, od, _ := offsets(k)
			src, _ := guarded32(n, os, poisonF32)
			dst, _ := guarded32(n, od, canaryF32)
			randEdgeF32(rng, src)
			if acc := copyCheckAsm(&dst[0], &src[0], n); acc&(1<<31) != 0 {
				t.Fatalf("copyCheckAsm n=%d offset %d: %#08x for finite data", n, k, acc)
			}
			for i := range n {
				old := src[i]
				src[i] = math.Float32frombits(badF32[(i+k)%len(badF32)])
				if acc := copyCheckAsm(&dst[0], &src[0], n); acc&(1<<31) == 0 {
					t.Fatalf("copyCheckAsm n=%d offset %d: %#08x with %#08x at %d", n, k, acc, math.Float32bits(src[i]), i)
				}
				src[i] = old
			}
		}
	}
}
