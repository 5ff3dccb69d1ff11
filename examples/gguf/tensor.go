package gguf

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// TensorType is a ggml tensor data type.
type TensorType uint32

// The tensor types this package reads. Others are recognised by name in
// errors only.
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q8_0 TensorType = 8
	BF16 TensorType = 30
)

// ggmlTypeNames names the ggml types, so that an unsupported tensor's error
// says which type it has.
var ggmlTypeNames = map[TensorType]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
	10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
	22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
	29: "IQ1_M", 30: "BF16",
}

func (t TensorType) String() string {
	if s, ok := ggmlTypeNames[t]; ok {
		return fmt.Sprintf("%s (%d)", s, uint32(t))
	}
	return fmt.Sprintf("unknown ggml type %d", uint32(t))
}

func (t TensorType) supported() bool { return t == F32 || t == F16 || t == BF16 || t == Q8_0 }

// q8Block is the number of weights in a Q8_0 block, which stores a float16
// scale followed by that many int8 quants.
const q8Block = 32

// blockSize is the number of elements of one storage block.
func (t TensorType) blockSize() int {
	if t == Q8_0 {
		return q8Block
	}
	return 1
}

// blockBytes is the size in bytes of one storage block.
func (t TensorType) blockBytes() int {
	switch t {
	case F32:
		return 4
	case Q8_0:
		return 2 + q8Block
	}
	return 2 // F16, BF16
}

// chunkBlocks is how many storage blocks ReadTensor reads at a time: the
// scratch stays small whatever the tensor's size.
const chunkBlocks = 4096

// ReadTensor reads the named tensor's data and returns it as float32,
// dequantising F16, BF16 and Q8_0. Element i is at offset
// i = i0 + Dims[0]·(i1 + Dims[1]·…).
func (f *File) ReadTensor(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: tensor %q is missing", name)
	}
	// readHeader checked that the data lies in the file, so the sizes fit
	// in an int on 64-bit platforms; check anyway for 32-bit ones.
	n := t.Elements()
	if n > math.MaxInt/4 || t.Size > math.MaxInt {
		return nil, fmt.Errorf("gguf: tensor %q has %d elements, too many for this platform", name, n)
	}
	out := make([]float32, n)
	bs, bb := t.Type.blockSize(), t.Type.blockBytes()
	buf := make([]byte, min(int(t.Size), chunkBlocks*bb))
	off := f.DataOffset + int64(t.Offset)
	for done := 0; done < len(out); {
		b := buf[:min(len(buf), (len(out)-done)/bs*bb)]
		// ReaderAt may report io.EOF along with a full read at the end.
		if n, err := f.r.ReadAt(b, off); err != nil && !(err == io.EOF && n == len(b)) {
			return nil, fmt.Errorf("gguf: reading tensor %q at offset %d: %w", name, off, err)
		}
		off += int64(len(b))
		done += dequantize(t.Type, out[done:], b)
	}
	return out, nil
}

// dequantize converts the whole blocks in src to float32 in dst and returns
// the number of elements written.
func dequantize(t TensorType, dst []float32, src []byte) int {
	switch t {
	case F32:
		n := len(src) / 4
		for i := range n {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
		return n
	case F16:
		n := len(src) / 2
		for i := range n {
			dst[i] = HalfToFloat(binary.LittleEndian.Uint16(src[2*i:]))
		}
		return n
	case BF16:
		n := len(src) / 2
		for i := range n {
			// bfloat16 is the top half of a float32.
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
		return n
	case Q8_0:
		blocks := len(src) / (2 + q8Block)
		for b := range blocks {
			blk := src[b*(2+q8Block):]
			d := HalfToFloat(binary.LittleEndian.Uint16(blk))
			out := dst[b*q8Block : (b+1)*q8Block]
			for i, q := range blk[2 : 2+q8Block] {
				out[i] = d * float32(int8(q))
			}
		}
		return blocks * q8Block
	}
	panic("gguf: dequantize of unchecked type " + t.String())
}

// HalfToFloat widens an IEEE 754 binary16 bit pattern to float32 exactly,
// subnormals, infinities and NaNs included.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		// Rebias the exponent from 15 to 127.
		return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
	}
	// Zero or subnormal: man·2⁻²⁴, exact in float32.
	f := float32(man) / (1 << 24)
	return math.Float32frombits(sign | math.Float32bits(f))
}
