package gguf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/lavakv/lava/examples/gguf"
	"github.com/lavakv/lava/examples/internal/ggufwrite"
	"github.com/lavakv/lava/examples/internal/modelfile"
)

// metadata has a value of every type, as the writer takes it and
// Value.Raw returns it.
var metadata = []struct {
	key string
	typ gguf.Type
	val any
}{
	{"u8", gguf.TypeUint8, uint8(200)}, {"i8", gguf.TypeInt8, int8(-100)},
	{"u16", gguf.TypeUint16, uint16(60000)}, {"i16", gguf.TypeInt16, int16(-30000)},
	{"u32", gguf.TypeUint32, uint32(4000000000)}, {"i32", gguf.TypeInt32, int32(-2000000000)},
	{"f32", gguf.TypeFloat32, float32(1.5)}, {"bool", gguf.TypeBool, true},
	{"str", gguf.TypeString, "héllo"}, {"u64", gguf.TypeUint64, uint64(1) << 63},
	{"i64", gguf.TypeInt64, int64(-1) << 62}, {"f64", gguf.TypeFloat64, math.Pi},
	{"arr.str", gguf.TypeArray, gguf.Array{Elem: gguf.TypeString, Values: []string{"a", "", "ccc"}}},
	{"arr.i32", gguf.TypeArray, gguf.Array{Elem: gguf.TypeInt32, Values: []int32{-1, 2, -3}}},
	{"arr.bool", gguf.TypeArray, gguf.Array{Elem: gguf.TypeBool, Values: []bool{true, false}}},
	{"arr.f64", gguf.TypeArray, gguf.Array{Elem: gguf.TypeFloat64, Values: []float64{0.5}}},
	{"arr.nested", gguf.TypeArray, gguf.Array{Elem: gguf.TypeArray, Values: []gguf.Array{
		{Elem: gguf.TypeUint16, Values: []uint16{1, 2}}, {Elem: gguf.TypeString, Values: []string{"x"}}}}},
}

// coordData fills n values that encode their index, so a misplaced element
// shows in its value.
func coordData(n int, scale float32) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = scale * float32(i%97-48) / 7
	}
	return d
}

// synthetic returns a small file with the metadata above and one tensor of
// every supported type.
func synthetic(align uint32) *ggufwrite.File {
	f := &ggufwrite.File{Metadata: []ggufwrite.KV{{Key: "general.alignment", Value: align}}}
	for _, m := range metadata {
		f.Metadata = append(f.Metadata, ggufwrite.KV{Key: m.key, Value: m.val})
	}
	for _, c := range []struct {
		name string
		typ  gguf.TensorType
		dims []uint64
	}{
		{"f32", gguf.F32, []uint64{3, 5}},
		{"f16", gguf.F16, []uint64{7, 2, 3}},
		{"bf16", gguf.BF16, []uint64{9}},
		{"q8", gguf.Q8_0, []uint64{64, 3}},
	} {
		n := 1
		for _, d := range c.dims {
			n *= int(d)
		}
		f.Tensors = append(f.Tensors, ggufwrite.Tensor{Name: c.name, Dims: c.dims, Type: c.typ, Data: coordData(n, 1)})
	}
	return f
}

func encode(tb testing.TB, f *ggufwrite.File) []byte {
	b, err := f.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func read(b []byte) (*gguf.File, error) { return gguf.Read(bytes.NewReader(b), int64(len(b))) }

func TestSyntheticRoundTrip(t *testing.T) {
	for _, align := range []uint32{32, 64, 1, 8} {
		t.Run(fmt.Sprint("align=", align), func(t *testing.T) {
			src := synthetic(align)
			f, err := read(encode(t, src))
			if err != nil {
				t.Fatal(err)
			}
			if f.Alignment != uint64(align) || f.DataOffset%int64(align) != 0 {
				t.Errorf("Alignment = %d, DataOffset = %d, want alignment %d", f.Alignment, f.DataOffset, align)
			}
			if len(f.Metadata) != 1+len(metadata) {
				t.Fatalf("read %d metadata entries, wrote %d", len(f.Metadata), 1+len(metadata))
			}
			for i, want := range metadata {
				got := f.Metadata[1+i] // after general.alignment
				if got.Key != want.key || got.Value.Type != want.typ || !reflect.DeepEqual(got.Value.Raw(), want.val) {
					t.Errorf("metadata %d = %s %v %#v, want %s %v %#v", 1+i, got.Key, got.Value.Type, got.Value.Raw(), want.key, want.typ, want.val)
				}
			}
			for _, want := range src.Tensors {
				info, ok := f.Tensor(want.Name)
				if !ok || info.Type != want.Type || !reflect.DeepEqual(info.Dims, want.Dims) {
					t.Fatalf("tensor %q: info %+v, want type %v dims %v", want.Name, info, want.Type, want.Dims)
				}
				got, err := f.ReadTensor(want.Name)
				if err != nil {
					t.Fatal(err)
				}
				checkDequant(t, want.Name, want.Type, want.Data, got)
			}
		})
	}
}

// checkDequant checks each element against the rounding bound of its type:
// F32 exact; F16 half an ulp, |e| ≤ 2⁻¹¹|x| for normal values and 2⁻²⁵
// below 2⁻¹⁴; BF16 |e| ≤ 2⁻⁸|x|; Q8_0 half a quant step plus the F16
// rounding of the scale, |e| ≤ d/2 + 127·|d − f16(d)| ≤ amax/254 + amax·2⁻¹¹.
func checkDequant(tb testing.TB, name string, typ gguf.TensorType, want, got []float32) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("tensor %q: %d values, want %d", name, len(got), len(want))
	}
	for i, x := range want {
		var bound float64
		ax := math.Abs(float64(x))
		switch typ {
		case gguf.F16:
			bound = max(ax*0x1p-11, 0x1p-25)
		case gguf.BF16:
			bound = ax * 0x1p-8
		case gguf.Q8_0:
			var amax float64
			for _, y := range want[i/32*32 : i/32*32+32] {
				amax = max(amax, math.Abs(float64(y)))
			}
			bound = amax/254 + amax*0x1p-11
		}
		if e := math.Abs(float64(got[i]) - float64(x)); e > bound {
			tb.Fatalf("tensor %q (%v) element %d = %v, want %v within %g", name, typ, i, got[i], x, bound)
		}
	}
}

func TestHalfToFloatExhaustive(t *testing.T) {
	for h := range uint32(0x10000) {
		got := gguf.HalfToFloat(uint16(h))
		sign, exp, man := h>>15, int(h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case exp == 0x1f && man == 0:
			want = math.Inf(1)
		case exp == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("HalfToFloat(%#04x) = %v, want NaN", h, got)
			}
			continue
		case exp == 0:
			want = math.Ldexp(man/1024, -14)
		default:
			want = math.Ldexp(1+man/1024, exp-15)
		}
		if sign == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign == 1) {
			t.Fatalf("HalfToFloat(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func TestQ8BlockLayout(t *testing.T) {
	// One hand-made block: scale 0.5 (F16 0x3800), quants −128, −1, 0, 1 … 28.
	raw := binary.LittleEndian.AppendUint16(nil, 0x3800)
	want := make([]float32, 32)
	for i := range 32 {
		q := int8(i - 3)
		if i == 0 {
			q = -128
		}
		raw = append(raw, byte(q))
		want[i] = 0.5 * float32(q)
	}
	b := encode(t, &ggufwrite.File{Tensors: []ggufwrite.Tensor{{Name: "q", Dims: []uint64{32}, Type: gguf.Q8_0, Raw: raw}}})
	f, err := read(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadTensor("q")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Q8_0 block = %v, want %v", got, want)
	}
}

// TestTruncated cuts a valid file at every length: each prefix must give
// ErrTruncated, since some tensor or header field is always missing.
func TestTruncated(t *testing.T) {
	b := encode(t, synthetic(32))
	g, err := read(b)
	if err != nil {
		t.Fatal(err)
	}
	// The writer pads after the last tensor; only the data is required.
	end := 0
	for _, ti := range g.Tensors {
		end = max(end, int(g.DataOffset)+int(ti.Offset+ti.Size))
	}
	for n := range end {
		_, err := read(b[:n])
		if !errors.Is(err, gguf.ErrTruncated) {
			t.Fatalf("file cut at %d of %d bytes: err = %v, want ErrTruncated", n, len(b), err)
		}
	}
	// The message says what was being read.
	_, err = read(b[:30])
	if err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("cut inside the metadata: err = %v, want it to name the metadata", err)
	}
}

// shortReader claims more bytes than it holds, like a file shrunk after
// its size was taken.
type shortReader struct{ b []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(r.b).ReadAt(p, off)
}

func TestSourceShorterThanSize(t *testing.T) {
	b := encode(t, synthetic(32))
	f, err := gguf.Read(shortReader{b[:len(b)-40]}, int64(len(b)))
	if err != nil {
		return // noticed while reading the header: fine
	}
	for _, ti := range f.Tensors {
		if _, err := f.ReadTensor(ti.Name); err != nil {
			return
		}
	}
	t.Error("a source 40 bytes shorter than its size read without error")
}

func TestBadHeaders(t *testing.T) {
	good := encode(t, synthetic(32))
	patch := func(off int, p ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], p)
		return b
	}
	le64 := func(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }
	cases := []struct {
		name string
		b    []byte
		is   error
		msg  string
	}{
		{"wrong magic", patch(0, 'G', 'G', 'M', 'L'), gguf.ErrFormat, `magic "GGML"`},
		{"version 1", patch(4, 1, 0, 0, 0), gguf.ErrFormat, "version 1"},
		{"huge tensor count", patch(8, le64(1<<62)...), gguf.ErrTruncated, "tensor count"},
		{"huge metadata count", patch(16, le64(1<<62)...), gguf.ErrTruncated, "metadata count"},
		{"huge key length", patch(24, le64(1<<62)...), gguf.ErrFormat, "metadata key 0 is 4611686018427387904 bytes long, want at most 65535"},
		{"key past the end", patch(24, le64(65535)...)[:1000], gguf.ErrTruncated, "metadata key 0"},
		{"unknown value type", patch(24+8+len("general.alignment"), 13, 0, 0, 0), gguf.ErrFormat, "value type 13"},
		{"empty", nil, gguf.ErrTruncated, "magic"},
	}
	for _, c := range cases {
		_, err := read(c.b)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", c.name, err, c.is, c.msg)
		}
	}
}

func TestLyingArrayLength(t *testing.T) {
	// An array of strings claiming 2⁴⁰ elements in a file of a few bytes
	// must fail before allocating for them.
	f := &ggufwrite.File{Metadata: []ggufwrite.KV{{Key: "a", Value: gguf.Array{Elem: gguf.TypeString, Values: []string{"x"}}}}}
	b := encode(t, f)
	off := 24 + 8 + 1 + 4 + 4 // header, key, value type, element type
	binary.LittleEndian.PutUint64(b[off:], 1<<40)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := read(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, gguf.ErrTruncated) || !strings.Contains(err.Error(), `metadata "a"`) {
		t.Errorf("err = %v, want ErrTruncated naming metadata \"a\"", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("reading a %d-byte file allocated %d bytes", len(b), n)
	}
}

func TestTensorErrors(t *testing.T) {
	cases := []struct {
		name   string
		tensor ggufwrite.Tensor
		is     error
		msg    string
	}{
		{"unsupported Q4_K", ggufwrite.Tensor{Name: "w", Dims: []uint64{256}, Type: 12, Raw: make([]byte, 144)}, gguf.ErrUnsupported, `tensor "w" has type Q4_K (12)`},
		{"unknown type", ggufwrite.Tensor{Name: "w", Dims: []uint64{4}, Type: 99, Raw: make([]byte, 16)}, gguf.ErrUnsupported, "unknown ggml type 99"},
		{"Q8_0 row not a block multiple", ggufwrite.Tensor{Name: "w", Dims: []uint64{16, 2}, Type: gguf.Q8_0, Raw: make([]byte, 34)}, gguf.ErrFormat, "multiple of the block size 32"},
		{"5 dimensions", ggufwrite.Tensor{Name: "w", Dims: []uint64{1, 1, 1, 1, 1}, Type: gguf.F32, Raw: make([]byte, 4)}, gguf.ErrFormat, "5 dimensions"},
		{"data past the end", ggufwrite.Tensor{Name: "w", Dims: []uint64{100}, Type: gguf.F32, Raw: make([]byte, 32)}, gguf.ErrTruncated, `tensor "w" needs data bytes [0, 400)`},
		{"dims overflow", ggufwrite.Tensor{Name: "w", Dims: []uint64{1 << 40, 1 << 40}, Type: gguf.F32, Raw: make([]byte, 4)}, gguf.ErrFormat, "more elements than the file can hold"},
	}
	for _, c := range cases {
		b := encode(t, &ggufwrite.File{Tensors: []ggufwrite.Tensor{c.tensor}})
		_, err := read(b)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", c.name, err, c.is, c.msg)
		}
	}
}

func TestRealModel(t *testing.T) {
	path := modelfile.PathForTest(t)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Facts from shared/models/README.md.
	if f.Version != 3 || len(f.Tensors) != 48 || f.DataOffset != 14176 {
		t.Errorf("version %d, %d tensors, data at %d; want 3, 48, 14176", f.Version, len(f.Tensors), f.DataOffset)
	}
	info, _ := f.Tensor("blk.4.ffn_down.weight")
	if info == nil || !reflect.DeepEqual(info.Dims, []uint64{172, 64}) || info.Type != gguf.F32 {
		t.Errorf("blk.4.ffn_down.weight = %+v, want F32 [172 64]", info)
	}
	// The output layer is the embedding stored twice (README).
	emb, err := f.ReadTensor("token_embd.weight")
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.ReadTensor("output.weight")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(emb, out) {
		t.Error("token_embd.weight and output.weight differ, want the tied copies equal")
	}
}

func FuzzRead(f *testing.F) {
	f.Add(encode(f, synthetic(32)))
	f.Add(encode(f, synthetic(1)))
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	// The real header is a seed when the model is at hand; fuzzing works
	// without it.
	if p, err := modelfile.Find(); err == nil {
		if b, err := os.ReadFile(p); err == nil && len(b) > 16384 {
			f.Add(b[:16384]) // the header and the start of the data
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var g *gguf.File
		var err error
		if n := allocated(func() { g, err = read(b) }); n > allocLimit(len(b)) {
			t.Fatalf("reading %d bytes allocated %d, want ≤ %d (err = %v)", len(b), n, allocLimit(len(b)), err)
		}
		if err != nil {
			if !errors.Is(err, gguf.ErrTruncated) && !errors.Is(err, gguf.ErrFormat) && !errors.Is(err, gguf.ErrUnsupported) {
				t.Fatalf("error %v wraps none of ErrTruncated, ErrFormat, ErrUnsupported", err)
			}
			return
		}
		for _, ti := range g.Tensors {
			data, err := g.ReadTensor(ti.Name)
			if err != nil {
				t.Fatalf("tensor %q accepted by Read fails to load: %v", ti.Name, err)
			}
			if uint64(len(data)) != ti.Elements() {
				t.Fatalf("tensor %q: %d values, want %d", ti.Name, len(data), ti.Elements())
			}
		}
	})
}
