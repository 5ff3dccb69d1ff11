package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
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
//
// It also tracks where it is, for error messages, which it formats only
// when an error occurs: a description formatted for every value would
// allocate more than the values themselves (and, repeating the key, an
// amount quadratic in the file's size).
type decoder struct {
	r       *bufio.Reader
	off     int64
	size    int64
	buf     [8]byte
	scratch [4096]byte // for decoding arrays without an intermediate copy

	sect  section
	index uint64 // of the key/value or tensor info being read
	name  string // its key or name; "" until read
	// path holds the element index of each enclosing array, outermost
	// first, path[:depth] while reading an array element.
	path  [maxNesting]uint64
	depth int
}

// section is the part of the file the decoder is in.
type section int

const (
	inHeader section = iota
	inMetadata
	inTensorInfo
)

// where describes the field label of the item being read, such as "length
// of element 3 of metadata \"tokenizer.ggml.tokens\"".
func (d *decoder) where(label string) string {
	var sb strings.Builder
	if label != "" {
		sb.WriteString(label)
		if d.sect == inHeader {
			return sb.String()
		}
		sb.WriteString(" of ")
	}
	for i := d.depth - 1; i >= 0; i-- {
		fmt.Fprintf(&sb, "element %d of ", d.path[i])
	}
	kind := "metadata"
	if d.sect == inTensorInfo {
		kind = "tensor"
	}
	switch {
	case d.name != "":
		fmt.Fprintf(&sb, "%s %q", kind, d.name)
	case d.sect == inMetadata:
		fmt.Fprintf(&sb, "metadata key %d", d.index)
	default:
		fmt.Fprintf(&sb, "the name of tensor %d", d.index)
	}
	return sb.String()
}

func (d *decoder) remaining() int64 { return d.size - d.off }

// need checks that n bytes remain for label before anything is allocated
// for them.
func (d *decoder) need(n uint64, label string) error {
	if n > uint64(d.remaining()) {
		return fmt.Errorf("%w: reading %s: need %d bytes at offset %d, the file has %d", ErrTruncated, d.where(label), n, d.off, d.size)
	}
	return nil
}

func (d *decoder) fill(b []byte, label string) error {
	if err := d.need(uint64(len(b)), label); err != nil {
		return err
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			// The source is shorter than the size it was given.
			return fmt.Errorf("%w: reading %s at offset %d: %v", ErrTruncated, d.where(label), d.off, err)
		}
		return fmt.Errorf("gguf: reading %s at offset %d: %w", d.where(label), d.off, err)
	}
	d.off += int64(len(b))
	return nil
}

func (d *decoder) u8(label string) (uint8, error) {
	err := d.fill(d.buf[:1], label)
	return d.buf[0], err
}

func (d *decoder) u16(label string) (uint16, error) {
	err := d.fill(d.buf[:2], label)
	return binary.LittleEndian.Uint16(d.buf[:2]), err
}

func (d *decoder) u32(label string) (uint32, error) {
	err := d.fill(d.buf[:4], label)
	return binary.LittleEndian.Uint32(d.buf[:4]), err
}

func (d *decoder) u64(label string) (uint64, error) {
	err := d.fill(d.buf[:8], label)
	return binary.LittleEndian.Uint64(d.buf[:8]), err
}

// str reads a string of at most maxLen bytes; it allocates the string's
// bytes once, and nothing for an empty one.
func (d *decoder) str(maxLen uint64) (string, error) {
	n, err := d.u64("length")
	if err != nil {
		return "", err
	}
	if n > maxLen {
		return "", fmt.Errorf("%w: %s is %d bytes long, want at most %d", ErrFormat, d.where(""), n, maxLen)
	}
	if err := d.need(n, ""); err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.Grow(int(n))
	for n > 0 {
		b := d.scratch[:min(n, uint64(len(d.scratch)))]
		if err := d.fill(b, ""); err != nil {
			return "", err
		}
		sb.Write(b)
		n -= uint64(len(b))
	}
	return sb.String(), nil
}

// maxNesting bounds arrays of arrays, so that a file of nested array headers
// cannot recurse deeply; real files nest at most once.
const maxNesting = 8

// value reads a value of type t.
func (d *decoder) value(t Type) (Value, error) {
	var v any
	var err error
	switch t {
	case TypeUint8:
		v, err = d.u8("")
	case TypeInt8:
		var x uint8
		x, err = d.u8("")
		v = int8(x)
	case TypeUint16:
		v, err = d.u16("")
	case TypeInt16:
		var x uint16
		x, err = d.u16("")
		v = int16(x)
	case TypeUint32:
		v, err = d.u32("")
	case TypeInt32:
		var x uint32
		x, err = d.u32("")
		v = int32(x)
	case TypeFloat32:
		var x uint32
		x, err = d.u32("")
		v = math.Float32frombits(x)
	case TypeBool:
		var x uint8
		x, err = d.u8("")
		if err == nil && x > 1 {
			err = fmt.Errorf("%w: %s is a bool with byte %d, want 0 or 1", ErrFormat, d.where(""), x)
		}
		v = x == 1
	case TypeString:
		v, err = d.str(math.MaxUint64)
	case TypeUint64:
		v, err = d.u64("")
	case TypeInt64:
		var x uint64
		x, err = d.u64("")
		v = int64(x)
	case TypeFloat64:
		var x uint64
		x, err = d.u64("")
		v = math.Float64frombits(x)
	case TypeArray:
		v, err = d.array()
	default:
		return Value{}, fmt.Errorf("%w: %s has value type %d, want 0 to 12", ErrFormat, d.where(""), uint32(t))
	}
	if err != nil {
		return Value{}, err
	}
	return Value{t, v}, nil
}

// array reads an array value. It allocates the elements' slice and, for
// strings and arrays, what each element holds; an empty array holds a nil
// slice, which costs nothing to store in Values.
func (d *decoder) array() (Array, error) {
	if d.depth >= maxNesting {
		return Array{}, fmt.Errorf("%w: %s nests arrays more than %d deep", ErrFormat, d.where(""), maxNesting)
	}
	et, err := d.u32("element type")
	if err != nil {
		return Array{}, err
	}
	elem := Type(et)
	if elem > TypeFloat64 {
		return Array{}, fmt.Errorf("%w: %s is an array of value type %d, want 0 to 12", ErrFormat, d.where(""), et)
	}
	n, err := d.u64("length")
	if err != nil {
		return Array{}, err
	}
	// Bound the count by the bytes left before allocating anything.
	if n > uint64(d.remaining()/elem.minBytes()) {
		return Array{}, fmt.Errorf("%w: %s declares %d elements of %v, more than the %d bytes left can hold", ErrTruncated, d.where(""), n, elem, d.remaining())
	}
	a := Array{Elem: elem}
	switch elem {
	case TypeUint8:
		var s []uint8
		if n > 0 {
			s = make([]uint8, n)
			err = d.fill(s, "")
		}
		a.Values = s
	case TypeInt8:
		a.Values, err = decodeLE(d, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeBool:
		// decodeLE cannot fail on a value, so note the first bad byte.
		i, bad, badByte := uint64(0), uint64(math.MaxUint64), byte(0)
		a.Values, err = decodeLE(d, n, 1, func(b []byte) bool {
			if b[0] > 1 && bad == math.MaxUint64 {
				bad, badByte = i, b[0]
			}
			i++
			return b[0] == 1
		})
		if err == nil && bad != math.MaxUint64 {
			err = fmt.Errorf("%w: element %d of %s is a bool with byte %d, want 0 or 1", ErrFormat, bad, d.where(""), badByte)
		}
	case TypeUint16:
		a.Values, err = decodeLE(d, n, 2, binary.LittleEndian.Uint16)
	case TypeInt16:
		a.Values, err = decodeLE(d, n, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case TypeUint32:
		a.Values, err = decodeLE(d, n, 4, binary.LittleEndian.Uint32)
	case TypeInt32:
		a.Values, err = decodeLE(d, n, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case TypeFloat32:
		a.Values, err = decodeLE(d, n, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case TypeUint64:
		a.Values, err = decodeLE(d, n, 8, binary.LittleEndian.Uint64)
	case TypeInt64:
		a.Values, err = decodeLE(d, n, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case TypeFloat64:
		a.Values, err = decodeLE(d, n, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case TypeString:
		a.Values, err = elements(d, n, func() (string, error) { return d.str(math.MaxUint64) })
	case TypeArray:
		a.Values, err = elements(d, n, d.array)
	}
	return a, err
}

// decodeLE reads n little-endian values of size bytes each through the
// scratch buffer, allocating only the result.
func decodeLE[T any](d *decoder, n uint64, size int, get func([]byte) T) ([]T, error) {
	if n == 0 {
		return nil, nil
	}
	if err := d.need(n*uint64(size), ""); err != nil {
		return nil, err
	}
	s := make([]T, n)
	per := len(d.scratch) / size
	for i := 0; i < len(s); {
		k := min(len(s)-i, per)
		b := d.scratch[:k*size]
		if err := d.fill(b, ""); err != nil {
			return nil, err
		}
		for j := range k {
			s[i+j] = get(b[j*size:])
		}
		i += k
	}
	return s, nil
}

// elements reads n elements with read, tracking the index for errors.
func elements[T any](d *decoder, n uint64, read func() (T, error)) ([]T, error) {
	if n == 0 {
		return nil, nil
	}
	s := make([]T, n)
	d.depth++
	for i := range s {
		d.path[d.depth-1] = uint64(i)
		var err error
		if s[i], err = read(); err != nil {
			return nil, err
		}
	}
	d.depth--
	return s, nil
}
