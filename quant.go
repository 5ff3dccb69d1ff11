package lava

import (
	"encoding/binary"
	"math"
)

// This file owns the block-quantised formats Q8_0 and Q4_0 (spec §12,
// llama.cpp's layouts): how a row is cut into blocks, how a block is
// quantised and dequantised, and the kernels over quantised rows, which
// dequantise a tile of rows at a time into an L1-resident float32 buffer and
// run the float32 kernels on it. Dequantisation is exact in float32 (a
// float16 scale times an integer of at most 8 bits needs at most 19
// significant bits), so every kernel over quantised rows gives exactly the
// bits of the same kernel over the dequantised rows, and the eviction
// decision sees what decoding sees.

// quantBlock is the number of elements of a block when a row's length is a
// multiple of it; any other row is one block of its own length.
const quantBlock = 32

// quantTile is the float32 elements of the buffer the kernels dequantise a
// tile of keys into: 16 KiB, the block of keys the float32 score kernel
// keeps in L1 while every query passes over it. It bounds HeadDim for
// quantised storage. Values are dequantised quantValueTile elements at a
// time, the 6 KiB blocks the weighted-sum kernels measured fastest with.
const (
	quantTile      = 4096
	quantValueTile = 1536
)

// blockLen is the elements per block of a row of d elements.
func blockLen(d int) int {
	if d%quantBlock == 0 {
		return quantBlock
	}
	return d
}

// quantised tells whether e stores blocks of integers with a scale.
func (e Element) quantised() bool { return e == Q8_0 || e == Q4_0 }

// blockBytes is the bytes of one block of bs elements: a float16 scale and
// bs 8-bit or 4-bit integers.
func (e Element) blockBytes(bs int) int {
	if e == Q4_0 {
		return 2 + bs/2
	}
	return 2 + bs
}

// quantiseRow writes the blocks of src (one row) to dst, which has
// e.rowBytes(len(src)) bytes. It returns −1, or the index of an element
// that cannot be stored: NaN, infinite, or so large that its block's scale
// overflows float16 (|x| > 65504·127 for Q8_0, 65504·8 for Q4_0).
func quantiseRow(dst []byte, src []float32, e Element) int {
	if i := firstNonFinite(src); i >= 0 {
		return i
	}
	bs := blockLen(len(src))
	bb := e.blockBytes(bs)
	for b := 0; b < len(src); b += bs {
		x, out := src[b:b+bs], dst[b/bs*bb:(b/bs+1)*bb]
		var ok bool
		if e == Q4_0 {
			ok = quantiseQ4(out, x)
		} else {
			ok = quantiseQ8(out, x)
		}
		if !ok {
			return b + largest(x)
		}
	}
	return -1
}

// largest returns the index of the first element of x of the largest
// magnitude.
func largest(x []float32) int {
	m, at := float32(-1), 0
	for i, v := range x {
		if a := abs32(v); a > m {
			m, at = a, i
		}
	}
	return at
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// quantiseQ8 stores x as the scale d = max|x|/127, rounded to float16, and
// the integers round(x_i/d) (halves away from zero) clamped to ±127,
// dividing by the stored scale so that each element is within half a step
// of its input. It reports false if the scale overflows float16.
func quantiseQ8(dst []byte, x []float32) bool {
	h := f32ToF16(abs32(x[largest(x)]) / 127)
	if h&expF16 == expF16 {
		return false
	}
	binary.LittleEndian.PutUint16(dst, h)
	d := f16ToF32(h)
	for i, v := range x {
		dst[2+i] = byte(int8(roundClamp(v, d, -127, 127)))
	}
	return true
}

// quantiseQ4 stores x as the scale d = m/−8, rounded to float16, where m is
// the element of the largest magnitude (the first, on ties), and the
// integers clamp(round(x_i/d) + 8, 0, 15), element i in the low nibble of
// byte i and element i + len(x)/2 in the high nibble. It reports false if
// the scale overflows float16.
func quantiseQ4(dst []byte, x []float32) bool {
	h := f32ToF16(x[largest(x)] / -8)
	if h&expF16 == expF16 {
		return false
	}
	binary.LittleEndian.PutUint16(dst, h)
	d := f16ToF32(h)
	half := len(x) / 2
	for i := range half {
		lo := roundClamp(x[i], d, -8, 7) + 8
		hi := roundClamp(x[i+half], d, -8, 7) + 8
		dst[2+i] = byte(lo | hi<<4)
	}
	return true
}

// roundClamp returns x/d rounded to the nearest integer, halves away from
// zero, clamped to [lo, hi]; 0 for a zero scale (every element of the block
// is then below float16's smallest scale step, and is stored as zero).
func roundClamp(x, d float32, lo, hi int32) int32 {
	if d == 0 {
		return 0
	}
	r := math.Round(float64(x / d))
	return int32(max(float64(lo), min(float64(hi), r)))
}

// dequantGeneric sets dst to the values of the rows of d elements stored in
// src: scale × integer, exactly.
func dequantGeneric(dst []float32, src []byte, e Element, d int) {
	bs := blockLen(d)
	bb := e.blockBytes(bs)
	for b := 0; b*bb < len(src); b++ {
		blk, out := src[b*bb:(b+1)*bb], dst[b*bs:(b+1)*bs]
		s := f16ToF32(binary.LittleEndian.Uint16(blk))
		if e == Q4_0 {
			half := bs / 2
			for i, q := range blk[2:] {
				out[i] = s * float32(int32(q&15)-8)
				out[i+half] = s * float32(int32(q>>4)-8)
			}
			continue
		}
		for i, q := range blk[2:] {
			out[i] = s * float32(int8(q))
		}
	}
}

// scalesFinite tells whether no block scale of the rows in src has an
// exponent of all ones: what restore checks of saved blocks (every integer
// is a valid value).
func scalesFinite(src []byte, e Element, d int) bool {
	bb := e.blockBytes(blockLen(d))
	for b := 0; b+bb <= len(src); b += bb {
		if binary.LittleEndian.Uint16(src[b:])&expF16 == expF16 {
			return false
		}
	}
	return true
}

// scoreQuant is scoreBlock over quantised keys (rows of e.rowBytes(d)
// bytes): a few queries on the fused kernels, each key dequantised in
// registers; many queries per tile of keys, dequantised once for all.
func scoreQuant(q []float32, keys []byte, e Element, d int, scale float32, out []float32) {
	if !scoreQuantFused(q, keys, e, d, scale, out) {
		scoreQuantTiles(q, keys, e, d, scale, out)
	}
}

// scoreQuantTiles is scoreQuant per tile of keys: dequantise, then score
// every query against the tile. The tile is its own function's, so that the
// fused path does not clear it.
func scoreQuantTiles(q []float32, keys []byte, e Element, d int, scale float32, out []float32) {
	rb := e.rowBytes(d)
	nk := len(keys) / rb
	var tile [quantTile]float32
	kt := max(1, quantTile/d)
	for j := 0; j < nk; j += kt {
		m := min(kt, nk-j)
		dequant(tile[:m*d], keys[j*rb:(j+m)*rb], e, d)
		scoreBlockLD(q, tile[:m*d], d, scale, out[j:], nk)
	}
}

// weightedSumsQuant is weightedSums over quantised values: on the fused
// kernels where they apply, otherwise per tile of rows.
func weightedSumsQuant(p []float32, vals []byte, e Element, out []float32, d int) {
	if d > 0 && len(out) >= d && !weightedSumsQuantFused(p, vals, e, out, d) {
		weightedSumsQuantTiles(p, vals, e, out, d)
	}
}

// weightedSumsQuantTiles is weightedSumsQuant per tile of rows: dequantise,
// then add the tile's share of every output row.
func weightedSumsQuantTiles(p []float32, vals []byte, e Element, out []float32, d int) {
	g := len(out) / d
	n := len(p) / g
	out = out[:g*d]
	clear(out)
	rb := e.rowBytes(d)
	var tile [quantTile]float32
	rows := max(1, quantValueTile/d)
	for j := 0; j < n; j += rows {
		m := min(rows, n-j)
		dequant(tile[:m*d], vals[j*rb:(j+m)*rb], e, d)
		weightedSumsAdd(p[j:], n, tile[:m*d], out, d)
	}
}

// l1NormsQuant sets out[i] to the L1 norm of quantised row i of src, for
// i < len(out), dequantising a tile of rows at a time (one clear of the
// tile per call, not per row).
func l1NormsQuant(out []float32, src []byte, e Element, d int) {
	rb := e.rowBytes(d)
	var tile [quantTile]float32
	rows := max(1, quantTile/d)
	for j := 0; j < len(out); j += rows {
		m := min(rows, len(out)-j)
		dequant(tile[:m*d], src[j*rb:(j+m)*rb], e, d)
		for i := range m {
			out[j+i] = l1Norm(tile[i*d : (i+1)*d])
		}
	}
}
