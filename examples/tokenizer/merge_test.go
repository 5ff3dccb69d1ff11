package tokenizer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// mergeQuadratic is the merge loop Encode used before the heap, kept as the
// oracle: llama2.c's, which rescans the sequence for the best pair (the
// highest score, the leftmost among equals) before every merge.
func (t *Tokenizer) mergeQuadratic(ids []int) []int {
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

func (t *Tokenizer) encodeQuadratic(text string) []int { return t.mergeQuadratic(t.codePoints(text)) }

func checkOracle(tb testing.TB, tok *Tokenizer, text string) {
	tb.Helper()
	got, want := tok.Encode(text), tok.encodeQuadratic(text)
	if !slices.Equal(got, want) {
		tb.Fatalf("Encode(%q) = %v, the quadratic merge gives %v", text, got, want)
	}
}

// randomVocab returns a tokenizer over a small alphabet whose merged
// tokens are random concatenations, with scores drawn from a few values
// so that ties are common.
func randomVocab(tb testing.TB, rng *rand.Rand, alphabet []string, merged int) *Tokenizer {
	pieces := []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
	}
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			pieces = append(pieces, p)
		}
	}
	for _, a := range alphabet {
		add(a)
	}
	for range merged {
		// Concatenations of existing pieces, so that chains of merges
		// reach long tokens.
		a := pieces[259+rng.IntN(len(pieces)-259)]
		b := pieces[259+rng.IntN(len(pieces)-259)]
		add(a + b)
	}
	scores := make([]float32, len(pieces))
	for i := range scores {
		scores[i] = float32(rng.IntN(4)) - 2
	}
	tok, err := New(pieces, scores, nil, 1, 2)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func randomText(rng *rand.Rand, alphabet []string, n int) string {
	var sb strings.Builder
	for range n {
		if rng.IntN(20) == 0 {
			sb.WriteByte(byte(rng.IntN(256))) // a byte token, maybe invalid UTF-8
			continue
		}
		sb.WriteString(strings.ReplaceAll(alphabet[rng.IntN(len(alphabet))], spaceMark, " "))
	}
	return sb.String()
}

// TestMergeMatchesOracle compares the heap merge with the quadratic one on
// random vocabularies (many ties) and random texts.
func TestMergeMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{spaceMark, "a", "b", "c", "é", "日"}
	for v := range 200 {
		tok := randomVocab(t, rng, alphabet[:2+v%5], 1+v%40)
		for range 20 {
			checkOracle(t, tok, randomText(rng, alphabet, rng.IntN(60)))
		}
	}
}

// TestMergeMatchesOracleRealModel compares the two on the model's
// vocabulary: the round-trip seeds, random text made of its pieces and
// random byte strings.
func TestMergeMatchesOracleRealModel(t *testing.T) {
	tok := load(t)
	for _, s := range roundTripSeeds {
		checkOracle(t, tok, s)
	}
	checkOracle(t, tok, strings.Repeat("Once upon a time, there was a little girl named Lily. ", 20))
	rng := rand.New(rand.NewPCG(3, 4))
	var pieces []string
	for id := 259; id < tok.Size(); id++ {
		pieces = append(pieces, tok.pieces[id])
	}
	for range 500 {
		checkOracle(t, tok, randomText(rng, pieces, rng.IntN(80)))
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = " abcdeilnorst.,\n"[rng.IntN(16)]
		}
		checkOracle(t, tok, string(b))
	}
}

// FuzzMergeMatchesOracle compares the heap merge with the quadratic one on
// the model's vocabulary.
func FuzzMergeMatchesOracle(f *testing.F) {
	tok := load(f)
	for _, s := range roundTripSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return // the oracle is quadratic
		}
		checkOracle(t, tok, s)
	})
}

// longText is n bytes of story-like text with some bytes the vocabulary
// lacks.
func longText(n int) string {
	const story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. 😀 é "
	return strings.Repeat(story, n/len(story)+1)[:n]
}

// TestLongInputNotQuadratic guards against a return of quadratic merging,
// which took minutes here: 100 KB must encode in well under 5 s (it takes
// milliseconds; BenchmarkEncode measures).
func TestLongInputNotQuadratic(t *testing.T) {
	tok := load(t)
	text := longText(100_000)
	start := time.Now()
	ids := tok.Encode(text)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Encode of %d bytes took %v, want < 5s", len(text), d)
	}
	if got := tok.Decode(ids); got != text {
		t.Error("the long text does not round-trip")
	}
}

// BenchmarkEncode times Encode on story text of growing length, with the
// quadratic oracle beside it up to the length where it still finishes.
func BenchmarkEncode(b *testing.B) {
	tok := load(b)
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		text := longText(n)
		for _, impl := range []string{"heap", "quadratic"} {
			if impl == "quadratic" && n > 10_000 {
				continue
			}
			b.Run(fmt.Sprintf("bytes=%d/impl=%s", n, impl), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if impl == "heap" {
						tok.Encode(text)
					} else {
						tok.encodeQuadratic(text)
					}
				}
			})
		}
	}
}

func TestNewRejectsBadScoresAndTypes(t *testing.T) {
	pieces := []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
	}
	pieces = append(pieces, "a")
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		scores := make([]float32, len(pieces))
		scores[259] = bad
		_, err := New(pieces, scores, nil, 1, 2)
		if err == nil || !strings.Contains(err.Error(), `token 259 ("a") has score`) {
			t.Errorf("score %v: err = %v, want one naming token 259", bad, err)
		}
	}
	types := make([]int32, len(pieces))
	for i := range types {
		types[i] = typeNormal
	}
	types[5] = 99
	if _, err := New(pieces, make([]float32, len(pieces)), types, 1, 2); err == nil || !strings.Contains(err.Error(), "token 5") {
		t.Errorf("token type 99: err = %v, want one naming token 5", err)
	}
}
