package lava

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// This file saves and restores a cache: MarshalBinary, UnmarshalBinary,
// WriteTo and ReadFrom, in one versioned format (docs/format.md):
//
//	magic "LAVAKV\x00\x01", version uint32
//	configuration: sizes, key and value element types, attention scale, slack, reserve,
//	  and the policy by name with every parameter
//	per layer: tokens, query run, scoring state (entropy, CAKE statistics,
//	  budget, candidates, the joint ranking), the query ring,
//	  and per KV head the rows of keys and values as stored, positions,
//	  the candidates' ranking and H2O's sums
//	CRC-32C of everything before it
//
// All integers are little-endian; slices are a uint64 count then the
// elements. A reader checks every count against what the format allows,
// reads in pieces that grow with what has arrived and makes layers and heads
// as it reads them, so no allocation exceeds what the bytes read so far can
// justify, and it checks the restored state is one the cache could
// reach, so that a corrupted or lying input gives an error, never a panic.

const (
	formatMagic   = "LAVAKV\x00\x01"
	formatVersion = 2
	// readPiece bounds one allocation of the reader before its bytes have
	// arrived.
	readPiece = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns the cache's whole state in lava's format. A cache
// with a Custom policy cannot be saved (its Scorer is code).
func (c *KVCache) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// UnmarshalBinary replaces the cache's state with the one in data, written
// by MarshalBinary or WriteTo. The receiver may be a zero KVCache. On error
// the receiver is unchanged.
func (c *KVCache) UnmarshalBinary(data []byte) error {
	r := bytes.NewReader(data)
	n, _, err := readCache(r)
	if err != nil {
		return err
	}
	if r.Len() != 0 {
		return invalidf("UnmarshalBinary: %d bytes after the end of the cache", r.Len())
	}
	*c = *n
	return nil
}

// WriteTo writes the cache's whole state to w in lava's format, streaming,
// and returns the bytes written.
func (c *KVCache) WriteTo(w io.Writer) (int64, error) {
	if c.cfg.Policy.scorer != nil {
		return 0, invalidf("WriteTo: a Custom policy (%q) cannot be saved: its Scorer is code", c.cfg.Policy.name)
	}
	e := &encoder{crc: crc32.New(castagnoli)}
	e.w = bufio.NewWriterSize(io.MultiWriter(&countWriter{w: w, n: &e.n}, e.crc), 1<<16)
	e.bytes([]byte(formatMagic))
	e.u32(formatVersion)
	c.encodeConfig(e)
	for l := range c.layers {
		c.encodeLayer(e, &c.layers[l])
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	sum := e.crc.Sum32()
	if e.err == nil {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], sum)
		_, e.err = w.Write(b[:])
		e.n += 4
	}
	return e.n, e.err
}

// ReadFrom replaces the cache's state with the one r yields, written by
// WriteTo or MarshalBinary, and returns the bytes read. It reads exactly
// the cache's bytes, in many small reads: wrap a file in a bufio.Reader.
// The receiver may be a zero KVCache. On error the receiver is unchanged.
func (c *KVCache) ReadFrom(r io.Reader) (int64, error) {
	n, read, err := readCache(r)
	if err == nil {
		*c = *n
	}
	return read, err
}

// readCache reads a cache in lava's format from r.
func readCache(r io.Reader) (*KVCache, int64, error) {
	d := &decoder{r: r, crc: crc32.New(castagnoli)}
	if string(d.bytes(len(formatMagic))) != formatMagic { // compared before the next read
		return nil, d.n, d.fail("not a lava cache (bad magic)")
	}
	if v := d.u32(); d.err == nil && v != formatVersion {
		return nil, d.n, d.fail(fmt.Sprintf("format version %d, want %d", v, formatVersion))
	}
	cfg := d.config()
	if d.err != nil {
		return nil, d.n, d.err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, d.n, d.fail(err.Error())
	}
	// Layers and heads are made as they are read, so a configuration that
	// claims more than the input holds allocates only what was read.
	n := newShell(cfg, min(cfg.Layers, 64))
	for range cfg.Layers {
		var L layer
		if err := d.layer(n, &L); err != nil {
			return nil, d.n, err
		}
		n.layers = append(n.layers, L)
	}
	sum := d.crc.Sum32()
	var b [4]byte
	if _, err := io.ReadFull(d.r, b[:]); err != nil {
		return nil, d.n, d.fail("truncated before the checksum")
	}
	d.n += 4
	if binary.LittleEndian.Uint32(b[:]) != sum {
		return nil, d.n, d.fail("checksum mismatch")
	}
	return n, d.n, nil
}

// encodeConfig writes the configuration and the policy's parameters.
func (c *KVCache) encodeConfig(e *encoder) {
	f := &c.cfg
	for _, v := range []int{f.Layers, f.Heads, f.KVHeads, f.HeadDim, f.Budget, f.Window, f.DecodeReserve, f.DecodeSlack} {
		e.i64(int64(v))
	}
	e.bool(f.Redistribute)
	e.u32(uint32(f.KeyElement))
	e.u32(uint32(f.ValueElement))
	e.f64(f.AttentionScale)
	p := &f.Policy
	e.bytes64([]byte(p.name))
	e.u32(uint32(p.pool))
	e.i64(int64(p.kernel))
	e.u32(uint32(p.floor))
	for _, v := range []float64{p.alpha, p.beta, p.tau1, p.tau2, p.gamma} {
		e.f64(v)
	}
	e.i64(int64(p.sinks))
	e.u64(p.seed)
}

// config reads what encodeConfig wrote; New validates it.
func (d *decoder) config() Config {
	var f Config
	for _, v := range []*int{&f.Layers, &f.Heads, &f.KVHeads, &f.HeadDim, &f.Budget, &f.Window, &f.DecodeReserve, &f.DecodeSlack} {
		*v = d.int(math.MaxInt32)
	}
	f.Redistribute = d.bool()
	f.KeyElement, f.ValueElement = Element(d.u32()), Element(d.u32())
	f.AttentionScale = d.f64()
	name := string(d.bytes64(64)) // copied: the buffer is reused
	p, err := PolicyByName(name)
	if err != nil && d.err == nil {
		d.err = d.fail("policy: " + err.Error())
	}
	p.pool = Pooling(d.u32())
	p.kernel = d.int(maxKernel)
	p.floor = FloorMode(d.u32())
	for _, v := range []*float64{&p.alpha, &p.beta, &p.tau1, &p.tau2, &p.gamma} {
		*v = d.f64()
	}
	p.sinks = d.int(math.MaxInt32)
	p.seed = d.u64()
	f.Policy = p
	return f
}

// encodeLayer writes one layer's state.
func (c *KVCache) encodeLayer(e *encoder, L *layer) {
	c.settle(L)
	for _, v := range []int{L.tokens, L.qFrom, L.qNext, L.ringFrom, L.scoredAt, L.budget, L.attended} {
		e.i64(int64(v))
	}
	e.bool(L.ranked)
	e.f64(L.stats.entropy)
	e.f64(L.stats.dispersion)
	e.f64(L.stats.shift)
	e.ints(L.cand)
	e.ints(L.off)
	e.u64(uint64(len(L.winners)))
	for _, s := range L.winners {
		e.f32(s.score)
		e.u32(uint32(s.idx))
	}
	e.f32s(L.queries)
	for kv := range L.heads {
		h := &L.heads[kv]
		e.u64(uint64(h.len()))
		for _, r := range []*rows{&h.k, &h.v} {
			f32, f16, q := r.raw()
			e.f32s(f32)
			e.u16s(f16)
			e.u8s(q)
		}
		e.i32s(h.pos)
		e.i32s(h.order)
		e.f32s(h.heavy)
	}
}

// layer reads one layer's state into L of the new cache n and checks that
// it is a state the cache can be in.
func (d *decoder) layer(n *KVCache, L *layer) error {
	cfg := &n.cfg
	for _, v := range []*int{&L.tokens, &L.qFrom, &L.qNext, &L.ringFrom, &L.scoredAt, &L.budget, &L.attended} {
		*v = d.int(math.MaxInt32)
	}
	L.ranked = d.bool()
	L.stats.entropy, L.stats.dispersion, L.stats.shift = d.f64(), d.f64(), d.f64()
	L.cand = d.ints(cfg.KVHeads, math.MaxInt32)
	L.off = d.ints(cfg.KVHeads+1, math.MaxInt32)
	if nw := d.int(math.MaxInt32); nw > 0 {
		L.winners = make([]scored, 0, min(nw, 512))
		for range nw {
			s := scored{score: d.f32(), idx: int32(d.u32())}
			if d.err != nil {
				break
			}
			L.winners = append(L.winners, s)
		}
	}
	L.queries = d.f32s(cfg.queryRing() * cfg.Heads * cfg.HeadDim)
	d.rowsCap = L.tokens * cfg.HeadDim
	blocksCap := L.tokens * max(cfg.KeyElement.rowBytes(cfg.HeadDim), cfg.ValueElement.rowBytes(cfg.HeadDim))
	for kv := range cfg.KVHeads {
		L.heads = append(L.heads, n.emptyHead())
		h := &L.heads[kv]
		rows := d.int(math.MaxInt32)
		k32, k16, k8 := d.f32s(d.rowsCap), d.u16s(d.rowsCap), d.u8s(blocksCap)
		v32, v16, v8 := d.f32s(d.rowsCap), d.u16s(d.rowsCap), d.u8s(blocksCap)
		h.pos = d.i32s(L.tokens)
		h.order = d.i32s(L.tokens)
		h.heavy = d.f32s(L.tokens)
		if d.err != nil {
			return d.err
		}
		if err := h.k.restore(k32, k16, k8, rows, cfg.HeadDim); err != nil {
			return d.fail(fmt.Sprintf("KV head %d keys: %v", kv, err))
		}
		if err := h.v.restore(v32, v16, v8, rows, cfg.HeadDim); err != nil {
			return d.fail(fmt.Sprintf("KV head %d values: %v", kv, err))
		}
		if err := checkHead(cfg, L, h, rows); err != nil {
			return d.fail(fmt.Sprintf("KV head %d: %v", kv, err))
		}
	}
	if d.err != nil {
		return d.err
	}
	if err := checkLayer(cfg, L); err != nil {
		return d.fail(err.Error())
	}
	L.limit = n.decodeLimit(L) // derived, not saved
	return nil
}

// checkHead tells whether a restored head's positions, sums and ranking are
// ones the cache could hold (its rows are checked by their storage).
func checkHead(cfg *Config, L *layer, h *head, rows int) error {
	switch {
	case len(h.pos) != rows:
		return fmt.Errorf("%d rows but %d positions", rows, len(h.pos))
	case cfg.Policy.accumulates && len(h.heavy) != rows, !cfg.Policy.accumulates && len(h.heavy) != 0:
		return fmt.Errorf("%d sums for %d rows", len(h.heavy), rows)
	case !finite(h.heavy):
		return errors.New("a NaN or infinite sum")
	case len(h.order) > rows:
		return fmt.Errorf("%d ranked rows of %d", len(h.order), rows)
	}
	for i, p := range h.pos {
		if p < 0 || int(p) >= L.tokens || i > 0 && p <= h.pos[i-1] {
			return fmt.Errorf("position %d at row %d: positions must increase within [0, %d)", p, i, L.tokens)
		}
	}
	// The ranking is a permutation of the first len(order) rows.
	seen := make([]bool, len(h.order))
	for _, r := range h.order {
		if r < 0 || int(r) >= len(seen) || seen[r] {
			return fmt.Errorf("ranking entry %d is not a permutation of the first %d rows", r, len(seen))
		}
		seen[r] = true
	}
	return nil
}

// checkLayer tells whether a restored layer's counters and scoring state
// agree with each other.
func checkLayer(cfg *Config, L *layer) error {
	ring := cfg.queryRing() * cfg.Heads * cfg.HeadDim
	switch {
	case L.qFrom > L.qNext || L.qNext > L.tokens || L.ringFrom > L.tokens || L.scoredAt > L.tokens || L.attended > L.tokens:
		return fmt.Errorf("counters out of order: queries %d…%d, scored at %d, attended %d, tokens %d", L.qFrom, L.qNext, L.scoredAt, L.attended, L.tokens)
	case len(L.queries) != 0 && len(L.queries) != ring, L.qNext > L.qFrom && len(L.queries) == 0:
		return fmt.Errorf("%d query values, want 0 or %d", len(L.queries), ring)
	case !finite(L.queries):
		return errors.New("a NaN or infinite query")
	case math.IsNaN(L.stats.entropy) || math.IsInf(L.stats.entropy, 0) || math.IsNaN(L.stats.dispersion) || math.IsNaN(L.stats.shift) || math.IsInf(L.stats.dispersion, 0) || math.IsInf(L.stats.shift, 0):
		return errors.New("non-finite layer statistics")
	case !L.ranked && (len(L.cand) != 0 || len(L.off) != 0 || len(L.winners) != 0 || L.budget != 0):
		return errors.New("scoring state on a layer never scored")
	case L.ranked && (len(L.cand) != cfg.KVHeads || len(L.off) != cfg.KVHeads+1):
		return fmt.Errorf("%d candidate counts and %d offsets, want %d and %d", len(L.cand), len(L.off), cfg.KVHeads, cfg.KVHeads+1)
	}
	if L.ranked {
		if L.off[0] != 0 {
			return errors.New("offsets must start at 0")
		}
		for kv, m := range L.cand {
			if L.off[kv+1] != L.off[kv]+m || L.off[kv+1] > math.MaxInt32 {
				return fmt.Errorf("offset %d ≠ %d + %d", L.off[kv+1], L.off[kv], m)
			}
		}
		total := L.off[cfg.KVHeads]
		for _, s := range L.winners {
			if s.idx < 0 || int(s.idx) >= total || s.score != s.score {
				return fmt.Errorf("ranked entry %d (score %v) outside the %d candidates", s.idx, s.score, total)
			}
		}
		if len(L.winners) > total {
			return fmt.Errorf("%d ranked entries for %d candidates", len(L.winners), total)
		}
	}
	return nil
}

// encoder writes little-endian values, remembering the first error.
type encoder struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	err error
	buf []byte
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	*c.n += int64(n)
	return n, err
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) put(n int, f func([]byte)) {
	var b [8]byte
	f(b[:n])
	e.bytes(b[:n])
}

func (e *encoder) u32(v uint32) { e.put(4, func(b []byte) { binary.LittleEndian.PutUint32(b, v) }) }
func (e *encoder) u64(v uint64) { e.put(8, func(b []byte) { binary.LittleEndian.PutUint64(b, v) }) }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }
func (e *encoder) f32(v float32) {
	e.u32(math.Float32bits(v))
}
func (e *encoder) f64(v float64) { e.u64(math.Float64bits(v)) }

func (e *encoder) bool(v bool) {
	if v {
		e.bytes([]byte{1})
	} else {
		e.bytes([]byte{0})
	}
}

func (e *encoder) bytes64(b []byte) {
	e.u64(uint64(len(b)))
	e.bytes(b)
}

func (e *encoder) ints(x []int) {
	e.u64(uint64(len(x)))
	for _, v := range x {
		e.i64(int64(v))
	}
}

// elems writes a count and then the elements of x, through a reused
// buffer in pieces (encoding/binary's slice fast path, no reflection).
func elems[T float32 | uint16 | int32 | uint8](e *encoder, x []T) {
	e.u64(uint64(len(x)))
	const per = 1 << 12
	for lo := 0; lo < len(x) && e.err == nil; lo += per {
		var err error
		e.buf, err = binary.Append(e.buf[:0], binary.LittleEndian, x[lo:min(len(x), lo+per)])
		if err != nil && e.err == nil {
			e.err = err
		}
		e.bytes(e.buf)
	}
}

func (e *encoder) f32s(x []float32) { elems(e, x) }
func (e *encoder) u16s(x []uint16)  { elems(e, x) }
func (e *encoder) i32s(x []int32)   { elems(e, x) }
func (e *encoder) u8s(x []uint8)    { elems(e, x) }

// decoder reads what encoder wrote, remembering the first error; after an
// error every read returns zeros.
type decoder struct {
	r       io.Reader
	crc     hash.Hash32
	n       int64
	err     error
	rowsCap int    // most elements a head's key or value storage may hold
	buf     []byte // the bytes of the last read
}

func (d *decoder) fail(msg string) error {
	if d.err == nil {
		d.err = invalidf("restore: %s (at byte %d)", msg, d.n)
	}
	return d.err
}

// bytes reads n bytes, n at most a small fixed size or readPiece, into a
// buffer that the next read reuses.
func (d *decoder) bytes(n int) []byte {
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	b := d.buf[:n]
	if d.err != nil {
		clear(b)
		return b
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail("truncated")
		clear(b)
		return b
	}
	d.crc.Write(b)
	d.n += int64(n)
	return b
}

func (d *decoder) u32() uint32  { return binary.LittleEndian.Uint32(d.bytes(4)) }
func (d *decoder) u64() uint64  { return binary.LittleEndian.Uint64(d.bytes(8)) }
func (d *decoder) f32() float32 { return math.Float32frombits(d.u32()) }
func (d *decoder) f64() float64 { return math.Float64frombits(d.u64()) }

func (d *decoder) bool() bool {
	switch d.bytes(1)[0] {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("a boolean other than 0 or 1")
	return false
}

// int reads a signed integer and checks it is in [0, most].
func (d *decoder) int(most int) int {
	v := int64(d.u64())
	if v < 0 || v > int64(most) {
		d.fail(fmt.Sprintf("value %d outside [0, %d]", v, most))
		return 0
	}
	return int(v)
}

func (d *decoder) bytes64(most int) []byte {
	return d.bytes(d.int(most))
}

func (d *decoder) ints(exact, most int) []int {
	n := d.int(exact)
	if n != 0 && n != exact {
		d.fail(fmt.Sprintf("%d values, want 0 or %d", n, exact))
		return nil
	}
	var x []int
	for range n {
		x = append(x, d.int(most))
	}
	return x
}

// readElems reads a count of at most most elements of size bytes, in
// pieces of at most readPiece bytes, so the slice grows only as bytes
// arrive.
func readElems[T float32 | uint16 | int32 | uint8](d *decoder, most, size int) []T {
	n := d.int(most)
	if d.err != nil || n == 0 {
		return nil
	}
	// Pieces grow with what has arrived, from 4 KiB up to readPiece, so a
	// count the bytes do not back allocates at most twice what was read.
	x := make([]T, 0, min(n, 4096/size))
	for len(x) < n && d.err == nil {
		m := min(max(len(x), 4096/size), readPiece/size, n-len(x))
		b := d.bytes(m * size)
		x = slices.Grow(x, m)[:len(x)+m]
		if _, err := binary.Decode(b, binary.LittleEndian, x[len(x)-m:]); err != nil {
			d.fail(err.Error())
		}
	}
	if d.err != nil {
		return nil
	}
	return slices.Clip(x)
}

func (d *decoder) f32s(most int) []float32 { return readElems[float32](d, most, 4) }
func (d *decoder) u16s(most int) []uint16  { return readElems[uint16](d, most, 2) }
func (d *decoder) i32s(most int) []int32   { return readElems[int32](d, most, 4) }
func (d *decoder) u8s(most int) []uint8    { return readElems[uint8](d, most, 1) }
