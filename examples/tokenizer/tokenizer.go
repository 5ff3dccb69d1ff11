// Package tokenizer implements the SentencePiece-BPE tokenizer with byte
// fallback that Llama GGUF files carry in their tokenizer.ggml.* metadata,
// the way llama2.c runs it: one token per UTF-8 code point (bytes for code
// points missing from the vocabulary), then greedy merges of the adjacent
// pair with the best score.
package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lavakv/lava/examples/gguf"
)

// Token types of tokenizer.ggml.token_type (SentencePiece's).
const (
	typeNormal  = 1
	typeUnknown = 2
	typeControl = 3
	typeByte    = 6
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
// the vocabulary become byte tokens.
func (t *Tokenizer) Encode(text string) []int {
	ids := []int{t.BOS}
	if text == "" {
		return ids
	}
	text = " " + text
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r != utf8.RuneError || size > 1 { // a valid code point
			if id, ok := t.ids[text[i:i+size]]; ok {
				ids = append(ids, id)
				i += size
				continue
			}
		}
		for _, b := range []byte(text[i : i+size]) {
			ids = append(ids, t.byteID[b])
		}
		i += size
	}
	return t.merge(ids)
}

// merge repeatedly joins the adjacent pair of tokens (after BOS) whose
// concatenation is a vocabulary token with the highest score, the leftmost
// among equals, until no pair joins.
func (t *Tokenizer) merge(ids []int) []int {
	var sb strings.Builder
	for {
		best, bestID := -1, -1
		var bestScore float32
		for i := 1; i+1 < len(ids); i++ {
			sb.Reset()
			sb.WriteString(t.piece(ids[i]))
			sb.WriteString(t.piece(ids[i+1]))
			id, ok := t.ids[sb.String()]
			if ok && (best < 0 || t.scores[id] > bestScore) {
				best, bestID, bestScore = i, id, t.scores[id]
			}
		}
		if best < 0 {
			return ids
		}
		ids[best] = bestID
		ids = append(ids[:best+1], ids[best+2:]...)
	}
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
