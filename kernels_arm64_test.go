//go:build arm64 && gc && !purego

package lava

// What only holds on arm64; everything else is in the common kernel suite.
// Run under qemu: GOARCH=arm64 go test -exec qemu-aarch64 .

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestNEONWeightedSumsMatchGeneric compares the grouped weighted sums of the
// NEON kernels with the generic ones bit for bit. That holds on arm64 only:
// both compute each element as one chain of fused multiply-adds over the
// rows in the order of p (the Go compiler fuses y[i] += a*x there), so it
// also catches a kernel that skips, repeats or reorders rows or mixes up
// heads. Every group split g = 1..9, column counts 1..70 and a few head
// dimensions, row counts across the per-call block.
func TestNEONWeightedSumsMatchGeneric(t *testing.T) {
	if !useAsm {
		t.Skip("no NEON kernels in this build")
	}
	r := rand.New(rand.NewPCG(21, 22))
	for _, f16 := range []bool{false, true} {
		for g := 1; g <= 9; g++ {
			ds := []int{96, 112, 127, 128, 129, 256}
			for d := 1; d <= 70; d++ {
				ds = append(ds, d)
			}
			for _, d := range ds {
				for _, n := range []int{0, 1, 2, 5, 17} {
					wsumsMatchGeneric(t, r, f16, g, d, n)
				}
			}
		}
		for _, c := range []struct{ g, d int }{{2, 8}, {3, 33}, {4, 128}, {5, 64}, {8, 128}, {9, 15}} {
			size := 4
			if f16 {
				size = 2
			}
			wsumsMatchGeneric(t, r, f16, c.g, c.d, 2*wsumsRows(c.d, size*c.d)+3)
		}
	}
}

func wsumsMatchGeneric(t *testing.T, r *rand.Rand, f16 bool, g, d, n int) {
	t.Helper()
	p := make([]float32, g*n)
	for i := range p {
		p[i] = r.Float32()
	}
	v32 := make([]float32, n*d)
	randF32(r, v32)
	v16 := make([]uint16, n*d)
	randF16(r, v16)
	got, want := make([]float32, g*d), make([]float32, g*d)
	if f16 {
		weightedSumsF16(p, v16, got, d)
		weightedSumsF16Generic(p, v16, want, d)
	} else {
		weightedSums(p, v32, got, d)
		weightedSumsGeneric(p, v32, want, d)
	}
	for k := range got {
		if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
			t.Fatalf("f16=%v g=%d d=%d n=%d: out[%d·d+%d] = %v, generic %v", f16, g, d, n, k/d, k%d, got[k], want[k])
		}
	}
}
