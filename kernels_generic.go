package lava

import "math"

// Reference kernels in plain Go. They define what every assembly kernel must
// compute and are the fallback on platforms without one. Callers validate
// lengths; the kernels trust them.

// scoreBlockGeneric sets out[i·ld+j] = scale·dot(q_i, k_j) for the nq =
// len(q)/d query rows q_i and the nk = len(keys)/d ≤ ld key rows k_j.
func scoreBlockGeneric(q, keys []float32, d int, scale float32, out []float32, ld int) {
	nk := len(keys) / d
	for i := 0; i+d <= len(q); i += d {
		qi := q[i : i+d]
		row := out[(i/d)*ld : (i/d)*ld+nk]
		for j := range row {
			row[j] = scale * dotGeneric(qi, keys[j*d:(j+1)*d])
		}
	}
}

// scoreBlockF16Generic is scoreBlockGeneric over float16 keys.
func scoreBlockF16Generic(q []float32, keys []uint16, d int, scale float32, out []float32) {
	nk := len(keys) / d
	for i := 0; i+d <= len(q); i += d {
		qi := q[i : i+d]
		row := out[(i/d)*nk : (i/d+1)*nk]
		for j := range row {
			k := keys[j*d : (j+1)*d]
			var s float32
			for t, x := range qi {
				s += x * f16ToF32(k[t])
			}
			row[j] = scale * s
		}
	}
}

func dotGeneric(a, b []float32) float32 {
	var s float32
	for i, x := range a {
		s += x * b[i]
	}
	return s
}

// maxGeneric returns the largest element of x, or −Inf for an empty x.
func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

// expSubGeneric replaces x[i] with exp(x[i] − m) and returns their sum: the
// numerator and denominator of a softmax whose maximum is m.
func expSubGeneric(x []float32, m float32) float32 {
	var s float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		s += e
	}
	return s
}

// axpyGeneric adds a·x to y.
func axpyGeneric(a float32, x, y []float32) {
	for i, v := range x {
		y[i] += a * v
	}
}

// weightedSumGeneric sets out = Σ_i p[i]·row_i over the len(p) rows of
// length d = len(out) in vals.
func weightedSumGeneric(p, vals, out []float32) {
	d := len(out)
	clear(out)
	for i, w := range p {
		axpyGeneric(w, vals[i*d:(i+1)*d], out)
	}
}

// weightedSumF16Generic is weightedSumGeneric over float16 values.
func weightedSumF16Generic(p []float32, vals []uint16, out []float32) {
	d := len(out)
	clear(out)
	for i, w := range p {
		row := vals[i*d : (i+1)*d]
		for t, v := range row {
			out[t] += w * f16ToF32(v)
		}
	}
}

// weightedSumsGeneric sets row i of out to Σ_j p[i·n+j]·row_j of vals, for
// the g = len(out)/d rows of out and n = len(p)/g value rows of d elements:
// the weighted sums of g query heads that share one KV head. With no output
// row (d ≤ 0 or len(out) < d) it does nothing.
func weightedSumsGeneric(p, vals, out []float32, d int) { weightedSumsOf(p, vals, out, d) }

// weightedSumsAddGeneric adds to each of the g = len(out)/d rows i of out
// Σ_j p[i·pn+j]·row_j over the len(vals)/d rows of vals, as
// weightedSumGeneric does for one row.
func weightedSumsAddGeneric(p []float32, pn int, vals, out []float32, d int) {
	if d <= 0 || len(out) < d {
		return
	}
	for i := range len(out) / d {
		o := out[i*d : (i+1)*d]
		for j := range len(vals) / d {
			axpyGeneric(p[i*pn+j], vals[j*d:(j+1)*d], o)
		}
	}
}

// weightedSumsF16Generic is weightedSumsGeneric over float16 values.
func weightedSumsF16Generic(p []float32, vals []uint16, out []float32, d int) {
	weightedSumsOf(p, vals, out, d)
}

// weightedSumsOf is the group split of both: one weighted sum per output
// row, the element type chosen once per row.
func weightedSumsOf[T float32 | uint16](p []float32, vals []T, out []float32, d int) {
	if d <= 0 || len(out) < d {
		return
	}
	g := len(out) / d
	n := len(p) / g
	for i := range g {
		switch v := any(vals).(type) {
		case []float32:
			weightedSumGeneric(p[i*n:(i+1)*n], v, out[i*d:(i+1)*d])
		case []uint16:
			weightedSumF16Generic(p[i*n:(i+1)*n], v, out[i*d:(i+1)*d])
		}
	}
}

// l1NormGeneric returns Σ|x_i|.
func l1NormGeneric(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += float32(math.Abs(float64(v)))
	}
	return s
}

// l1NormF16Generic is l1NormGeneric over float16 data.
func l1NormF16Generic(x []uint16) float32 {
	var s float32
	for _, v := range x {
		s += float32(math.Abs(float64(f16ToF32(v))))
	}
	return s
}

// gatherRowsGeneric copies row idx[r] of src to row r of dst, rows of d
// elements. dst may be src itself when idx is strictly increasing (the
// compaction Compress does): row r is then never read after it is written.
func gatherRowsGeneric[T float32 | uint16 | int32 | uint8](dst, src []T, idx []int32, d int) {
	for r, i := range idx {
		copy(dst[r*d:(r+1)*d], src[int(i)*d:int(i+1)*d])
	}
}

// widenF16Generic converts float16 bit patterns to float32, exactly.
func widenF16Generic(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = f16ToF32(h)
	}
}

// narrowF16Generic converts float32 to float16 bit patterns, rounding to
// nearest even.
func narrowF16Generic(dst []uint16, src []float32) {
	for i, f := range src {
		dst[i] = f32ToF16(f)
	}
}

// f16ToF32 widens an IEEE binary16 bit pattern exactly, including
// subnormals, infinities and NaNs (the payload is kept, quieted).
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		if man != 0 {
			return math.Float32frombits(sign | 0x7fc00000 | man<<13)
		}
		return math.Float32frombits(sign | 0x7f800000)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: value = man·2⁻²⁴, exact in float32.
	f := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}

// f32ToF16 rounds a float32 to the nearest binary16 (ties to even),
// overflowing to ±Inf and keeping NaNs NaN.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff { // Inf or NaN
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal or zero in binary16: shift the full significand
		// (implicit bit included) right and round to nearest even.
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := m >> shift
		rem := m & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, up to Inf: correct
	}
	return sign | uint16(r)
}

// The finiteness checks of Append. An exponent of all ones (Inf or NaN)
// carries into the sign bit when its lowest bit is added, so a check only
// masks, adds and ors, and the accumulator's top bit says whether some
// element was not finite; the index of the first one is found afterwards
// by a scalar scan.
const (
	expF32, expOneF32 = 0x7f800000, 0x00800000
	expF16, expOneF16 = 0x7c00, 0x0400
)

// copyFiniteGeneric copies src to dst, which must be at least as long, and
// returns −1, or the index of the first NaN or infinite element.
func copyFiniteGeneric(dst, src []float32) int {
	if copyCheckGeneric(dst, src)&(1<<31) == 0 {
		return -1
	}
	return firstNonFinite(src)
}

// copyCheckGeneric copies src to dst and returns an accumulator whose top
// bit is set iff some element of src has an exponent of all ones. The check
// reads src right after the copy, while it is in L1, four lanes at a time.
func copyCheckGeneric(dst, src []float32) uint32 {
	copy(dst[:len(src)], src)
	var a0, a1, a2, a3 uint32
	i := 0
	for ; i+4 <= len(src); i += 4 {
		x := src[i : i+4 : i+4]
		a0 |= math.Float32bits(x[0])&expF32 + expOneF32
		a1 |= math.Float32bits(x[1])&expF32 + expOneF32
		a2 |= math.Float32bits(x[2])&expF32 + expOneF32
		a3 |= math.Float32bits(x[3])&expF32 + expOneF32
	}
	for ; i < len(src); i++ {
		a0 |= math.Float32bits(src[i])&expF32 + expOneF32
	}
	return a0 | a1 | a2 | a3
}

// firstNonFinite returns the index of the first NaN or infinite element of
// x, or −1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.Float32bits(v)&expF32 == expF32 {
			return i
		}
	}
	return -1
}

// finiteF16RowGeneric tells whether no element of a float16 row has an
// exponent of all ones (Inf, NaN, or an input that overflowed).
func finiteF16RowGeneric(row []uint16) bool {
	return checkF16Generic(row)&0x8000 == 0
}

// checkF16Generic returns an accumulator whose top bit is set iff some
// element of x has an exponent of all ones, four lanes at a time.
func checkF16Generic(x []uint16) uint16 {
	var a0, a1, a2, a3 uint16
	i := 0
	for ; i+4 <= len(x); i += 4 {
		h := x[i : i+4 : i+4]
		a0 |= h[0]&expF16 + expOneF16
		a1 |= h[1]&expF16 + expOneF16
		a2 |= h[2]&expF16 + expOneF16
		a3 |= h[3]&expF16 + expOneF16
	}
	for ; i < len(x); i++ {
		a0 |= x[i]&expF16 + expOneF16
	}
	return a0 | a1 | a2 | a3
}
