package gguf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/lavakv/lava/examples/gguf"
	"github.com/lavakv/lava/examples/internal/modelfile"
)

// raw builds GGUF bytes by hand, for files the writer cannot express.
type raw struct{ b []byte }

func newRaw(tensors, kvs uint64) *raw {
	r := &raw{b: []byte(gguf.Magic)}
	return r.u32(3).u64(tensors).u64(kvs)
}

func (r *raw) u8(x uint8) *raw   { r.b = append(r.b, x); return r }
func (r *raw) u32(x uint32) *raw { r.b = binary.LittleEndian.AppendUint32(r.b, x); return r }
func (r *raw) u64(x uint64) *raw { r.b = binary.LittleEndian.AppendUint64(r.b, x); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }

// allocated returns the bytes f allocates, from runtime.MemStats.TotalAlloc
// (which counts every allocation, collected or not).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allocLimit is the allocation the package documentation promises for a
// file of size bytes, 6·size + 64 KiB, with 16 KiB for what the runtime and
// the test allocate around the call.
func allocLimit(size int) uint64 { return 6*uint64(size) + 64<<10 + 16<<10 }

// keyName returns a distinct short key for i.
func keyName(i int) string { return fmt.Sprintf("%x", i) }

// lyingInputs are files of about size bytes built to make a reader
// allocate as much as possible per byte: every count at the bound the
// bytes left allow.
func lyingInputs(size int) map[string][]byte {
	in := map[string][]byte{}

	// An array of n empty arrays, each 12 bytes (element type, count).
	n := (size - 24 - 8 - 1 - 4 - 4 - 8) / 12
	r := newRaw(0, 1).str("a").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeArray)).u64(uint64(n))
	for range n {
		r.u32(uint32(gguf.TypeUint8)).u64(0)
	}
	in["nested arrays"] = r.b

	// Arrays of arrays of arrays: two levels of empty arrays.
	n = (size - 64) / (12 + 12)
	r = newRaw(0, 1).str("a").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeArray)).u64(uint64(n))
	for range n {
		r.u32(uint32(gguf.TypeArray)).u64(1).u32(uint32(gguf.TypeString)).u64(0)
	}
	in["nested arrays, 2 levels"] = r.b

	// The same under a long key, which an error message might repeat.
	key := string(bytes.Repeat([]byte("k"), size/256))
	n = (size - 64 - len(key)) / 12
	r = newRaw(0, 1).str(key).u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeArray)).u64(uint64(n))
	for range n {
		r.u32(uint32(gguf.TypeUint8)).u64(0)
	}
	in["nested arrays, long key"] = r.b

	// Chains of arrays holding one array each, ending in one byte: every
	// level allocates a one-element slice and stores it in an interface.
	const chain = 6
	n = (size - 64) / (12*chain + 13)
	r = newRaw(0, 1).str("a").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeArray)).u64(uint64(n))
	for range n {
		for range chain {
			r.u32(uint32(gguf.TypeArray)).u64(1)
		}
		r.u32(uint32(gguf.TypeUint8)).u64(1).u8(7)
	}
	in["chains of one-element arrays"] = r.b

	// A metadata count at the bound the bytes allow, then one key/value
	// whose string takes the rest: the count is a lie found at the end.
	n = (size - 24) / 14
	r = newRaw(0, uint64(n)).str("a").u32(uint32(gguf.TypeString))
	r.str(string(make([]byte, size-len(r.b)-8)))
	in["metadata count lie"] = r.b

	// The same for the tensor count, with zeros for the infos.
	r = newRaw(uint64(size/2/26), 1).str("a").u32(uint32(gguf.TypeString))
	r.str(string(make([]byte, size/2)))
	r.b = append(r.b, make([]byte, size-len(r.b))...)
	in["tensor count lie"] = r.b

	// An array of n empty strings, 8 bytes each.
	n = (size - 64) / 8
	r = newRaw(0, 1).str("a").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeString)).u64(uint64(n))
	for range n {
		r.u64(0)
	}
	in["empty strings"] = r.b

	// n key/values with short distinct keys and one-byte values.
	n = (size - 24) / 17
	r = newRaw(0, uint64(n))
	for i := range n {
		r.str(keyName(i)).u32(uint32(gguf.TypeUint8)).u8(0)
	}
	in["many metadata"] = r.b

	// n key/values with 32-bit values, which Value boxes.
	n = (size - 24) / 20
	r = newRaw(0, uint64(n))
	for i := range n {
		r.str(keyName(i)).u32(uint32(gguf.TypeUint32)).u32(0)
	}
	in["many metadata u32"] = r.b

	// n tensor infos of one F32 element each, laid out validly.
	n = (size - 24) / (8 + 5 + 4 + 8 + 4 + 8 + 32)
	r = newRaw(uint64(n), 0)
	for i := range n {
		r.str(keyName(i)).u32(1).u64(1).u32(uint32(gguf.F32)).u64(uint64(32 * i))
	}
	r.b = append(r.b, make([]byte, (32-len(r.b)%32)%32+32*n)...)
	in["many tensors"] = r.b

	// n tensor infos with zero dimensions (scalars), the smallest info.
	n = (size - 24) / (8 + 5 + 4 + 4 + 8 + 32)
	r = newRaw(uint64(n), 0)
	for i := range n {
		r.str(keyName(i)).u32(0).u32(uint32(gguf.F32)).u64(uint64(32 * i))
	}
	r.b = append(r.b, make([]byte, (32-len(r.b)%32)%32+32*n)...)
	in["many scalar tensors"] = r.b
	return in
}

// TestAllocationBounded reads files that pack as many allocations as the
// format allows into 1 MiB and checks the total allocation stays within
// a small multiple of the file's size.
func TestAllocationBounded(t *testing.T) {
	const size = 1 << 20
	for name, b := range lyingInputs(size) {
		var err error
		n := allocated(func() { _, err = read(b) })
		t.Logf("%-24s %8d bytes: allocated %10d (%.1f×), err = %v", name, len(b), n, float64(n)/float64(len(b)), err)
		if limit := allocLimit(len(b)); n > limit {
			t.Errorf("%s: reading %d bytes allocated %d, want ≤ %d", name, len(b), n, limit)
		}
	}
}

// TestSizeLargerThanData gives Read a size beyond the data: every count is
// then checked against bytes that do not exist, so Read must notice.
func TestSizeLargerThanData(t *testing.T) {
	b := newRaw(0, 1<<36).b
	for _, size := range []int64{int64(len(b)) + 1, 1 << 30, 1 << 40, 1 << 62} {
		var err error
		n := allocated(func() { _, err = gguf.Read(bytes.NewReader(b), size) })
		if !errors.Is(err, gguf.ErrTruncated) {
			t.Errorf("size %d for %d bytes: err = %v, want ErrTruncated", size, len(b), err)
		}
		if n > 1<<20 {
			t.Errorf("size %d for %d bytes: allocated %d", size, len(b), n)
		}
	}
}

// info is one hand-written tensor info.
type info struct {
	name   string
	dims   []uint64
	typ    gguf.TensorType
	offset uint64
}

// layout returns a file with the given tensor infos, alignment 32 and
// dataLen bytes of data.
func layout(infos []info, dataLen int) []byte {
	r := newRaw(uint64(len(infos)), 0)
	for _, t := range infos {
		r.str(t.name).u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			r.u64(d)
		}
		r.u32(uint32(t.typ)).u64(t.offset)
	}
	r.b = append(r.b, make([]byte, (32-len(r.b)%32)%32+dataLen)...)
	return r.b
}

func TestInconsistentLayouts(t *testing.T) {
	f32 := func(name string, n, off uint64) info { return info{name, []uint64{n}, gguf.F32, off} }
	cases := []struct {
		name  string
		infos []info
		data  int
		is    error
		msg   string
	}{
		{"valid", []info{f32("a", 8, 0), f32("b", 3, 32), f32("c", 1, 64)}, 68, nil, ""},
		{"valid out of file order", []info{f32("b", 3, 32), f32("a", 8, 0)}, 44, nil, ""},
		{"overlap", []info{f32("a", 16, 0), f32("b", 8, 32)}, 96, gguf.ErrFormat, `tensors "a" (data bytes [0, 64)) and "b" ([32, 64)) overlap`},
		{"same offset", []info{f32("a", 1, 0), f32("b", 1, 0)}, 32, gguf.ErrFormat, `"a" (data bytes [0, 4)) and "b" ([0, 4)) overlap`},
		{"gap: size short of the layout", []info{f32("a", 8, 0), f32("b", 1, 64)}, 96, gguf.ErrFormat,
			`tensor "a" (dimensions [8], type F32 (0)) takes 32 bytes, but the next tensor, "b", starts 64 bytes after it; want 32`},
		{"first not at 0", []info{f32("a", 1, 32)}, 64, gguf.ErrFormat, `the first tensor in the data section, "a", starts at data offset 32, want 0`},
		{"misaligned", []info{f32("a", 1, 0), f32("b", 1, 4)}, 32, gguf.ErrFormat, `tensor "b" offset 4 is not a multiple of the alignment 32`},
		{"outside the data", []info{f32("a", 1, 0), f32("b", 1, 1<<40)}, 32, gguf.ErrTruncated, `tensor "b" needs data bytes [1099511627776, 1099511627780) but the data section has 32 bytes`},
		{"past the end", []info{f32("a", 9, 0)}, 32, gguf.ErrTruncated, `tensor "a" needs data bytes [0, 36)`},
		{"empty name", []info{f32("", 1, 0)}, 32, gguf.ErrFormat, "the name of tensor 0 is empty"},
		{"name of 65 bytes", []info{f32(string(make([]byte, 65)), 1, 0)}, 32, gguf.ErrFormat, "the name of tensor 0 is 65 bytes long, want at most 64"},
		{"duplicate name", []info{f32("a", 1, 0), f32("a", 1, 32)}, 64, gguf.ErrFormat, `tensor "a" appears twice`},
	}
	for _, c := range cases {
		_, err := read(layout(c.infos, c.data))
		if c.is == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", c.name, err, c.is, c.msg)
		}
	}
}

// TestPhantomTensor raises the tensor count by one so that the padding
// before the data reads as a tensor info: zeros spell an empty name, no
// dimensions, F32 and offset 0, a scalar over the first tensor's data.
func TestPhantomTensor(t *testing.T) {
	// A 9-byte name leaves 24 bytes of padding, exactly one info of zeros.
	b := layout([]info{{"abcdefghi", []uint64{4}, gguf.F32, 0}}, 16)
	if _, err := read(b); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(b[8:], 2)
	_, err := read(b)
	if !errors.Is(err, gguf.ErrFormat) || !strings.Contains(err.Error(), "the name of tensor 1 is empty") {
		t.Errorf("err = %v, want ErrFormat naming the empty name of tensor 1", err)
	}
	// The real model's infos end 24 bytes before its data too (README).
	p, err := modelfile.Find()
	if err != nil {
		return
	}
	if b, err = os.ReadFile(p); err != nil {
		return
	}
	binary.LittleEndian.PutUint64(b[8:], 49)
	_, err = read(b)
	if !errors.Is(err, gguf.ErrFormat) || !strings.Contains(err.Error(), "the name of tensor 48 is empty") {
		t.Errorf("real model with 49 tensors: err = %v, want ErrFormat naming the empty name of tensor 48", err)
	}
}

func TestBadKeys(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		is   error
		msg  string
	}{
		{"empty key", newRaw(0, 1).str("").u32(uint32(gguf.TypeUint8)).u8(1).u8(0).b, gguf.ErrFormat, "metadata key 0 is empty"},
		{"duplicate key", newRaw(0, 2).str("k").u32(uint32(gguf.TypeUint8)).u8(1).str("k").u32(uint32(gguf.TypeUint8)).u8(1).b, gguf.ErrFormat, `metadata key "k" appears twice`},
		{"key of 65536 bytes", newRaw(0, 1).str(string(make([]byte, 65536))).u32(uint32(gguf.TypeUint8)).u8(1).b, gguf.ErrFormat, "want at most 65535"},
		{"bad bool in array", newRaw(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeBool)).u64(3).u8(1).u8(0).u8(2).b, gguf.ErrFormat, `element 2 of metadata "k" is a bool with byte 2`},
		{"truncated nested string", newRaw(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeArray)).u64(2).
			u32(uint32(gguf.TypeString)).u64(0).u32(uint32(gguf.TypeString)).u64(1).u64(9).b, gguf.ErrTruncated, `reading element 0 of element 1 of metadata "k": need 9 bytes`},
	}
	for _, c := range cases {
		_, err := read(c.b)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", c.name, err, c.is, c.msg)
		}
	}
}
