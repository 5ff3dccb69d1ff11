package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Type is the type of a metadata value.
type Type uint32

// The metadata value types of GGUF.
const (
	TypeUint8 Type = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
)

var typeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// minBytes is the fewest bytes a value of type t takes in a file.
func (t Type) minBytes() int64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeArray:
		return 4 + 8 // element type and count
	}
	return 8 // 64-bit numbers, and a string's length
}

// Value is a metadata value. Scalars hold the Go type of the same name
// (uint8 … float64, bool, string); arrays hold an Array.
type Value struct {
	Type Type
	v    any
}

// Raw returns the Go value: uint8, int8, uint16, int16, uint32, int32,
// float32, bool, string, uint64, int64, float64 or Array.
func (v Value) Raw() any { return v.v }

func (v Value) String() string { return fmt.Sprint(v.v) }

// Uint returns an integer value of any integer type as a uint64; ok is false
// for other types and negative values.
func (v Value) Uint() (n uint64, ok bool) {
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// Float returns a numeric value of any type as a float64.
func (v Value) Float() (x float64, ok bool) {
	switch f := v.v.(type) {
	case float32:
		return float64(f), true
	case float64:
		return f, true
	}
	if n, ok := v.Uint(); ok {
		return float64(n), true
	}
	if i, ok := v.v.(int64); ok {
		return float64(i), true
	}
	switch i := v.v.(type) {
	case int8:
		return float64(i), true
	case int16:
		return float64(i), true
	case int32:
		return float64(i), true
	}
	return 0, false
}

// Array is an array metadata value. Values is a slice of the Go type of
// Elem: []uint8 … []float64, []bool, []string, or []Array for nested arrays.
type Array struct {
	Elem   Type
	Values any
}

func (a Array) String() string { return fmt.Sprintf("[%v × %d]", a.Elem, a.Len()) }

// Len returns the number of elements.
func (a Array) Len() int {
	switch x := a.Values.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []Array:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	}
	return 0
}

// decoder reads the little-endian header of a GGUF file, tracking the
// offset so that every length can be checked against the bytes left.
type decoder struct {
	r    *bufio.Reader
	off  int64
	size int64
	buf  [8]byte
}

func (d *decoder) remaining() int64 { return d.size - d.off }

// bytes reads n bytes into a new slice; what names the field for errors.
func (d *decoder) bytes(n uint64, what string) ([]byte, error) {
	if n > uint64(d.remaining()) {
		return nil, fmt.Errorf("%w: reading %s: need %d bytes at offset %d, the file has %d", ErrTruncated, what, n, d.off, d.size)
	}
	b := make([]byte, n)
	if err := d.fill(b, what); err != nil {
		return nil, err
	}
	return b, nil
}

func (d *decoder) fill(b []byte, what string) error {
	if int64(len(b)) > d.remaining() {
		return fmt.Errorf("%w: reading %s: need %d bytes at offset %d, the file has %d", ErrTruncated, what, len(b), d.off, d.size)
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			// The source is shorter than the size it was given.
			return fmt.Errorf("%w: reading %s at offset %d: %v", ErrTruncated, what, d.off, err)
		}
		return fmt.Errorf("gguf: reading %s at offset %d: %w", what, d.off, err)
	}
	d.off += int64(len(b))
	return nil
}

func (d *decoder) u8(what string) (uint8, error) {
	err := d.fill(d.buf[:1], what)
	return d.buf[0], err
}

func (d *decoder) u16(what string) (uint16, error) {
	err := d.fill(d.buf[:2], what)
	return binary.LittleEndian.Uint16(d.buf[:2]), err
}

func (d *decoder) u32(what string) (uint32, error) {
	err := d.fill(d.buf[:4], what)
	return binary.LittleEndian.Uint32(d.buf[:4]), err
}

func (d *decoder) u64(what string) (uint64, error) {
	err := d.fill(d.buf[:8], what)
	return binary.LittleEndian.Uint64(d.buf[:8]), err
}

func (d *decoder) str(what string) (string, error) {
	n, err := d.u64("length of " + what)
	if err != nil {
		return "", err
	}
	b, err := d.bytes(n, what)
	return string(b), err
}

// maxNesting bounds arrays of arrays, so that a file of nested array headers
// cannot recurse deeply; real files nest at most once.
const maxNesting = 8

// value reads a value of type t; depth counts the enclosing arrays.
func (d *decoder) value(t Type, depth int, what string) (Value, error) {
	var v any
	var err error
	switch t {
	case TypeUint8:
		v, err = d.u8(what)
	case TypeInt8:
		var x uint8
		x, err = d.u8(what)
		v = int8(x)
	case TypeUint16:
		v, err = d.u16(what)
	case TypeInt16:
		var x uint16
		x, err = d.u16(what)
		v = int16(x)
	case TypeUint32:
		v, err = d.u32(what)
	case TypeInt32:
		var x uint32
		x, err = d.u32(what)
		v = int32(x)
	case TypeFloat32:
		var x uint32
		x, err = d.u32(what)
		v = math.Float32frombits(x)
	case TypeBool:
		var x uint8
		x, err = d.u8(what)
		if err == nil && x > 1 {
			err = fmt.Errorf("%w: %s is a bool with byte %d, want 0 or 1", ErrFormat, what, x)
		}
		v = x == 1
	case TypeString:
		v, err = d.str(what)
	case TypeUint64:
		v, err = d.u64(what)
	case TypeInt64:
		var x uint64
		x, err = d.u64(what)
		v = int64(x)
	case TypeFloat64:
		var x uint64
		x, err = d.u64(what)
		v = math.Float64frombits(x)
	case TypeArray:
		v, err = d.array(depth, what)
	default:
		return Value{}, fmt.Errorf("%w: %s has value type %d, want 0 to 12", ErrFormat, what, uint32(t))
	}
	if err != nil {
		return Value{}, err
	}
	return Value{t, v}, nil
}

func (d *decoder) array(depth int, what string) (Array, error) {
	if depth >= maxNesting {
		return Array{}, fmt.Errorf("%w: %s nests arrays more than %d deep", ErrFormat, what, maxNesting)
	}
	et, err := d.u32("element type of " + what)
	if err != nil {
		return Array{}, err
	}
	elem := Type(et)
	if elem > TypeFloat64 {
		return Array{}, fmt.Errorf("%w: %s is an array of value type %d, want 0 to 12", ErrFormat, what, et)
	}
	n, err := d.u64("length of " + what)
	if err != nil {
		return Array{}, err
	}
	// Bound the count by the bytes left before allocating anything.
	if n > uint64(d.remaining()/elem.minBytes()) {
		return Array{}, fmt.Errorf("%w: %s declares %d elements of %v, more than the %d bytes left can hold", ErrTruncated, what, n, elem, d.remaining())
	}
	a := Array{Elem: elem}
	switch elem {
	case TypeUint8, TypeInt8, TypeBool:
		b, err := d.bytes(n, what)
		if err != nil {
			return a, err
		}
		switch elem {
		case TypeUint8:
			a.Values = b
		case TypeInt8:
			s := make([]int8, n)
			for i, x := range b {
				s[i] = int8(x)
			}
			a.Values = s
		default:
			s := make([]bool, n)
			for i, x := range b {
				if x > 1 {
					return a, fmt.Errorf("%w: element %d of %s is a bool with byte %d, want 0 or 1", ErrFormat, i, what, x)
				}
				s[i] = x == 1
			}
			a.Values = s
		}
	case TypeUint16, TypeInt16:
		b, err := d.bytes(2*n, what)
		if err != nil {
			return a, err
		}
		if elem == TypeUint16 {
			a.Values = decodeLE(b, 2, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) })
		} else {
			a.Values = decodeLE(b, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
		}
	case TypeUint32, TypeInt32, TypeFloat32:
		b, err := d.bytes(4*n, what)
		if err != nil {
			return a, err
		}
		switch elem {
		case TypeUint32:
			a.Values = decodeLE(b, 4, binary.LittleEndian.Uint32)
		case TypeInt32:
			a.Values = decodeLE(b, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
		default:
			a.Values = decodeLE(b, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
		}
	case TypeUint64, TypeInt64, TypeFloat64:
		b, err := d.bytes(8*n, what)
		if err != nil {
			return a, err
		}
		switch elem {
		case TypeUint64:
			a.Values = decodeLE(b, 8, binary.LittleEndian.Uint64)
		case TypeInt64:
			a.Values = decodeLE(b, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
		default:
			a.Values = decodeLE(b, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
		}
	case TypeString:
		s := make([]string, n)
		for i := range s {
			if s[i], err = d.str(fmt.Sprintf("element %d of %s", i, what)); err != nil {
				return a, err
			}
		}
		a.Values = s
	case TypeArray:
		s := make([]Array, n)
		for i := range s {
			if s[i], err = d.array(depth+1, fmt.Sprintf("element %d of %s", i, what)); err != nil {
				return a, err
			}
		}
		a.Values = s
	}
	return a, nil
}

func decodeLE[T any](b []byte, size int, get func([]byte) T) []T {
	s := make([]T, len(b)/size)
	for i := range s {
		s[i] = get(b[i*size:])
	}
	return s
}
