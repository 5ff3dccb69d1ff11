// Package tokenizer implements the SentencePiece-BPE tokenizer with byte
// fallback that Llama GGUF files carry in their tokenizer.ggml.* metadata,
// the way llama2.c runs it: one token per UTF-8 code point (bytes for code
// points missing from the vocabulary), then greedy merges of the adjacent
// pair with the best score.
package tokenizer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lavakv/lava/examples/gguf"
)

// Token types of tokenizer.ggml.token_type (SentencePiece's, as llama.cpp
// numbers them: 0 undefined, 4 user-defined and 5 unused merge like normal
// tokens).
const (
	typeNormal  = 1
	typeUnknown = 2
	typeControl = 3
	typeByte    = 6
	maxType     = 6
)

// spaceMark is how SentencePiece spells a space inside a piece.
const spaceMark = "\u2581"

// Tokenizer encodes text to token ids and back.
type Tokenizer struct {
	pieces []string  // decoded text of each token; spaces are real spaces
	scores []float32 // merge priority: higher merges first
	byteOf []int     // the raw byte a byte token stands for, or -1
	// special marks control and unknown tokens, which decode to nothing.
	special []bool
	// ids maps the text of every mergeable (normal) token to its id.
	ids map[string]int
	// maxMerged is the length of the longest text in ids: no longer pair
	// can join, so merge need not look it up.
	maxMerged int
	// byteID[b] is the token of raw byte b, or -1.
	byteID [256]int

	BOS, EOS int
}

// New builds a tokenizer from a vocabulary: pieces (with U+2581 for a
// space, as stored in GGUF), their merge scores and SentencePiece token
// types (nil: byte tokens are recognised by their "<0xNN>" spelling, ids
// below 3 are control tokens, the rest normal).
func New(pieces []string, scores []float32, types []int32, bos, eos int) (*Tokenizer, error) {
	n := len(pieces)
	if len(scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens, want one per token", len(scores), n)
	}
	if types != nil && len(types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens, want one per token", len(types), n)
	}
	if bos < 0 || bos >= n || eos < 0 || eos >= n {
		return nil, fmt.Errorf("tokenizer: BOS = %d, EOS = %d, want ids below the vocabulary size %d", bos, eos, n)
	}
	// Merges compare scores: a NaN compares false with everything, so the
	// order of merges would depend on where it sits.
	for id, sc := range scores {
		if math.IsNaN(float64(sc)) || math.IsInf(float64(sc), 0) {
			return nil, fmt.Errorf("tokenizer: token %d (%q) has score %v, want a finite number", id, pieces[id], sc)
		}
	}
	for id, typ := range types {
		if typ < 0 || typ > maxType {
			return nil, fmt.Errorf("tokenizer: token %d (%q) has type %d, want 0 to %d", id, pieces[id], typ, maxType)
		}
	}
	t := &Tokenizer{
		pieces:  make([]string, n),
		scores:  scores,
		byteOf:  make([]int, n),
		special: make([]bool, n),
		ids:     make(map[string]int, n),
		BOS:     bos,
		EOS:     eos,
	}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for id, p := range pieces {
		typ := int32(typeNormal)
		if types != nil {
			typ = types[id]
		} else if id < 3 {
			typ = typeControl
		} else if _, ok := parseByte(p); ok {
			typ = typeByte
		}
		t.byteOf[id] = -1
		t.pieces[id] = strings.ReplaceAll(p, spaceMark, " ")
		switch typ {
		case typeByte:
			b, ok := parseByte(p)
			if !ok {
				return nil, fmt.Errorf("tokenizer: byte token %d is %q, want <0xNN>", id, p)
			}
			t.byteOf[id] = int(b)
			if t.byteID[b] < 0 {
				t.byteID[b] = id
			}
		case typeControl, typeUnknown:
			// Never produced by merges, never printed.
			t.special[id] = true
		default:
			// Only normal (and user-defined) tokens take part in merges,
			// so text that spells "<s>" or "<0x41>" stays text.
			if _, dup := t.ids[t.pieces[id]]; !dup {
				t.ids[t.pieces[id]] = id
				t.maxMerged = max(t.maxMerged, len(t.pieces[id]))
			}
		}
	}
	for b, id := range t.byteID {
		if id < 0 {
			return nil, fmt.Errorf("tokenizer: no byte token for byte 0x%02X; byte fallback needs all 256", b)
		}
	}
	return t, nil
}

// FromGGUF builds the tokenizer from a GGUF file's tokenizer.ggml.* metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	if m, err := f.String("tokenizer.ggml.model"); err != nil {
		return nil, err
	} else if m != "llama" {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.model = %q, want \"llama\" (SentencePiece BPE)", m)
	}
	toks, err := f.Array("tokenizer.ggml.tokens", gguf.TypeString)
	if err != nil {
		return nil, err
	}
	sc, err := f.Array("tokenizer.ggml.scores", gguf.TypeFloat32)
	if err != nil {
		return nil, err
	}
	var types []int32
	if _, ok := f.Value("tokenizer.ggml.token_type"); ok {
		a, err := f.Array("tokenizer.ggml.token_type", gguf.TypeInt32)
		if err != nil {
			return nil, err
		}
		types = a.Values.([]int32)
	}
	bos, eos := uint64(1), uint64(2)
	if _, ok := f.Value("tokenizer.ggml.bos_token_id"); ok {
		if bos, err = f.Uint("tokenizer.ggml.bos_token_id"); err != nil {
			return nil, err
		}
	}
	if _, ok := f.Value("tokenizer.ggml.eos_token_id"); ok {
		if eos, err = f.Uint("tokenizer.ggml.eos_token_id"); err != nil {
			return nil, err
		}
	}
	pieces := toks.Values.([]string)
	n := uint64(len(pieces))
	if bos >= n || eos >= n {
		return nil, fmt.Errorf("tokenizer: BOS = %d, EOS = %d, want ids below the vocabulary size %d", bos, eos, n)
	}
	return New(pieces, sc.Values.([]float32), types, int(bos), int(eos))
}

// parseByte reads a byte token's spelling, "<0xNN>".
func parseByte(p string) (byte, bool) {
	if len(p) != 6 || !strings.HasPrefix(p, "<0x") || p[5] != '>' {
		return 0, false
	}
	b, err := strconv.ParseUint(p[3:5], 16, 8)
	return byte(b), err == nil
}

// Size returns the vocabulary size.
func (t *Tokenizer) Size() int { return len(t.pieces) }

// Encode returns BOS followed by the tokens of text. Non-empty text gets a
// leading space first (SentencePiece's dummy prefix), which Decode removes.
// Any byte string round-trips: bytes that are not part of a code point in
// the vocabulary become byte tokens. Encode takes O(n log n) time for n
// bytes of text, which must be shorter than 2 GiB.
func (t *Tokenizer) Encode(text string) []int {
	return t.merge(t.codePoints(text))
}

// codePoints returns BOS, then a token per code point of the text with its
// dummy prefix, or a byte token per byte of code points (and invalid
// UTF-8) the vocabulary lacks.
func (t *Tokenizer) codePoints(text string) []int {
	if text == "" {
		return []int{t.BOS}
	}
	text = " " + text
	ids := make([]int, 1, 1+len(text)) // at most a token per byte
	ids[0] = t.BOS
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r != utf8.RuneError || size > 1 { // a valid code point
			if id, ok := t.ids[text[i:i+size]]; ok {
				ids = append(ids, id)
				i += size
				continue
			}
		}
		for j := i; j < i+size; j++ {
			ids = append(ids, t.byteID[text[j]])
		}
		i += size
	}
	return ids
}

// merge repeatedly joins the adjacent pair of tokens (after BOS) whose
// concatenation is a vocabulary token with the highest score, the leftmost
// among equals, until no pair joins: llama2.c's algorithm, which rescans
// the whole sequence for every merge. Here the tokens form a linked list,
// and the pair each token makes with its successor sits in a max-heap
// ordered by score, then position, that is indexed by token, so each merge
// costs O(log n): join the best pair, drop the joined token's pair, update
// the pairs of the token and its predecessor.
func (t *Tokenizer) merge(ids []int) []int {
	n := len(ids)
	if n < 3 {
		return ids // BOS and at most one token: nothing to join
	}
	if n > math.MaxInt32 {
		panic("tokenizer: Encode of a text of 2 GiB or more")
	}
	// next[i] is the position of the token after i, or −1.
	next := make([]int32, n)
	prev := make([]int32, n)
	for i := range next {
		next[i], prev[i] = int32(i+1), int32(i-1)
	}
	next[n-1] = -1
	// joined[i] is the token that i and next[i] join into, when i is in
	// the heap.
	joined := make([]int32, n)
	h := newPairHeap(n)
	var buf []byte
	// pairOf returns the heap key of the pair at left, or false when it
	// does not join.
	pairOf := func(left int32) (uint64, bool) {
		right := next[left]
		if right < 0 {
			return 0, false
		}
		a, b := t.piece(ids[left]), t.piece(ids[right])
		if len(a)+len(b) > t.maxMerged {
			return 0, false
		}
		buf = append(append(buf[:0], a...), b...)
		id, ok := t.ids[string(buf)]
		if !ok {
			return 0, false
		}
		joined[left] = int32(id)
		return pairKey(t.scores[id], left), true
	}
	for i := int32(1); i+1 < int32(n); i++ {
		if k, ok := pairOf(i); ok {
			h.add(i, k)
		}
	}
	h.heapify()
	update := func(left int32) {
		if k, ok := pairOf(left); ok {
			h.set(left, k)
		} else {
			h.remove(left)
		}
	}
	for len(h.keys) > 0 {
		left := keyPos(h.keys[0])
		right := next[left]
		ids[left] = int(joined[left])
		h.remove(right)
		after := next[right]
		next[left] = after
		if after >= 0 {
			prev[after] = left
		}
		if before := prev[left]; before >= 1 {
			update(before)
		}
		update(left)
	}
	out := ids[:1]
	for i := next[0]; i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// pairKey orders pairs as merge does, by score, then leftmost first, as
// one integer: the score's bits made monotone in the high half, the
// complement of the position in the low half. Scores are finite (New
// checks), and −0 counts as +0, as the comparison of floats has it.
func pairKey(score float32, pos int32) uint64 {
	if score == 0 {
		score = 0
	}
	b := math.Float32bits(score)
	if b&(1<<31) != 0 {
		b = ^b
	} else {
		b |= 1 << 31
	}
	return uint64(b)<<32 | uint64(^uint32(pos))
}

// keyPos returns the position of a pairKey.
func keyPos(k uint64) int32 { return int32(^uint32(k)) }

// pairHeap is a binary max-heap of pair keys with the index of each
// position's key, so that a pair can be updated or removed in place.
type pairHeap struct {
	keys []uint64
	at   []int32 // at[pos] is the index of pos's key in keys, or −1
}

func newPairHeap(n int) *pairHeap {
	h := &pairHeap{keys: make([]uint64, 0, n), at: make([]int32, n)}
	for i := range h.at {
		h.at[i] = -1
	}
	return h
}

// add appends a key without restoring the heap order; heapify restores it.
func (h *pairHeap) add(pos int32, k uint64) {
	h.at[pos] = int32(len(h.keys))
	h.keys = append(h.keys, k)
}

func (h *pairHeap) heapify() {
	for i := len(h.keys)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// set gives pos the key k, adding it if pos has none.
func (h *pairHeap) set(pos int32, k uint64) {
	i := int(h.at[pos])
	if i < 0 {
		h.add(pos, k)
		h.up(len(h.keys) - 1)
		return
	}
	old := h.keys[i]
	h.keys[i] = k
	if k > old {
		h.up(i)
	} else {
		h.down(i)
	}
}

// remove drops pos's key, if it has one.
func (h *pairHeap) remove(pos int32) {
	i := int(h.at[pos])
	if i < 0 {
		return
	}
	h.at[pos] = -1
	last := len(h.keys) - 1
	if i != last {
		h.keys[i] = h.keys[last]
		h.at[keyPos(h.keys[i])] = int32(i)
	}
	h.keys = h.keys[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
}

// up and down move the key at i towards the root or the leaves until the
// heap is ordered, shifting the keys they pass over by one place each.
func (h *pairHeap) up(i int) {
	k := h.keys[i]
	for i > 0 {
		parent := (i - 1) / 2
		if k <= h.keys[parent] {
			break
		}
		h.place(i, h.keys[parent])
		i = parent
	}
	h.place(i, k)
}

func (h *pairHeap) down(i int) {
	k := h.keys[i]
	for {
		c := 2*i + 1
		if c >= len(h.keys) {
			break
		}
		if r := c + 1; r < len(h.keys) && h.keys[r] > h.keys[c] {
			c = r
		}
		if h.keys[c] <= k {
			break
		}
		h.place(i, h.keys[c])
		i = c
	}
	h.place(i, k)
}

func (h *pairHeap) place(i int, k uint64) {
	h.keys[i] = k
	h.at[keyPos(k)] = int32(i)
}

// piece is a token's text for merging: byte tokens have none that can
// merge, so they are given a string no vocabulary entry contains.
func (t *Tokenizer) piece(id int) string {
	if t.byteOf[id] >= 0 {
		return "\x00<byte>"
	}
	return t.pieces[id]
}

// Piece returns the bytes token id stands for when it follows prev: a byte
// token's raw byte, nothing for control tokens, and the text of others
// without the leading space when prev is BOS (the dummy prefix). Ids out
// of range give nothing.
func (t *Tokenizer) Piece(prev, id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	if b := t.byteOf[id]; b >= 0 {
		return string([]byte{byte(b)})
	}
	if t.special[id] {
		return ""
	}
	p := t.pieces[id]
	if prev == t.BOS {
		p = strings.TrimPrefix(p, " ")
	}
	return p
}

// Decode returns the text of ids, the inverse of Encode: the leading BOS
// and the dummy-prefix space after it are dropped.
func (t *Tokenizer) Decode(ids []int) string {
	var sb strings.Builder
	prev := -1
	for _, id := range ids {
		sb.WriteString(t.Piece(prev, id))
		prev = id
	}
	return sb.String()
}
