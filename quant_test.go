package lava

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The quantised formats against the spec (§12): exact bytes of known
// vectors, the error bounds Q8_0's and Q4_0's documentation states, the
// dequantisers of every implementation against the generic one bit for
// bit, and the kernels over quantised rows against a float64 oracle and,
// bit for bit, against the float32 kernels over the dequantised rows.

var quantTypes = []Element{Q8_0, Q4_0}

// allElements are the storage types the cache tests run under.
var allElements = []Element{Float32, Float16, Q8_0, Q4_0}

// elementsFor is allElements less those a HeadDim of d cannot use (Q4_0
// needs an even one).
func elementsFor(d int) []Element {
	if d%2 != 0 {
		return allElements[:3]
	}
	return allElements
}

func quantise(t *testing.T, e Element, x []float32) []byte {
	t.Helper()
	b := make([]byte, e.rowBytes(len(x)))
	if i := quantiseRow(b, x, e); i >= 0 {
		t.Fatalf("%v: quantiseRow failed at element %d (%v)", e, i, x[i])
	}
	return b
}

func TestQuantiseKnownVectors(t *testing.T) {
	v32 := make([]float32, 32)
	for i := range v32 {
		v32[i] = float32(i-16) * 0.37
	}
	v8 := []float32{0.5, -0.25, 3.0, -7.0, 1.75, 0.0, -0.125, 2.2}
	// The expected bytes were computed independently from the spec's
	// formulas (Python, struct's float16 rounding).
	for _, c := range []struct {
		e    Element
		x    []float32
		want string
	}{
		{Q8_0, v32, "f72981899199a1a9b1b9c0c8d0d8e0e8f0f8000810182028303840474f575f676f77"},
		{Q4_0, v32, "ec3980819192a2a3b3b4c4c5d5d6e6e7f7f8"},
		{Q8_0, v8, "0e2b09fb36812000fe28"},
		{Q4_0, v8, "003ba9888bb0"},
		// Halves round away from zero: a scale of exactly 1.
		{Q8_0, []float32{127, 0.5, -0.5, 2.5, -2.5, 0, 126.5, -127}, "003c7f01ff03fd007f81"},
		// m = −8 gives d = 1; 7.5 clamps to 15, −7.5 rounds to 0.
		{Q4_0, []float32{-8, 0.5, -7.5, 7.5, 0.49, -0.5, 6.5, 1}, "003c8079f09f"},
	} {
		got := hex.EncodeToString(quantise(t, c.e, c.x))
		if got != c.want {
			t.Errorf("%v %v:\n got %s\nwant %s", c.e, c.x, got, c.want)
		}
	}
}

// quantBound is the documented bound on |x − dequant(quant(x))| for the
// block blk of x, given its stored scale.
func quantBound(e Element, blk []float32, scale float32) float64 {
	amax := float64(abs32(blk[largest(blk)]))
	d := math.Abs(float64(scale))
	if e == Q4_0 {
		return max(d/2, amax-7*d)
	}
	return d/2 + math.Abs(amax-127*d)
}

// checkQuantBounds fails the test if any element of x, stored as the row
// blocks b of type e, dequantises outside its block's documented bound.
func checkQuantBounds(t *testing.T, e Element, x []float32, b []byte) {
	t.Helper()
	d := len(x)
	y := make([]float32, d)
	dequantGeneric(y, b, e, d)
	bs := blockLen(d)
	for blk := 0; blk < d; blk += bs {
		scale := f16ToF32(binary.LittleEndian.Uint16(b[blk/bs*e.blockBytes(bs):]))
		bound := quantBound(e, x[blk:blk+bs], scale)
		for i := blk; i < blk+bs; i++ {
			if err := math.Abs(float64(x[i]) - float64(y[i])); err > bound {
				t.Fatalf("%v d=%d: element %d: %v → %v, error %g > bound %g (scale %g)", e, d, i, x[i], y[i], err, bound, scale)
			}
		}
	}
}

func TestQuantiseRoundTripBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, e := range quantTypes {
		for _, d := range []int{2, 8, 30, 32, 64, 96, 128} {
			for trial := range 300 {
				// Magnitudes from float16-subnormal scales to near the
				// largest the scale can hold.
				mag := math.Pow(2, float64(rng.IntN(40)-26))
				x := make([]float32, d)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * mag)
				}
				if trial%7 == 0 {
					x[rng.IntN(d)] = 0
				}
				checkQuantBounds(t, e, x, quantise(t, e, x))
			}
		}
	}
}

// TestQuantBoundIsTight checks the bounds the documentation states in
// relative terms, for blocks whose scale is a normal float16.
func TestQuantBoundIsTight(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, e := range quantTypes {
		worst := 0.0
		for range 2000 {
			x := make([]float32, 32)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			y := make([]float32, 32)
			dequantGeneric(y, quantise(t, e, x), e, 32)
			amax := float64(abs32(x[largest(x)]))
			for i := range x {
				worst = max(worst, math.Abs(float64(x[i]-y[i]))/amax)
			}
		}
		limit := 1.0/254 + 1.0/2048 // Q8_0
		if e == Q4_0 {
			limit = 1.0/8 + 1.0/2048 // one step |d| = max|x|/8
		}
		if worst > limit {
			t.Errorf("%v: worst relative error %g > documented %g", e, worst, limit)
		}
		t.Logf("%v: worst error %.5f·max|x| (documented bound %.5f)", e, worst, limit)
	}
}

func TestQuantiseRejectsWhatItCannotStore(t *testing.T) {
	for _, e := range quantTypes {
		for _, c := range []struct {
			v  float32
			ok bool
		}{
			{float32(math.NaN()), false}, {float32(math.Inf(-1)), false},
			{65504 * 127 * 1.01, false}, {65504 * 8 * 1.01, e == Q8_0}, {1e-30, true},
		} {
			x := make([]float32, 40)
			x[3] = 1
			x[37] = c.v
			b := make([]byte, e.rowBytes(40))
			got := quantiseRow(b, x, e)
			if c.ok != (got < 0) || (!c.ok && got != 37) {
				t.Errorf("%v, element 37 = %v: quantiseRow = %d, want %v", e, c.v, got, map[bool]string{true: "−1", false: "37"}[c.ok])
			}
		}
	}
}

// randomBlocks returns nb blocks of random bytes whose scales are finite
// float16 values of every kind (subnormal, zero, negative, large).
func randomBlocks(rng *rand.Rand, e Element, nb int) []byte {
	bb := e.blockBytes(quantBlock)
	b := make([]byte, nb*bb)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for i := 0; i < len(b); i += bb {
		h := uint16(rng.Uint32())
		if h&expF16 == expF16 {
			h &^= 0x4000
		}
		binary.LittleEndian.PutUint16(b[i:], h)
	}
	return b
}

func TestDequantMatchesGeneric(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, e := range quantTypes {
			for nb := range 20 {
				for off := range 3 {
					src := randomBlocks(rng, e, nb)
					buf := make([]byte, off+len(src)) // unaligned source
					copy(buf[off:], src)
					n := nb * quantBlock
					dst, guard := guarded32(n, off, canaryF32)
					dequant(dst, buf[off:], e, quantBlock)
					want := make([]float32, n)
					dequantGeneric(want, src, e, quantBlock)
					for i := range want {
						if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v nb=%d: element %d = %#x, want %#x", e, nb, i, math.Float32bits(dst[i]), math.Float32bits(want[i]))
						}
					}
					checkGuard32(t, guard, guardLen+off, n, fmt.Sprintf("dequant %v nb=%d", e, nb))
				}
			}
		}
	})
}

// quantRows returns n random rows of d elements quantised to e and the
// rows they dequantise to.
func quantRows(t *testing.T, rng *rand.Rand, e Element, n, d int) ([]byte, []float32) {
	x := make([]float32, d)
	var b []byte
	for range n {
		randF32(rng, x)
		b = append(b, quantise(t, e, x)...)
	}
	y := make([]float32, n*d)
	dequantGeneric(y, b, e, d)
	return b, y
}

func TestQuantKernels(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, e := range quantTypes {
			for _, d := range []int{2, 8, 10, 32, 64, 96, 128} {
				// Up to fusedQueries queries take the fused kernels, more
				// the dequantised tiles.
				for _, nq := range []int{1, 2, 3, 4, 5, 8, 9, 33} {
					for _, nk := range []int{0, 1, 3, 4, 7, 33, 130, 600} {
						checkQuantKernels(t, rng, e, d, nq, nk)
					}
				}
			}
		}
	})
}

func checkQuantKernels(t *testing.T, rng *rand.Rand, e Element, d, nq, nk int) {
	t.Helper()
	what := fmt.Sprintf("%v d=%d nq=%d nk=%d", e, d, nq, nk)
	keys, kf := quantRows(t, rng, e, nk, d)
	q := make([]float32, nq*d)
	randF32(rng, q)
	out, guard := guarded32(nq*nk, 1, canaryF32)
	scoreQuant(q, keys, e, d, 0.25, out)
	checkGuard32(t, guard, guardLen+1, nq*nk, "scoreQuant "+what)
	same := make([]float32, nq*nk)
	scoreBlock(q, kf, d, 0.25, same)
	for i := range nq {
		for j := range nk {
			var s float64
			for k := range d {
				s += float64(q[i*d+k]) * float64(kf[j*d+k])
			}
			s *= 0.25
			got := out[i*nk+j]
			if math.Float32bits(got) != math.Float32bits(same[i*nk+j]) {
				t.Fatalf("scoreQuant %s: score (%d,%d) = %v, the float32 kernel on the dequantised keys %v", what, i, j, got, same[i*nk+j])
			}
			if math.Abs(float64(got)-s) > 1e-5*float64(d) {
				t.Fatalf("scoreQuant %s: score (%d,%d) = %v, oracle %v", what, i, j, got, s)
			}
		}
	}
	// Weights: a softmax-like row per query.
	p := make([]float32, nq*nk)
	for i := range p {
		p[i] = rng.Float32() / float32(max(nk, 1))
	}
	vals, vf := keys, kf
	sums, guard := guarded32(nq*d, 2, canaryF32)
	weightedSumsQuant(p, vals, e, sums, d)
	checkGuard32(t, guard, guardLen+2, nq*d, "weightedSumsQuant "+what)
	ref := make([]float32, nq*d)
	weightedSums(p, vf, ref, d)
	for i := range nq {
		for c := range d {
			var s float64
			for j := range nk {
				s += float64(p[i*nk+j]) * float64(vf[j*d+c])
			}
			got := sums[i*d+c]
			if math.Float32bits(got) != math.Float32bits(ref[i*d+c]) {
				t.Fatalf("weightedSumsQuant %s: (%d,%d) = %v, the float32 kernel on the dequantised values %v", what, i, c, got, ref[i*d+c])
			}
			if math.Abs(float64(got)-s) > 1e-5*float64(nk+1) {
				t.Fatalf("weightedSumsQuant %s: (%d,%d) = %v, oracle %v", what, i, c, got, s)
			}
		}
	}
	norms, guard := guarded32(nk, 3, canaryF32)
	l1NormsQuant(norms, vals, e, d)
	checkGuard32(t, guard, guardLen+3, nk, "l1NormsQuant "+what)
	for j := range nk {
		var s float64
		for _, v := range vf[j*d : (j+1)*d] {
			s += math.Abs(float64(v))
		}
		got := norms[j]
		if got != l1Norm(vf[j*d:(j+1)*d]) || math.Abs(float64(got)-s) > 1e-5*s+1e-30 {
			t.Fatalf("l1NormsQuant %s: row %d = %v, float32 kernel %v, oracle %v", what, j, got, l1Norm(vf[j*d:(j+1)*d]), s)
		}
	}
}

func TestGatherRowsBytes(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, rb := range []int{6, 10, 18, 34, 68, 136, 272} {
			for _, n := range []int{0, 1, 2, 5, 40} {
				src := make([]byte, 2*n*rb)
				for i := range src {
					src[i] = byte(rng.Uint32())
				}
				var idx []int32
				for i := 0; i < 2*n; i++ {
					if rng.IntN(2) == 0 && len(idx) < n {
						idx = append(idx, int32(i))
					}
				}
				want := make([]byte, 0, len(idx)*rb)
				for _, i := range idx {
					want = append(want, src[int(i)*rb:int(i+1)*rb]...)
				}
				dst := make([]byte, len(idx)*rb)
				gatherRowsBytes(dst, src, idx, rb)
				if !slices.Equal(dst, want) {
					t.Fatalf("rb=%d n=%d: apart: wrong bytes", rb, n)
				}
				gatherRowsBytes(src, src, idx, rb) // in place
				if !slices.Equal(src[:len(want)], want) {
					t.Fatalf("rb=%d n=%d: in place: wrong bytes", rb, n)
				}
			}
		}
	})
}

// FuzzQuant quantises arbitrary float32 rows (any bit pattern) and checks
// that quantiseRow either names an element it cannot store or stores
// blocks within the documented bounds, and that every dequantiser agrees
// with the generic one on arbitrary block bytes.
func FuzzQuant(f *testing.F) {
	f.Add([]byte("\x00\x00\x80\x3f\x00\x00\x00\xc0 a row of floats"), uint8(0))
	f.Add(make([]byte, 4*64), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		e := quantTypes[kind%2]
		d := len(data) / 4 &^ 1
		if d == 0 || d > quantTile {
			return
		}
		x := make([]float32, d)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		b := make([]byte, e.rowBytes(d))
		if bad := quantiseRow(b, x, e); bad >= 0 {
			v := x[bad]
			most := 65504.0 * 127 // the largest magnitude whose scale is a finite float16
			if e == Q4_0 {
				most = 65504 * 8
			}
			if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) && math.Abs(float64(v)) < most {
				t.Fatalf("%v: rejected element %d = %v, which is storable", e, bad, v)
			}
			return
		}
		checkQuantBounds(t, e, x, b)
		// The raw bytes as blocks of 32: every implementation agrees.
		nb := len(data) / e.blockBytes(quantBlock)
		src := data[:nb*e.blockBytes(quantBlock)]
		if !scalesFinite(src, e, quantBlock) {
			return
		}
		want := make([]float32, nb*quantBlock)
		dequantGeneric(want, src, e, quantBlock)
		got := make([]float32, len(want))
		dequant(got, src, e, quantBlock)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v: dequant element %d = %#x, generic %#x", e, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	})
}
