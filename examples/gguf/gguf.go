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
// # Bounds
//
// Counts are bounded by the bytes left divided by the smallest encoding of
// what they count: 14 bytes a key/value, 25 a tensor info, 1 to 12 an array
// element by type. Keys are 1 to 65535 bytes long and tensor names 1 to 64
// (the GGUF specification's limits), arrays nest at most 8 deep, tensors have
// at most 4 dimensions and no more elements than 16 per byte of the file.
// Read first checks that the source really holds the size it is given.
// With that, Read allocates at most 6 bytes per byte of the file plus a
// 64 KiB read buffer (about 4 at worst, for arrays of one-element arrays;
// the tests check the 6). ReadTensor allocates its result, 4 bytes an
// element: up to 4 times the tensor's bytes, for Q8_0.
//
// The tensors must tile the data section as the specification lays them
// out: at aligned offsets, the first at 0, each next one where the one
// before ends padded to the alignment. Overlapping tensors, tensors outside
// the section and bytes no tensor's dimensions and type account for are
// errors.
//
// Tensor data is not read by Open: ReadTensor reads one tensor at a time
// from the file, in bounded chunks, straight into the float32 slice it
// returns, so a model is held in memory once.
package gguf

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
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

	// keys and tensors index Metadata and Tensors sorted by name, for
	// lookups by binary search: 4 bytes an entry, where a map would take
	// several times the bytes the entry itself takes in the file.
	keys    []int32
	tensors []int32
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
//
// Read checks first that r holds size bytes, since every count in the file
// is checked against the size before anything is allocated for it.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: size = %d, want ≥ 0", size)
	}
	if size > 0 {
		var last [1]byte
		if n, err := r.ReadAt(last[:], size-1); n != 1 {
			return nil, fmt.Errorf("%w: size is %d bytes but byte %d cannot be read: %v", ErrTruncated, size, size-1, err)
		}
	}
	d := &decoder{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), int(min(size, readBuffer))), size: size}
	f := &File{r: r, size: size}
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
// before allocating: a key/value is at least a key length, a one-byte key,
// a type and one byte of value; a tensor info at least a name length, a
// one-byte name, n_dims, a type and an offset.
const (
	minKVBytes     = 8 + 1 + 4 + 1
	minTensorBytes = 8 + 1 + 4 + 4 + 8
)

// Bounds from the GGUF specification: keys are at most 65535 bytes long,
// tensor names at most 64 (ggml's GGML_MAX_NAME).
const (
	maxKeyLen  = 1<<16 - 1
	maxNameLen = 64
)

// readBuffer is the size of Read's buffer, the largest allocation that
// does not depend on the file's content.
const readBuffer = 64 << 10

func (f *File) readHeader(d *decoder) error {
	var magic [4]byte
	if err := d.fill(magic[:], "magic"); err != nil {
		return err
	}
	if string(magic[:]) != Magic {
		return fmt.Errorf("%w: magic %q at offset 0, want %q: not a GGUF file", ErrFormat, magic[:], Magic)
	}
	var err error
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
	d.sect = inMetadata
	for i := range nKV {
		d.index, d.name = i, ""
		key, err := d.str(maxKeyLen)
		if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("%w: metadata key %d is empty", ErrFormat, i)
		}
		d.name = key
		typ, err := d.u32("type")
		if err != nil {
			return err
		}
		v, err := d.value(Type(typ))
		if err != nil {
			return err
		}
		f.Metadata = append(f.Metadata, KV{key, v})
	}
	var dup string
	if f.keys, dup = sortedIndex(len(f.Metadata), func(i int32) string { return f.Metadata[i].Key }); dup != "" {
		return fmt.Errorf("%w: metadata key %q appears twice", ErrFormat, dup)
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

	d.sect, d.name = inTensorInfo, ""
	if nTensors > uint64(d.remaining()/minTensorBytes) {
		return fmt.Errorf("%w: tensor count %d cannot fit in the %d bytes left", ErrTruncated, nTensors, d.remaining())
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	for i := range nTensors {
		d.index, d.name = i, ""
		t, err := d.tensorInfo()
		if err != nil {
			return err
		}
		f.Tensors = append(f.Tensors, t)
	}
	if f.tensors, dup = sortedIndex(len(f.Tensors), func(i int32) string { return f.Tensors[i].Name }); dup != "" {
		return fmt.Errorf("%w: tensor %q appears twice", ErrFormat, dup)
	}

	start := (uint64(d.off) + f.Alignment - 1) / f.Alignment * f.Alignment
	if len(f.Tensors) > 0 && start > uint64(f.size) {
		return fmt.Errorf("%w: data section would start at offset %d, file has %d bytes", ErrTruncated, start, f.size)
	}
	f.DataOffset = int64(min(start, uint64(f.size)))
	return f.checkLayout()
}

// checkLayout checks that the tensors tile the data section as the GGUF
// specification lays them out: each at an aligned offset, inside the
// section, the first at offset 0 and each next one where the previous
// ends, padded to the alignment. So no two overlap, and no bytes lie
// between them that their dimensions and types do not account for; ggml
// checks the same (in file order, which this reader does not require).
func (f *File) checkLayout() error {
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
	order := make([]int32, len(f.Tensors)) // the count fits: each info takes bytes
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(f.Tensors[a].Offset, f.Tensors[b].Offset), cmp.Compare(a, b))
	})
	var prev *TensorInfo
	next := uint64(0) // where the next tensor must start
	for _, i := range order {
		t := &f.Tensors[i]
		switch {
		case prev != nil && t.Offset < prev.Offset+prev.Size:
			return fmt.Errorf("%w: tensors %q (data bytes [%d, %d)) and %q ([%d, %d)) overlap", ErrFormat,
				prev.Name, prev.Offset, prev.Offset+prev.Size, t.Name, t.Offset, t.Offset+t.Size)
		case t.Offset != next && prev == nil:
			return fmt.Errorf("%w: the first tensor in the data section, %q, starts at data offset %d, want 0", ErrFormat, t.Name, t.Offset)
		case t.Offset != next:
			return fmt.Errorf("%w: tensor %q (dimensions %v, type %v) takes %d bytes, but the next tensor, %q, starts %d bytes after it; want %d (its size padded to the alignment %d)",
				ErrFormat, prev.Name, prev.Dims, prev.Type, prev.Size, t.Name, t.Offset-prev.Offset, next-prev.Offset, f.Alignment)
		}
		next = (t.Offset + t.Size + f.Alignment - 1) / f.Alignment * f.Alignment
		prev = t
	}
	return nil
}

func (d *decoder) tensorInfo() (TensorInfo, error) {
	var t TensorInfo
	var err error
	if t.Name, err = d.str(maxNameLen); err != nil {
		return t, err
	}
	if t.Name == "" {
		return t, fmt.Errorf("%w: the name of tensor %d is empty", ErrFormat, d.index)
	}
	d.name = t.Name
	n, err := d.u32("n_dims")
	if err != nil {
		return t, err
	}
	if n > maxDims {
		return t, fmt.Errorf("%w: tensor %q has %d dimensions, want at most %d", ErrFormat, t.Name, n, maxDims)
	}
	if err := d.need(8*uint64(n), "dimensions"); err != nil {
		return t, err
	}
	if n > 0 {
		t.Dims = make([]uint64, n)
	}
	// No ggml type packs more than a few elements into a byte, so a
	// product far beyond the file's size is a lie; stopping there also
	// keeps the product from overflowing. The exact size is checked once
	// the type is known.
	maxElems := uint64(math.MaxUint64)
	if uint64(d.size) < maxElems/maxElemsPerByte {
		maxElems = maxElemsPerByte * uint64(d.size)
	}
	elems := uint64(1)
	for j := range t.Dims {
		if t.Dims[j], err = d.u64("dimensions"); err != nil {
			return t, err
		}
		if t.Dims[j] != 0 && elems > maxElems/t.Dims[j] {
			return t, fmt.Errorf("%w: tensor %q has dimensions %v, more elements than the file can hold", ErrFormat, t.Name, t.Dims[:j+1])
		}
		elems *= t.Dims[j]
	}
	typ, err := d.u32("type")
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
	if t.Offset, err = d.u64("offset"); err != nil {
		return t, err
	}
	return t, nil
}

// sortedIndex returns the indices 0 … n−1 sorted by name, and a name that
// appears twice, if any. n fits in an int32: every entry takes bytes of
// the file.
func sortedIndex(n int, name func(int32) string) (idx []int32, dup string) {
	idx = make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int { return strings.Compare(name(a), name(b)) })
	for i := 1; i < n; i++ {
		if name(idx[i-1]) == name(idx[i]) {
			return nil, name(idx[i])
		}
	}
	return idx, ""
}

// lookup returns the entry of idx (from sortedIndex) that has name.
func lookup(idx []int32, key string, name func(int32) string) (int32, bool) {
	i, ok := slices.BinarySearchFunc(idx, key, func(i int32, key string) int { return strings.Compare(name(i), key) })
	if !ok {
		return 0, false
	}
	return idx[i], true
}

// Value returns the metadata value of key.
func (f *File) Value(key string) (Value, bool) {
	i, ok := lookup(f.keys, key, func(i int32) string { return f.Metadata[i].Key })
	if !ok {
		return Value{}, false
	}
	return f.Metadata[i].Value, true
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := lookup(f.tensors, name, func(i int32) string { return f.Tensors[i].Name })
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
