package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestKL(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 512)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	p := logSoftmax(logits)
	if got := kl(p, p); got != 0 {
		t.Errorf("KL(p ‖ p) = %g, want 0", got)
	}
	var sum float64
	for _, lp := range p {
		sum += math.Exp(lp)
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("Σ softmax = %v, want 1", sum)
	}
	// Two-point distributions against the closed form.
	a := logSoftmax([]float32{0, 0})                        // (1/2, 1/2)
	b := logSoftmax([]float32{float32(math.Log(3)), 0})     // (3/4, 1/4)
	want := 0.5*math.Log(0.5/0.75) + 0.5*math.Log(0.5/0.25) // KL(a ‖ b)
	if got := kl(a, b); math.Abs(got-want) > 1e-7 {
		t.Errorf("KL((1/2,1/2) ‖ (3/4,1/4)) = %v, want %v", got, want)
	}
	// A token the second distribution all but rules out costs a lot.
	if got := kl(a, logSoftmax([]float32{0, -50})); got < 20 {
		t.Errorf("KL against a near-zero probability = %v, want ≥ 20", got)
	}
}

func TestRelL1(t *testing.T) {
	if got := relL1([]float32{1, -2, 3}, []float32{1, -2, 3}); got != 0 {
		t.Errorf("relL1 of equal vectors = %v, want 0", got)
	}
	// ‖(1,−2,3) − (2,−2,1)‖₁ = 3, ‖(1,−2,3)‖₁ = 6.
	if got := relL1([]float32{1, -2, 3}, []float32{2, -2, 1}); got != 0.5 {
		t.Errorf("relL1 = %v, want 0.5", got)
	}
	if got := relL1([]float32{0, 0}, []float32{0, 0}); got != 0 {
		t.Errorf("relL1 of zero vectors = %v, want 0", got)
	}
}

func TestFirstDivergence(t *testing.T) {
	for _, c := range []struct {
		agree []bool
		want  int
	}{
		{[]bool{false, true}, 0},
		{[]bool{true, true, false, false}, 2},
		{[]bool{true, true, true}, 3},
		{nil, 0},
	} {
		if got := firstDivergence(c.agree); got != c.want {
			t.Errorf("firstDivergence(%v) = %d, want %d", c.agree, got, c.want)
		}
	}
}

func TestCopySteps(t *testing.T) {
	// Prompt of 12 tokens, window 4: the prefix is positions 0..7
	// (bigrams ending at 1..7), the window tokens are 20 21 22 23.
	prompt := []int{1, 5, 6, 7, 8, 5, 9, 10, 20, 21, 22, 23}
	w := 4
	cont := []int{
		5,  // 0: never a step (no predecessor)
		6,  // 1: (5,6) at prompt 1–2: copy
		7,  // 2: (6,7) at 2–3: copy
		20, // 3: (7,20) not in the prompt
		21, // 4: (20,21) only in the window
		5,  // 5: (21,5) not in the prompt
		9,  // 6: (5,9) at 5–6: copy
		10, // 7: (9,10) at 6–7: copy
		6,  // 8: (10,6) not in the prompt
		7,  // 9: (6,7) in the prefix, but 7 already occurred at step 2
		22, // 10
		23, // 11: (22,23) only in the window
	}
	if got, want := copySteps(prompt, cont, w), []int{1, 2, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("copySteps = %v, want %v", got, want)
	}
	// A token whose bigram is in the prefix but which also occurs in the
	// window is not a long-range copy: 8 follows 7 at 3–4, and 8 is now in
	// the window.
	prompt2 := []int{1, 7, 8, 3, 3, 3, 8, 2}
	if got := copySteps(prompt2, []int{7, 8}, 2); len(got) != 0 {
		t.Errorf("copySteps with the token in the window = %v, want none", got)
	}
	if got := copySteps(prompt2, []int{7, 8}, 1); !slices.Equal(got, []int{1}) {
		t.Errorf("copySteps with the token outside the window = %v, want [1]", got)
	}
	// The bigram must end before n − w: (3,8) ends at position 6 = n − w
	// for w = 2, which is in the window, not the prefix.
	if got := copySteps([]int{1, 2, 4, 4, 4, 3, 8, 9}, []int{3, 8}, 2); len(got) != 0 {
		t.Errorf("copySteps with the bigram ending in the window = %v, want none", got)
	}
	if got := copySteps([]int{1, 2, 3}, []int{2, 3}, 5); got != nil {
		t.Errorf("copySteps with the window covering the prompt = %v, want none", got)
	}
}

func TestUntilStoryEnd(t *testing.T) {
	const bos, eos = 1, 2
	if got := untilStoryEnd([]int{5, 6, 1, 7}, bos, eos); !slices.Equal(got, []int{5, 6}) {
		t.Errorf("untilStoryEnd at BOS = %v, want [5 6]", got)
	}
	if got := untilStoryEnd([]int{2, 6}, bos, eos); len(got) != 0 {
		t.Errorf("untilStoryEnd at EOS = %v, want []", got)
	}
	if got := untilStoryEnd([]int{5, 6}, bos, eos); !slices.Equal(got, []int{5, 6}) {
		t.Errorf("untilStoryEnd without an end = %v, want [5 6]", got)
	}
}

func TestTQuantile(t *testing.T) {
	// Standard table values of t_{0.975, ν}.
	for nu, want := range map[int]float64{1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 31: 2.0395, 100: 1.9840} {
		if got := tQuantile975(nu); math.Abs(got-want) > 5e-4 {
			t.Errorf("t quantile 0.975 with %d degrees of freedom = %.4f, want %.4f", nu, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{1, 2, 3, 4})
	// sd = √(5/3), t_{0.975,3} = 3.18245.
	want := 3.182446 * math.Sqrt(5.0/3) / 2
	if s.mean != 2.5 || math.Abs(s.half-want) > 1e-5 || s.n != 4 {
		t.Errorf("summarize(1,2,3,4) = %+v, want mean 2.5, half-width %.6f, n 4", s, want)
	}
	if s := summarize([]float64{7}); s.mean != 7 || !math.IsNaN(s.half) {
		t.Errorf("summarize(7) = %+v, want mean 7 and no interval", s)
	}
	if s := summarize(nil); !math.IsNaN(s.mean) || s.n != 0 {
		t.Errorf("summarize() = %+v, want no mean", s)
	}
}

func TestParsePrompts(t *testing.T) {
	p, e, err := parsePrompts("One story.\nStill the first.\n\n\nSecond\n=>\n expected end \n\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"One story.\nStill the first.", "Second"}; !slices.Equal(p, want) {
		t.Errorf("blank-line prompts = %q, want %q", p, want)
	}
	if want := []string{"", "expected end"}; !slices.Equal(e, want) {
		t.Errorf("blank-line continuations = %q, want %q", e, want)
	}
	// With "---" lines, blank lines stay inside a prompt.
	p, e, err = parsePrompts("Para one.\n\nPara two.\n---\nNext\n=>\nthen\n---\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Para one.\n\nPara two.", "Next"}; !slices.Equal(p, want) {
		t.Errorf("dashed prompts = %q, want %q", p, want)
	}
	if want := []string{"", "then"}; !slices.Equal(e, want) {
		t.Errorf("dashed continuations = %q, want %q", e, want)
	}
	if _, _, err := parsePrompts("\n\n  \n"); err == nil {
		t.Error("parsePrompts of blank text: no error")
	}
	if _, _, err := parsePrompts("=>\nonly an answer"); err == nil {
		t.Error("parsePrompts of a continuation without a prompt: no error")
	}
}
