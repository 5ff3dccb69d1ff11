//go:build arm64 && gc && !purego

package lava

import (
	"math"
	"testing"
)

// TestNEONDequantEveryScale runs every float16 scale bit pattern, Inf and
// NaN included (the random blocks of quant_test.go have finite scales
// only), with every byte value through the NEON dequantisers and compares
// the bits with dequantGeneric. On arm64 both widen the scale exactly
// (FCVTL, f16ToF32, which quiet NaNs the same way) and multiply with the
// same hardware FMUL, so even the NaN and Inf blocks agree.
func TestNEONDequantEveryScale(t *testing.T) {
	if !useAsm {
		t.Skip("no NEON kernels in this build")
	}
	for _, e := range []Element{Q8_0, Q4_0} {
		bb := e.blockBytes(quantBlock)
		per := 256 / (bb - 2) // blocks per scale covering every byte value
		const scales = 1024   // per call of dequant
		src := make([]byte, scales*per*bb)
		got := make([]float32, scales*per*quantBlock)
		want := make([]float32, len(got))
		for h0 := 0; h0 < 1<<16; h0 += scales {
			for s := range scales {
				h := h0 + s
				for k := range per {
					blk := src[(s*per+k)*bb : (s*per+k+1)*bb]
					blk[0], blk[1] = byte(h), byte(h>>8)
					for i := range blk[2:] {
						blk[2+i] = byte(k*(bb-2) + i)
					}
				}
			}
			dequant(got, src, e, quantBlock)
			dequantGeneric(want, src, e, quantBlock)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					b := i / quantBlock
					t.Fatalf("%v scale %#04x, block byte %d: element %d = %#x, want %#x", e,
						uint16(src[b*bb])|uint16(src[b*bb+1])<<8, b%per, i%quantBlock,
						math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
		}
	}
}
