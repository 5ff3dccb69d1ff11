// Package gguf reads GGUF files (versions 2 and 3), the container llama.cpp
// and ggml use for model weights: the header, metadata of every value type,
// tensor infos and tensor data of types F32, F16, BF16 and Q8_0, which are
// dequantised to float32 on load.
//
// The reader trusts nothing in the file: every count and length is checked
// against the bytes that remain before anything is allocated, so a corrupt or
// hostile file gives an error, never a panic or an allocation larger than a
// small multiple of the file's size.
//
// Tensor data is not read by Open: ReadTensor reads one tensor at a time
// from the file, in bounded chunks, straight into the float32 slice it
// returns, so a model is held in memory once.
package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTruncated is wrapped by the errors for files that end before the
// structure they declare does.
var ErrTruncated = errors.New("gguf: file truncated")

// ErrFormat is wrapped by the errors for files that are not well-formed GGUF:
// wrong magic, unknown versions or value types, inconsistent sizes.
var ErrFormat = errors.New("gguf: malformed file")

// ErrUnsupported is wrapped by the errors for well-formed files that use a
// tensor type this package cannot dequantise.
var ErrUnsupported = errors.New("gguf: unsupported")

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the alignment of the tensor data when the file has no
// general.alignment key.
const DefaultAlignment = 32

// maxDims is ggml's GGML_MAX_DIMS: tensors have at most four dimensions.
const maxDims = 4

// maxElemsPerByte bounds the elements a byte of tensor data can hold in any
// ggml type (the 1-bit types hold fewer than 8).
const maxElemsPerByte = 16

// File is an open GGUF file: its metadata and tensor infos, and the source
// its tensor data is read from.
type File struct {
	Version  uint32
	Metadata []KV         // in file order
	Tensors  []TensorInfo // in file order
	// Alignment is the alignment of the data section and of every tensor
	// offset in it.
	Alignment uint64
	// DataOffset is where the data section starts in the file; tensor
	// offsets count from it.
	DataOffset int64

	keys    map[string]int
	tensors map[string]int
	r       io.ReaderAt
	size    int64
	closer  io.Closer
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Dims[0] is the fastest-varying
// dimension (a row of a row-major [out][in] weight matrix has Dims[0] = in).
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   TensorType
	Offset uint64 // from File.DataOffset
	Size   uint64 // bytes of data
}

// Elements returns the number of elements, the product of Dims.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d // checked against overflow when the file was read
	}
	return n
}

// Open opens the GGUF file at path and reads its header, metadata and tensor
// infos. The file stays open for ReadTensor until Close.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("gguf: %s is not a regular file", path)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = fh
	return f, nil
}

// Read reads the header, metadata and tensor infos of the GGUF data of size
// bytes in r. r must stay readable while the File's tensors are read.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: size = %d, want ≥ 0", size)
	}
	d := &decoder{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10), size: size}
	f := &File{r: r, size: size, keys: map[string]int{}, tensors: map[string]int{}}
	if err := f.readHeader(d); err != nil {
		return nil, err
	}
	return f, nil
}

// Close closes the file opened by Open; it does nothing for a File from
// Read.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Minimum encoded sizes, used to bound counts by the bytes left in the file
// before allocating: a key/value is at least a key length, a type and one
// byte of value; a tensor info at least a name length, n_dims, a type and an
// offset.
const (
	minKVBytes     = 8 + 4 + 1
	minTensorBytes = 8 + 4 + 4 + 8
)

func (f *File) readHeader(d *decoder) error {
	magic, err := d.bytes(4, "magic")
	if err != nil {
		return err
	}
	if string(magic) != Magic {
		return fmt.Errorf("%w: magic %q at offset 0, want %q: not a GGUF file", ErrFormat, magic, Magic)
	}
	if f.Version, err = d.u32("version"); err != nil {
		return err
	}
	// Version 1 used 32-bit counts and lengths; 2 and 3 share the layout
	// read here (3 added big-endian files, which announce themselves with
	// a byte-swapped version and fail this check).
	if f.Version != 2 && f.Version != 3 {
		return fmt.Errorf("%w: version %d, want 2 or 3", ErrFormat, f.Version)
	}
	nTensors, err := d.u64("tensor count")
	if err != nil {
		return err
	}
	nKV, err := d.u64("metadata count")
	if err != nil {
		return err
	}
	if nKV > uint64(d.remaining()/minKVBytes) {
		return fmt.Errorf("%w: metadata count %d cannot fit in the %d bytes left", ErrTruncated, nKV, d.remaining())
	}
	f.Metadata = make([]KV, 0, nKV)
	for i := range nKV {
		key, err := d.str(fmt.Sprintf("metadata key %d", i))
		if err != nil {
			return err
		}
		if _, dup := f.keys[key]; dup {
			return fmt.Errorf("%w: metadata key %q appears twice", ErrFormat, key)
		}
		typ, err := d.u32(fmt.Sprintf("type of metadata %q", key))
		if err != nil {
			return err
		}
		v, err := d.value(Type(typ), 0, fmt.Sprintf("metadata %q", key))
		if err != nil {
			return err
		}
		f.keys[key] = len(f.Metadata)
		f.Metadata = append(f.Metadata, KV{key, v})
	}

	f.Alignment = DefaultAlignment
	if v, ok := f.Value("general.alignment"); ok {
		a, ok := v.v.(uint32)
		if !ok {
			return fmt.Errorf("%w: general.alignment has type %v, want uint32", ErrFormat, v.Type)
		}
		if a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("%w: general.alignment = %d, want a power of two", ErrFormat, a)
		}
		f.Alignment = uint64(a)
	}

	if nTensors > uint64(d.remaining()/minTensorBytes) {
		return fmt.Errorf("%w: tensor count %d cannot fit in the %d bytes left", ErrTruncated, nTensors, d.remaining())
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	for i := range nTensors {
		t, err := d.tensorInfo(i)
		if err != nil {
			return err
		}
		if _, dup := f.tensors[t.Name]; dup {
			return fmt.Errorf("%w: tensor %q appears twice", ErrFormat, t.Name)
		}
		f.tensors[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	start := (uint64(d.off) + f.Alignment - 1) / f.Alignment * f.Alignment
	if len(f.Tensors) > 0 && start > uint64(f.size) {
		return fmt.Errorf("%w: data section would start at offset %d, file has %d bytes", ErrTruncated, start, f.size)
	}
	f.DataOffset = int64(min(start, uint64(f.size)))
	dataSize := uint64(f.size - f.DataOffset)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Offset%f.Alignment != 0 {
			return fmt.Errorf("%w: tensor %q offset %d is not a multiple of the alignment %d", ErrFormat, t.Name, t.Offset, f.Alignment)
		}
		if t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return fmt.Errorf("%w: tensor %q needs data bytes [%d, %d) but the data section has %d bytes", ErrTruncated, t.Name, t.Offset, t.Offset+t.Size, dataSize)
		}
	}
	return nil
}

func (d *decoder) tensorInfo(i uint64) (TensorInfo, error) {
	var t TensorInfo
	var err error
	if t.Name, err = d.str(fmt.Sprintf("name of tensor %d", i)); err != nil {
		return t, err
	}
	n, err := d.u32(fmt.Sprintf("n_dims of tensor %q", t.Name))
	if err != nil {
		return t, err
	}
	if n > maxDims {
		return t, fmt.Errorf("%w: tensor %q has %d dimensions, want at most %d", ErrFormat, t.Name, n, maxDims)
	}
	t.Dims = make([]uint64, n)
	elems := uint64(1)
	for j := range t.Dims {
		if t.Dims[j], err = d.u64(fmt.Sprintf("dimension %d of tensor %q", j, t.Name)); err != nil {
			return t, err
		}
		// No ggml type packs more than a few elements into a byte, so a
		// product far beyond the file's size is a lie; stopping there
		// also keeps the product from overflowing. The exact size is
		// checked once the type is known.
		if t.Dims[j] != 0 && elems > maxElemsPerByte*uint64(d.size)/t.Dims[j] {
			return t, fmt.Errorf("%w: tensor %q has dimensions %v, more elements than the file can hold", ErrFormat, t.Name, t.Dims[:j+1])
		}
		elems *= t.Dims[j]
	}
	typ, err := d.u32(fmt.Sprintf("type of tensor %q", t.Name))
	if err != nil {
		return t, err
	}
	t.Type = TensorType(typ)
	if !t.Type.supported() {
		return t, fmt.Errorf("%w: tensor %q has type %v; this reader supports F32, F16, BF16 and Q8_0", ErrUnsupported, t.Name, t.Type)
	}
	block := uint64(t.Type.blockSize())
	first := uint64(1) // a tensor with no dimensions is a scalar
	if n > 0 {
		first = t.Dims[0]
	}
	if first%block != 0 {
		return t, fmt.Errorf("%w: tensor %q of type %v has a first dimension of %d, want a multiple of the block size %d", ErrFormat, t.Name, t.Type, first, block)
	}
	t.Size = elems / block * uint64(t.Type.blockBytes())
	if t.Offset, err = d.u64(fmt.Sprintf("offset of tensor %q", t.Name)); err != nil {
		return t, err
	}
	return t, nil
}

// Value returns the metadata value of key.
func (f *File) Value(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.Metadata[i].Value, true
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tensors[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// String returns the string metadata value of key.
func (f *File) String(key string) (string, error) {
	v, err := f.need(key)
	if err != nil {
		return "", err
	}
	s, ok := v.v.(string)
	if !ok {
		return "", fmt.Errorf("gguf: metadata %q has type %v, want string", key, v.Type)
	}
	return s, nil
}

// Uint returns the metadata value of key, which may have any integer type
// but must not be negative.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.need(key)
	if err != nil {
		return 0, err
	}
	n, ok := v.Uint()
	if !ok {
		return 0, fmt.Errorf("gguf: metadata %q = %v (%v), want a non-negative integer", key, v, v.Type)
	}
	return n, nil
}

// Float returns the metadata value of key, which may have any numeric type.
func (f *File) Float(key string) (float64, error) {
	v, err := f.need(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.Float()
	if !ok {
		return 0, fmt.Errorf("gguf: metadata %q has type %v, want a number", key, v.Type)
	}
	return x, nil
}

// Array returns the array metadata value of key, whose elements must have
// type elem.
func (f *File) Array(key string, elem Type) (Array, error) {
	v, err := f.need(key)
	if err != nil {
		return Array{}, err
	}
	a, ok := v.v.(Array)
	if !ok {
		return Array{}, fmt.Errorf("gguf: metadata %q has type %v, want an array of %v", key, v.Type, elem)
	}
	if a.Elem != elem {
		return Array{}, fmt.Errorf("gguf: metadata %q is an array of %v, want an array of %v", key, a.Elem, elem)
	}
	return a, nil
}

func (f *File) need(key string) (Value, error) {
	v, ok := f.Value(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf: metadata key %q is missing", key)
	}
	return v, nil
}
