// Package ggufwrite writes GGUF v3 files, so that tests can build models and
// malformed files of their own: the same weights stored as F16, BF16 or
// Q8_0, or headers that lie.
package ggufwrite

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/lavakv/lava/examples/gguf"
)

// Tensor is one tensor to write. Data is quantised to Type on writing;
// Raw, when non-nil, is written as the data instead, verbatim, with Type
// taken as is (for unsupported types and corrupt sizes).
type Tensor struct {
	Name string
	Dims []uint64
	Type gguf.TensorType
	Data []float32
	Raw  []byte
}

// KV is one metadata entry. Value is a Go value of a type gguf.Value.Raw
// returns (uint8 … float64, bool, string, or a gguf.Array), which gives
// the value type written.
type KV struct {
	Key   string
	Value any
}

// File is everything Bytes needs.
type File struct {
	Version   uint32 // 0 means 3
	Metadata  []KV
	Tensors   []Tensor
	Alignment uint64 // 0 means the general.alignment value, else 32
}

// Bytes returns the encoded file.
func (f *File) Bytes() ([]byte, error) {
	e := &enc{}
	e.raw([]byte(gguf.Magic))
	v := f.Version
	if v == 0 {
		v = 3
	}
	e.u32(v)
	e.u64(uint64(len(f.Tensors)))
	e.u64(uint64(len(f.Metadata)))
	align := f.Alignment
	for _, kv := range f.Metadata {
		var val enc
		t, err := val.value(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", kv.Key, err)
		}
		e.str(kv.Key)
		e.u32(uint32(t))
		e.raw(val.b.Bytes())
		if a, ok := kv.Value.(uint32); ok && kv.Key == "general.alignment" && align == 0 {
			align = uint64(a)
		}
	}
	if align == 0 {
		align = gguf.DefaultAlignment
	}
	data := make([][]byte, len(f.Tensors))
	var off uint64
	for i, t := range f.Tensors {
		d := t.Raw
		if d == nil {
			var err error
			if d, err = quantize(t.Type, t.Data); err != nil {
				return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
		data[i] = d
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, n := range t.Dims {
			e.u64(n)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off = pad(off+uint64(len(d)), align)
	}
	e.raw(make([]byte, pad(uint64(e.b.Len()), align)-uint64(e.b.Len())))
	for _, d := range data {
		e.raw(d)
		e.raw(make([]byte, pad(uint64(len(d)), align)-uint64(len(d))))
	}
	return e.b.Bytes(), nil
}

func pad(n, align uint64) uint64 { return (n + align - 1) / align * align }

type enc struct{ b bytes.Buffer }

func (e *enc) raw(p []byte) { e.b.Write(p) }
func (e *enc) u16(x uint16) { e.b.Write(binary.LittleEndian.AppendUint16(nil, x)) }
func (e *enc) u32(x uint32) { e.b.Write(binary.LittleEndian.AppendUint32(nil, x)) }
func (e *enc) u64(x uint64) { e.b.Write(binary.LittleEndian.AppendUint64(nil, x)) }
func (e *enc) str(s string) { e.u64(uint64(len(s))); e.b.WriteString(s) }

// value encodes x and returns its value type.
func (e *enc) value(x any) (gguf.Type, error) {
	switch x := x.(type) {
	case uint8:
		e.b.WriteByte(x)
		return gguf.TypeUint8, nil
	case int8:
		e.b.WriteByte(byte(x))
		return gguf.TypeInt8, nil
	case uint16:
		e.u16(x)
		return gguf.TypeUint16, nil
	case int16:
		e.u16(uint16(x))
		return gguf.TypeInt16, nil
	case uint32:
		e.u32(x)
		return gguf.TypeUint32, nil
	case int32:
		e.u32(uint32(x))
		return gguf.TypeInt32, nil
	case float32:
		e.u32(math.Float32bits(x))
		return gguf.TypeFloat32, nil
	case bool:
		if x {
			e.b.WriteByte(1)
		} else {
			e.b.WriteByte(0)
		}
		return gguf.TypeBool, nil
	case string:
		e.str(x)
		return gguf.TypeString, nil
	case uint64:
		e.u64(x)
		return gguf.TypeUint64, nil
	case int64:
		e.u64(uint64(x))
		return gguf.TypeInt64, nil
	case float64:
		e.u64(math.Float64bits(x))
		return gguf.TypeFloat64, nil
	case gguf.Array:
		e.u32(uint32(x.Elem))
		e.u64(uint64(x.Len()))
		return gguf.TypeArray, e.array(x.Values)
	}
	return 0, fmt.Errorf("cannot encode %T", x)
}

func (e *enc) array(vals any) error {
	switch s := vals.(type) {
	case []uint8:
		return each(e, s)
	case []int8:
		return each(e, s)
	case []uint16:
		return each(e, s)
	case []int16:
		return each(e, s)
	case []uint32:
		return each(e, s)
	case []int32:
		return each(e, s)
	case []float32:
		return each(e, s)
	case []bool:
		return each(e, s)
	case []string:
		return each(e, s)
	case []uint64:
		return each(e, s)
	case []int64:
		return each(e, s)
	case []float64:
		return each(e, s)
	case []gguf.Array:
		return each(e, s)
	}
	return fmt.Errorf("cannot encode an array of %T", vals)
}

func each[T any](e *enc, s []T) error {
	for _, x := range s {
		if _, err := e.value(x); err != nil {
			return err
		}
	}
	return nil
}

// quantize encodes data as tensor type t: F32 exactly, F16 and BF16 rounded
// to nearest even, Q8_0 as ggml's reference quantiser does (per block of
// 32: scale d = max|x|/127 stored as F16, quants round(x/d)).
func quantize(t gguf.TensorType, data []float32) ([]byte, error) {
	var out []byte
	switch t {
	case gguf.F32:
		for _, x := range data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
		}
	case gguf.F16:
		for _, x := range data {
			out = binary.LittleEndian.AppendUint16(out, floatToHalf(x))
		}
	case gguf.BF16:
		for _, x := range data {
			out = binary.LittleEndian.AppendUint16(out, floatToBF16(x))
		}
	case gguf.Q8_0:
		if len(data)%32 != 0 {
			return nil, fmt.Errorf("Q8_0 needs a multiple of 32 values, have %d", len(data))
		}
		for b := 0; b < len(data); b += 32 {
			blk := data[b : b+32]
			var amax float32
			for _, x := range blk {
				amax = max(amax, float32(math.Abs(float64(x))))
			}
			d := amax / 127
			var id float32
			if d != 0 {
				id = 1 / d
			}
			out = binary.LittleEndian.AppendUint16(out, floatToHalf(d))
			for _, x := range blk {
				out = append(out, byte(int8(math.Round(float64(x*id)))))
			}
		}
	default:
		return nil, fmt.Errorf("cannot quantise to %v", t)
	}
	return out, nil
}

// floatToHalf rounds a float32 to the nearest IEEE binary16, ties to even,
// overflowing to ±Inf.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 // quiet NaN
		}
		return sign | 0x7c00
	}
	// Express |f| as an integer significand sig·2^e with the implicit bit,
	// then shift it to binary16's resolution at that magnitude.
	sig := man
	e := exp - 127
	if exp != 0 {
		sig |= 1 << 23
	} else {
		e = -126
	}
	// binary16 keeps 10 fraction bits for normal numbers (e ≥ −14) and a
	// fixed quantum of 2⁻²⁴ below.
	shift := 13
	if e < -14 {
		shift += -14 - e
	}
	if shift > 24 {
		return sign // far below half the smallest subnormal
	}
	half := uint32(1) << (shift - 1)
	r := sig >> shift
	rem := sig & (1<<shift - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	// r is the significand at the quantum of exponent max(e, −14); a carry
	// into bit 11 (or bit 10 for subnormals) moves to the next binade,
	// which adding the biased exponent handles.
	var h uint32
	if e < -14 {
		h = r // subnormal (a carry makes it the smallest normal)
	} else {
		h = uint32(e+14)<<10 + r // r includes the implicit bit 1<<10
	}
	if h >= 0x7c00 {
		return sign | 0x7c00
	}
	return sign | uint16(h)
}

// floatToBF16 rounds a float32 to bfloat16, ties to even.
func floatToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // quiet NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
