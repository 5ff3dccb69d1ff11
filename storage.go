package lava

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// This file owns how the rows of a head's keys or values are stored: every
// operation that depends on the element type (append, score, weighted sums,
// L1 norms, finiteness, gather, remove, widen) is a method of rows, so the
// rest of the package never asks which type it is.

// Element is the storage type of cached keys or values.
type Element int

const (
	// Float32 stores keys and values as float32 (the default).
	Float32 Element = iota
	// Float16 stores keys and values as IEEE 754 binary16, halving the
	// cache's memory. Inputs are rounded to nearest even; kernels read the
	// half-precision data directly.
	Float16
	// Q8_0 stores each row in blocks of 32 elements (one block of its own
	// length when HeadDim is not a multiple of 32), llama.cpp's layout: a
	// float16 scale d = max|x|/127 and the integers round(x/d), halves away
	// from zero, as int8; 34 bytes per 32 elements. Every element is within
	// d/2 + |max|x| − 127·d| of its input, which is max|x|·(1/254 + 2⁻¹¹)
	// when d is a normal float16 (max|x| ≥ 127·2⁻¹⁴); smaller blocks keep
	// an absolute error below 2⁻²⁴·64.
	Q8_0
	// Q4_0 stores each row in blocks of 32 elements as Q8_0 does, with a
	// float16 scale d = m/−8, m the element of the largest magnitude, and
	// the integers clamp(round(x/d) + 8, 0, 15), two per byte (element j in
	// the low nibble of byte j, j + 16 in the high one; j + HeadDim/2 for a
	// row that is one block); 18 bytes per 32 elements. HeadDim must be
	// even. Every element is within max(|d|/2, max|x| − 7·|d|) of its
	// input: half a step, or up to one step |d| = max|x|/8 for an element
	// of the other sign than m beyond 7·|d|, which clamps.
	Q4_0
)

func (e Element) String() string {
	if e.valid() {
		return elementNames[e][0]
	}
	return enumName(int(e), "Element")
}

func (e Element) valid() bool { return e >= Float32 && e <= Q4_0 }

// elementNames are the names ElementByName accepts, in Element order: the
// String form first, then the short one engines' flags use.
var elementNames = [...][2]string{{"float32", "f32"}, {"float16", "f16"}, {"q8_0", "q8_0"}, {"q4_0", "q4_0"}}

// ElementByName returns the element type named name, in any case: float32
// or f32, float16 or f16, q8_0, q4_0.
func ElementByName(name string) (Element, error) {
	for e, n := range elementNames {
		if strings.EqualFold(name, n[0]) || strings.EqualFold(name, n[1]) {
			return Element(e), nil
		}
	}
	return 0, invalidf("element type %q, want f32, f16, q8_0 or q4_0", name)
}

// rowBytes is the bytes one row of d elements takes.
func (e Element) rowBytes(d int) int {
	switch e {
	case Float16:
		return 2 * d
	case Q8_0, Q4_0:
		bs := blockLen(d)
		return d / bs * e.blockBytes(bs)
	}
	return 4 * d
}

// rows is a sequence of rows of d elements of one element type: the keys or
// the values of one KV head. Exactly one of f32, f16 and q is in use,
// chosen by elem; q holds the blocks of a quantised type, rows of
// elem.rowBytes(d) bytes.
type rows struct {
	elem Element
	f32  []float32
	f16  []uint16
	q    []byte
}

func newRows(e Element) rows { return rows{elem: e} }

// finite tells whether no element of x is NaN or infinite.
func finite(x []float32) bool {
	for _, v := range x {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 { // exponent all ones: Inf or NaN
			return false
		}
	}
	return true
}

// raw returns the storage as it is, for View.
func (r *rows) raw() ([]float32, []uint16, []byte) { return r.f32, r.f16, r.q }

func (r *rows) clone() rows {
	return rows{elem: r.elem, f32: slices.Clone(r.f32), f16: slices.Clone(r.f16), q: slices.Clone(r.q)}
}

// capRows is how many rows of d elements the storage has room for.
func (r *rows) capRows(d int) int {
	switch {
	case r.elem == Float16:
		return cap(r.f16) / d
	case r.elem.quantised():
		return cap(r.q) / r.elem.rowBytes(d)
	}
	return cap(r.f32) / d
}

// grow makes room for t more rows of d elements: when the storage lacks
// it, it moves to a new array with room for room ≥ t more (see growBy).
func (r *rows) grow(t, room, d int) {
	switch {
	case r.elem.quantised():
		rb := r.elem.rowBytes(d)
		r.q = growBy(r.q, t*rb, room*rb)
	case r.elem == Float16:
		r.f16 = growBy(r.f16, t*d, room*d)
	default:
		r.f32 = growBy(r.f32, t*d, room*d)
	}
}

// put stores src, one row of d elements, as row i, which is past the
// storage's length and within its capacity (grow made room for it),
// converted to the storage type and checked on the way: it returns −1, or
// the index of the first element that is NaN, infinite or (for float16)
// beyond the storage's range, or whose block's scale overflows (quantised
// types). The length does not change: extend adds the rows put.
func (r *rows) put(i int, src []float32, d int) int {
	switch {
	case r.elem.quantised():
		rb := r.elem.rowBytes(d)
		return quantiseRow(r.q[i*rb:(i+1)*rb], src, r.elem)
	case r.elem == Float16:
		row := r.f16[i*d : (i+1)*d]
		narrowF16(row, src)
		// An exponent of all ones: Inf, NaN, or an input that overflowed
		// float16's range.
		if !finiteF16Row(row) {
			return slices.IndexFunc(row, func(h uint16) bool { return h&0x7c00 == 0x7c00 })
		}
		return -1
	}
	return copyFinite(r.f32[i*d:(i+1)*d], src)
}

// extend adds the t rows put past the length to the storage.
func (r *rows) extend(t, d int) {
	switch {
	case r.elem.quantised():
		r.q = r.q[:len(r.q)+t*r.elem.rowBytes(d)]
	case r.elem == Float16:
		r.f16 = r.f16[:len(r.f16)+t*d]
	default:
		r.f32 = r.f32[:len(r.f32)+t*d]
	}
}

// score sets out[i·n+j] = scale·dot(q_i, row_j) for the len(q)/d queries
// and the first n rows.
func (r *rows) score(q []float32, n, d int, scale float32, out []float32) {
	if r.elem.quantised() {
		scoreQuant(q, r.q[:n*r.elem.rowBytes(d)], r.elem, d, scale, out)
		return
	}
	if r.elem == Float16 {
		scoreBlockF16(q, r.f16[:n*d], d, scale, out)
		return
	}
	scoreBlock(q, r.f32[:n*d], d, scale, out)
}

// weightedSums sets row i of out to Σ_j p[i·n+j]·row_j over the n =
// len(p)/g rows, for the g = len(out)/d rows of out.
func (r *rows) weightedSums(p, out []float32, d int) {
	if r.elem.quantised() {
		weightedSumsQuant(p, r.q, r.elem, out, d)
		return
	}
	if r.elem == Float16 {
		weightedSumsF16(p, r.f16, out, d)
		return
	}
	weightedSums(p, r.f32, out, d)
}

// l1s sets out[i] to the L1 norm of row i of d elements, for i < len(out).
func (r *rows) l1s(out []float32, d int) {
	switch {
	case r.elem.quantised():
		l1NormsQuant(out, r.q, r.elem, d)
	case r.elem == Float16:
		for i := range out {
			out[i] = l1NormF16(r.f16[i*d : (i+1)*d])
		}
	default:
		for i := range out {
			out[i] = l1Norm(r.f32[i*d : (i+1)*d])
		}
	}
}

// appendFloat32 appends the rows of d elements, widened or dequantised to
// float32, to dst.
func (r *rows) appendFloat32(dst []float32, d int) []float32 {
	if r.elem.quantised() {
		n, m := len(dst), len(r.q)/r.elem.rowBytes(d)*d
		dst = slices.Grow(dst, m)[:n+m]
		dequant(dst[n:], r.q, r.elem, d)
		return dst
	}
	if r.elem == Float16 {
		n := len(dst)
		dst = slices.Grow(dst, len(r.f16))[:n+len(r.f16)]
		widenF16(dst[n:], r.f16)
		return dst
	}
	return append(dst, r.f32...)
}

// truncate keeps the first n rows of d elements.
func (r *rows) truncate(n, d int) {
	if r.elem.quantised() {
		r.q = r.q[:n*r.elem.rowBytes(d)]
		return
	}
	if r.elem == Float16 {
		r.f16 = r.f16[:n*d]
		return
	}
	r.f32 = r.f32[:n*d]
}

// restore sets the storage from a saved copy of raw's three slices and
// checks it holds exactly n rows of d elements of its type, all finite.
func (r *rows) restore(f32 []float32, f16 []uint16, q []byte, n, d int) error {
	r.f32, r.f16, r.q = f32, f16, q
	want := [3]int{}
	switch {
	case r.elem == Float16:
		want[1] = n * d
	case r.elem.quantised():
		want[2] = n * r.elem.rowBytes(d)
	default:
		want[0] = n * d
	}
	switch got := [3]int{len(f32), len(f16), len(q)}; {
	case got != want:
		return fmt.Errorf("%d rows of %d %v elements need %d float32, %d float16 and %d block bytes; the file has %d, %d and %d",
			n, d, r.elem, want[0], want[1], want[2], got[0], got[1], got[2])
	case copyFinite(f32, f32) >= 0 || !finiteF16Row(f16) || !scalesFinite(q, r.elem, d):
		return errors.New("a NaN or infinite element")
	}
	return nil
}

// reset empties the storage and keeps its capacity.
func (r *rows) reset() { r.f32, r.f16, r.q = r.f32[:0], r.f16[:0], r.q[:0] }

// capBytes is the bytes the storage has allocated.
func (r *rows) capBytes() int64 { return int64(4*cap(r.f32) + 2*cap(r.f16) + cap(r.q)) }

// float32s returns the rows of d elements as float32: the storage itself
// for Float32, or a widened copy.
func (r *rows) float32s(d int) []float32 {
	if r.elem != Float32 {
		return r.appendFloat32(nil, d)
	}
	return r.f32
}

// gather keeps the rows idx (strictly increasing), bit for bit: in place,
// or, with fresh, in a new array with room for size rows.
func (r *rows) gather(idx []int32, d, size int, fresh bool) {
	if r.elem.quantised() {
		rb := r.elem.rowBytes(d)
		dst := gatherDst(r.q, len(idx), rb, size, fresh)
		gatherRowsBytes(dst, r.q, idx, rb)
		r.q = dst
		return
	}
	if r.elem == Float16 {
		dst := gatherDst(r.f16, len(idx), d, size, fresh)
		gatherRowsF16(dst, r.f16, idx, d)
		r.f16 = dst
		return
	}
	dst := gatherDst(r.f32, len(idx), d, size, fresh)
	gatherRows(dst, r.f32, idx, d)
	r.f32 = dst
}

// gatherDst is where a gather of n rows of d elements from src goes: src
// itself (rows move down in place), or, with fresh, a new array with room
// for size rows.
func gatherDst[T any](src []T, n, d, size int, fresh bool) []T {
	if fresh {
		return make([]T, n*d, size*d)
	}
	return src[:n*d]
}

// gatherElems keeps the elements idx of src (positions, H2O sums), as gather does for rows.
func gatherElems[T int32 | float32](src []T, idx []int32, size int, fresh bool) []T {
	dst := gatherDst(src, len(idx), 1, size, fresh)
	gatherRowsGeneric(dst, src, idx, 1)
	return dst
}

// remove deletes rows i..i+k−1 of the first n, moving later rows down; the
// storage keeps its capacity.
func (r *rows) remove(i, k, n, d int) {
	if r.elem.quantised() {
		rb := r.elem.rowBytes(d)
		r.q = append(r.q[:i*rb], r.q[(i+k)*rb:n*rb]...)
		return
	}
	if r.elem == Float16 {
		r.f16 = append(r.f16[:i*d], r.f16[(i+k)*d:n*d]...)
		return
	}
	r.f32 = append(r.f32[:i*d], r.f32[(i+k)*d:n*d]...)
}

// growBy returns s with room for n more elements: s itself if it has it,
// or else a copy in a new array with room for exactly room ≥ n more (not
// rounded up to a size class).
func growBy[T any](s []T, n, room int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	// A make followed by a copy of its source allocates without zeroing
	// what the copy overwrites: only the room after len(s) is cleared.
	grown := make([]T, len(s)+room)
	copy(grown, s)
	return grown[:len(s)]
}

// growTo returns s with length n, reallocating only when it is too short.
func growTo[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
