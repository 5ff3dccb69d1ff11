package lava

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// Differential fuzz targets: every kernel variant this machine runs gets the
// same input and must meet the float64 oracle's bound, so asm and generic
// are checked against each other through the oracle. The seeds run as
// ordinary tests; go test -fuzz=FuzzScoreBlock explores further.

// eachKernelImpl calls f with useAsm set to each setting that can run here.
func eachKernelImpl(f func(impl string)) {
	asm := useAsm
	defer func() { useAsm = asm }()
	if asm {
		useAsm = true
		f(asmImpl)
	}
	useAsm = false
	f("generic")
}

// smallFloats turns bytes into float32s in [−8, 8): finite, so the error
// bounds are relative ones, and repeated enough to make ties and zeros.
func smallFloats(data []byte) []float32 {
	x := make([]float32, len(data))
	for i, b := range data {
		x[i] = float32(int8(b)) / 16
	}
	return x
}

// bitFloats turns every 4 bytes into a float32 bit pattern: any value,
// NaNs and infinities included.
func bitFloats(data []byte) []float32 {
	x := make([]float32, len(data)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return x
}

func FuzzScoreBlock(f *testing.F) {
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"), uint8(8), uint8(2), false)
	f.Add(make([]byte, 300), uint8(17), uint8(3), true)
	f.Add([]byte{0x80, 0x7f, 1, 2, 3, 0xff, 0x81, 9, 10, 11, 12, 13}, uint8(3), uint8(1), false)
	f.Fuzz(func(t *testing.T, data []byte, dd, qq uint8, f16 bool) {
		d := 1 + int(dd)%140
		nq := 1 + int(qq)%7
		x := smallFloats(data)
		if len(x) < nq*d {
			return
		}
		q := x[:nq*d]
		keys := x[nq*d : nq*d+(len(x)-nq*d)/d*d]
		nk := len(keys) / d
		keys16 := make([]uint16, len(keys))
		for i, v := range keys {
			keys16[i] = refNarrow(v)
		}
		key := func(i int) float64 {
			if f16 {
				return refWiden(keys16[i])
			}
			return float64(keys[i])
		}
		scale := float32(0.125)
		eachKernelImpl(func(impl string) {
			out := make([]float32, nq*nk)
			if f16 {
				scoreBlockF16(q, keys16, d, scale, out)
			} else {
				scoreBlock(q, keys, d, scale, out)
			}
			for i := range nq {
				for j := range nk {
					var s, abs float64
					for c := range d {
						p := float64(q[i*d+c]) * key(j*d+c)
						s, abs = s+p, abs+math.Abs(p)
					}
					want := float64(scale) * s
					if got := out[i*nk+j]; !within(got, want, dotBound(d, 3, float64(scale)*abs)) {
						t.Fatalf("impl=%s f16=%v d=%d: out[%d,%d] = %g, want %g", impl, f16, d, i, j, got, want)
					}
				}
			}
		})
	})
}

// expOK reports whether got is an acceptable exp(t): within expULP of the
// float64 exp, +Inf where exp(t) is within expULP of overflowing, NaN for a
// NaN t.
func expOK(got, t float32) bool {
	if t != t {
		return got != got
	}
	want := math.Exp(float64(t))
	if math.IsInf(float64(got), 1) {
		return want >= math.MaxFloat32*(1-expULP*0x1p-23)
	}
	if math.IsInf(float64(float32(want)), 1) {
		return want <= math.MaxFloat32*(1+expULP*0x1p-23) && ulpDiff(got, math.MaxFloat32) <= expULP
	}
	return ulpDiff(got, want) <= expULP
}

func FuzzExpSub(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 128, 255, 0, 0, 192, 127}, uint32(0))
	f.Add(make([]byte, 64), math.Float32bits(-90))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36}, math.Float32bits(1e-3))
	f.Fuzz(func(t *testing.T, data []byte, mb uint32) {
		in := bitFloats(data)
		m := math.Float32frombits(mb)
		eachKernelImpl(func(impl string) {
			x := append([]float32(nil), in...)
			sum := expSub(x, m)
			var ref, abs float64
			finite := true
			for i, v := range x {
				if tt := in[i] - m; !expOK(v, tt) {
					t.Fatalf("impl=%s: exp(%g − %g) = %g, want %g", impl, in[i], m, v, math.Exp(float64(tt)))
				}
				finite = finite && !math.IsInf(float64(v), 0) && v == v
				ref, abs = ref+float64(v), abs+math.Abs(float64(v))
			}
			if finite && ref < math.MaxFloat32/2 && !within(sum, ref, dotBound(len(x), 1, abs)) {
				t.Fatalf("impl=%s: sum = %g, want %g", impl, sum, ref)
			}
		})
	})
}

func FuzzNarrowF16(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x33, 1, 0, 0x80, 0x33, 0, 0xf0, 0x7f, 0x47, 0xff, 0xff, 0x7f, 0x7f})
	f.Add(make([]byte, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bitFloats(data)
		eachKernelImpl(func(impl string) {
			dst := make([]uint16, len(src))
			narrowF16(dst, src)
			for i, v := range src {
				if want := refNarrow(v); dst[i] != want {
					t.Fatalf("impl=%s: narrowF16(%#08x) = %#04x, want %#04x", impl, math.Float32bits(v), dst[i], want)
				}
			}
		})
	})
}

func FuzzWeightedSum(f *testing.F) {
	f.Add([]byte("weights and values: any bytes make finite float32s here"), uint8(8), uint8(3), false)
	f.Add(make([]byte, 500), uint8(70), uint8(4), true)
	f.Fuzz(func(t *testing.T, data []byte, dd, nn uint8, f16 bool) {
		d := 1 + int(dd)%140
		n := int(nn) % 20
		x := smallFloats(data)
		if len(x) < n*(d+1) {
			return
		}
		p, vals := x[:n], x[n:n+n*d]
		vals16 := make([]uint16, len(vals))
		for i, v := range vals {
			vals16[i] = refNarrow(v)
		}
		eachKernelImpl(func(impl string) {
			out := make([]float32, d)
			if f16 {
				weightedSumsF16(p, vals16, out, len(out))
			} else {
				weightedSums(p, vals, out, len(out))
			}
			for c := range d {
				var s, abs float64
				for i := range n {
					v := float64(vals[i*d+c])
					if f16 {
						v = refWiden(vals16[i*d+c])
					}
					s, abs = s+float64(p[i])*v, abs+math.Abs(float64(p[i])*v)
				}
				if !within(out[c], s, dotBound(n, 1, abs)) {
					t.Fatalf("impl=%s f16=%v d=%d n=%d: out[%d] = %g, want %g", impl, f16, d, n, c, out[c], s)
				}
			}
		})
	})
}

// FuzzWeightedSums checks the grouped weighted sum of g query heads over
// shared values: the group size picks the kernel split, d the column blocks.
func FuzzWeightedSums(f *testing.F) {
	f.Add([]byte("grouped-query attention: g weight rows, one pass over the values of the head"), uint8(16), uint8(3), uint8(2), false)
	f.Add(make([]byte, 900), uint8(40), uint8(4), uint8(5), true)
	f.Add([]byte{0x80, 0x7f, 1, 2, 3, 0xff, 0x81, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, uint8(8), uint8(1), uint8(7), false)
	f.Fuzz(func(t *testing.T, data []byte, dd, nn, gg uint8, f16 bool) {
		d := 1 + int(dd)%140
		n := int(nn) % 20
		g := 1 + int(gg)%9
		x := smallFloats(data)
		if len(x) < g*n+n*d {
			return
		}
		p, vals := x[:g*n], x[g*n:g*n+n*d]
		vals16 := make([]uint16, len(vals))
		for i, v := range vals {
			vals16[i] = refNarrow(v)
		}
		eachKernelImpl(func(impl string) {
			out := make([]float32, g*d)
			if f16 {
				weightedSumsF16(p, vals16, out, d)
			} else {
				weightedSums(p, vals, out, d)
			}
			for i := range g {
				for c := range d {
					var s, abs float64
					for j := range n {
						v := float64(vals[j*d+c])
						if f16 {
							v = refWiden(vals16[j*d+c])
						}
						w := float64(p[i*n+j])
						s, abs = s+w*v, abs+math.Abs(w*v)
					}
					if !within(out[i*d+c], s, dotBound(n, 1, abs)) {
						t.Fatalf("impl=%s f16=%v g=%d d=%d n=%d: out[%d·d+%d] = %g, want %g", impl, f16, g, d, n, i, c, out[i*d+c], s)
					}
				}
			}
		})
	})
}

// FuzzCopyFinite copies arbitrary float32 bit patterns, starting off
// elements into the data so that the vectors fall anywhere, and checks the
// copy and the index of the first NaN or infinity against math's
// predicates; FuzzFiniteF16Row checks float16 rows the same way.
func FuzzCopyFinite(f *testing.F) {
	f.Add([]byte("any bytes: every 4 make a float32, NaNs and infinities included......"), uint8(0))
	f.Add(append(make([]byte, 128), 0, 0, 0x80, 0x7f), uint8(3))
	f.Add(append(make([]byte, 60), 0xff, 0xff, 0x7f, 0x7f, 1, 0, 0xc0, 0xff), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, off uint8) {
		x := bitFloats(data)
		src := x[min(int(off%8), len(x)):]
		want := slices.IndexFunc(src, refNonFinite)
		eachKernelImpl(func(impl string) {
			dst := make([]float32, len(src)+1)
			dst[len(src)] = canaryF32
			if got := copyFinite(dst[:len(src)], src); got != want {
				t.Fatalf("impl=%s n=%d: copyFinite = %d, want %d", impl, len(src), got, want)
			}
			for i, v := range src {
				if math.Float32bits(dst[i]) != math.Float32bits(v) {
					t.Fatalf("impl=%s: dst[%d] = %#08x, want %#08x", impl, i, math.Float32bits(dst[i]), math.Float32bits(v))
				}
			}
			if math.Float32bits(dst[len(src)]) != math.Float32bits(canaryF32) {
				t.Fatalf("impl=%s n=%d: copyFinite wrote past dst", impl, len(src))
			}
		})
	})
}

func FuzzFiniteF16Row(f *testing.F) {
	f.Add([]byte("float16 rows: two bytes an element, 0x7c00 and up are not finite"), uint8(0))
	f.Add(append(make([]byte, 64), 0x00, 0x7c), uint8(5))
	f.Add(append(make([]byte, 30), 0xff, 0x7b, 0xff, 0xfb), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, off uint8) {
		h := make([]uint16, len(data)/2)
		for i := range h {
			h[i] = binary.LittleEndian.Uint16(data[2*i:])
		}
		row := h[min(int(off%8), len(h)):]
		want := !slices.ContainsFunc(row, refNonFiniteF16)
		eachKernelImpl(func(impl string) {
			if got := finiteF16Row(row); got != want {
				t.Fatalf("impl=%s n=%d: finiteF16Row = %v, want %v", impl, len(row), got, want)
			}
		})
	})
}
