package ggufwrite

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lavakv/lava/examples/gguf"
)

// TestFloatToHalfExhaustive: every finite binary16 value converts back to
// itself, and every midpoint between neighbours rounds to the even one.
func TestFloatToHalfExhaustive(t *testing.T) {
	for h := range uint32(0x10000) {
		h := uint16(h)
		if h&0x7c00 == 0x7c00 {
			if h&0x3ff == 0 && floatToHalf(gguf.HalfToFloat(h)) != h {
				t.Errorf("Inf %#04x does not round-trip", h)
			}
			continue
		}
		f := gguf.HalfToFloat(h)
		if got := floatToHalf(f); got != h && !(f == 0 && got&0x7fff == 0) {
			t.Errorf("floatToHalf(%v) = %#04x, want %#04x", f, got, h)
		}
		if h&0x7fff == 0x7bff {
			continue // the largest finite value: its upper midpoint overflows
		}
		// Midpoint to the next value away from zero, exact in float32.
		next := gguf.HalfToFloat(h + 1)
		mid := float32((float64(f) + float64(next)) / 2)
		want := h
		if h&1 == 1 {
			want = h + 1
		}
		if got := floatToHalf(mid); got != want {
			t.Errorf("floatToHalf(midpoint %v of %#04x, %#04x) = %#04x, want %#04x (ties to even)", mid, h, h+1, got, want)
		}
	}
}

// TestFloatToHalfNearest compares random float32 values with a brute-force
// nearest search in float64.
func TestFloatToHalfNearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) {
			continue
		}
		got := floatToHalf(f)
		gf := float64(gguf.HalfToFloat(got))
		if math.Abs(float64(f)) >= 65520 { // rounds to Inf in binary16
			if !math.IsInf(gf, 0) || math.Signbit(gf) != math.Signbit(float64(f)) {
				t.Fatalf("floatToHalf(%v) = %v, want ±Inf", f, gf)
			}
			continue
		}
		err := math.Abs(gf - float64(f))
		for _, n := range []uint16{got - 1, got + 1} {
			if n&0x7c00 == 0x7c00 || (n^got)&0x8000 != 0 {
				continue
			}
			if e := math.Abs(float64(gguf.HalfToFloat(n)) - float64(f)); e < err {
				t.Fatalf("floatToHalf(%v) = %#04x (%v), but %#04x is nearer", f, got, gf, n)
			}
		}
	}
}

func TestFloatToBF16(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x7f7fffff, 0x7f80}, // max float32 rounds to Inf
		{0xff800000, 0xff80}, // −Inf
	}
	for _, c := range cases {
		if got := floatToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("floatToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if got := floatToBF16(float32(math.NaN())); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("floatToBF16(NaN) = %#04x, want a NaN", got)
	}
}
