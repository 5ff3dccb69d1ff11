package tokenizer

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lavakv/lava/examples/gguf"
	"github.com/lavakv/lava/examples/internal/modelfile"
)

func load(tb testing.TB) *Tokenizer {
	tb.Helper()
	f, err := gguf.Open(modelfile.PathForTest(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestEncodeGolden(t *testing.T) {
	tok := load(t)
	cases := []struct {
		text string
		want []int
	}{
		{"Once upon a time", []int{1, 403, 407, 261, 378}}, // models README
		{"", []int{1}},
		// The dummy prefix alone is token 410 (README).
		{" ", []int{1, 410, 410}},
	}
	for _, c := range cases {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

func TestByteFallback(t *testing.T) {
	tok := load(t)
	// "é" and "😀" are not in the 512-token vocabulary: each of their UTF-8
	// bytes becomes token byte+3.
	got := tok.Encode("😀")
	want := []int{1, 410, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}
	if !slices.Equal(got, want) {
		t.Errorf("Encode(😀) = %v, want %v", got, want)
	}
	if s := tok.Decode(got); s != "😀" {
		t.Errorf("Decode(%v) = %q, want 😀", got, s)
	}
}

func TestDecodeDropsDummyPrefixOnlyAfterBOS(t *testing.T) {
	tok := load(t)
	ids := tok.Encode("Once upon a time")
	if got := tok.Decode(ids[1:]); got != " Once upon a time" {
		t.Errorf("Decode without BOS = %q, want the leading space kept", got)
	}
	if got := tok.Piece(tok.BOS, ids[1]); got != "Once" {
		t.Errorf("Piece(BOS, %d) = %q, want %q", ids[1], got, "Once")
	}
	if got := tok.Decode([]int{tok.BOS, tok.EOS, -1, tok.Size()}); got != "" {
		t.Errorf("Decode(control and out-of-range ids) = %q, want empty", got)
	}
}

var roundTripSeeds = []string{
	"", " ", "  ", "Once upon a time", " leading space", "trailing space ",
	"Lily's mom said, \"Lily, let's go to the park.\"\n\nNew paragraph.",
	"<s></s><unk><0x41>", "\u2581 already marked", "tab\tand\r\nCRLF",
	"héllo wörld 😀 日本語", "\xff\xfe invalid \xc3 utf-8 \xe2\x82", "\x00\x01\x02",
}

func TestRoundTrip(t *testing.T) {
	tok := load(t)
	for _, s := range roundTripSeeds {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	tok := load(f)
	for _, s := range roundTripSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if ids[0] != tok.BOS {
			t.Fatalf("Encode(%q)[0] = %d, want BOS", s, ids[0])
		}
		for _, id := range ids[1:] {
			if id < 3 || id >= tok.Size() {
				t.Fatalf("Encode(%q) has id %d, want a text or byte token", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}

// A synthetic vocabulary checks the merge order without the model: the
// pair with the higher score merges first even when it is further right.
func TestMergeOrder(t *testing.T) {
	pieces := []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
	}
	base := len(pieces)
	pieces = append(pieces, "▁", "a", "b", "c", "ab", "bc", "▁a", "▁ab")
	scores := make([]float32, len(pieces))
	id := func(p string) int { return slices.Index(pieces, p) }
	scores[id("ab")] = -5
	scores[id("bc")] = -1 // beats "ab": "abc" → a, bc
	scores[id("▁a")] = -2
	scores[id("▁ab")] = -3
	tok, err := New(pieces, scores, nil, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("abc")
	want := []int{1, id("▁a"), id("bc")}
	if !slices.Equal(got, want) {
		t.Errorf("Encode(abc) = %v, want %v (▁a, bc)", got, want)
	}
	if base != 259 {
		t.Fatalf("byte tokens end at %d, want 259", base)
	}
	if s := tok.Decode(got); s != "abc" {
		t.Errorf("Decode = %q, want abc", s)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New([]string{"a", "b"}, []float32{0}, nil, 0, 1); err == nil {
		t.Error("New with 1 score for 2 tokens: no error")
	}
	if _, err := New([]string{"<unk>", "<s>", "</s>", "a"}, make([]float32, 4), nil, 1, 2); err == nil {
		t.Error("New without byte tokens: no error, want one naming the missing byte")
	}
	if _, err := New([]string{"a"}, []float32{0}, nil, 5, 0); err == nil {
		t.Error("New with BOS out of range: no error")
	}
}
