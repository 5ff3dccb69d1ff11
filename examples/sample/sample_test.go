package sample

import (
	"math"
	"testing"
)

func TestArgmax(t *testing.T) {
	if got := Argmax([]float32{1, 3, 3, -1}); got != 1 {
		t.Errorf("Argmax ties = %d, want the first, 1", got)
	}
	s, err := New(0, 1, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sample([]float32{0, -2, 5, 4.9}); got != 2 {
		t.Errorf("greedy Sample = %d, want 2", got)
	}
}

func TestNewErrors(t *testing.T) {
	for _, c := range []struct{ temp, topP float64 }{
		{-0.1, 1}, {math.NaN(), 1}, {math.Inf(1), 1}, {1, 0}, {1, 1.01}, {1, math.NaN()},
	} {
		if _, err := New(c.temp, c.topP, 0); err == nil {
			t.Errorf("New(%v, %v) gave no error", c.temp, c.topP)
		}
	}
}

// TestFrequencies draws many samples and compares the counts with the
// softmax probabilities: with 200,000 draws the standard deviation of a
// frequency is at most √(0.25/200000) ≈ 0.0011, so 0.006 is over 5σ.
func TestFrequencies(t *testing.T) {
	logits := []float32{2, 1, 0, -1}
	const n = 200000
	for _, c := range []struct{ temp, topP float64 }{{1, 1}, {0.5, 1}, {1, 0.8}} {
		s, err := New(c.temp, c.topP, 42)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, len(logits))
		var sum float64
		for i, l := range logits {
			want[i] = math.Exp(float64(l) / c.temp)
			sum += want[i]
		}
		// Keep the nucleus: most probable first until the mass reaches topP.
		var cum float64
		for i := range want {
			want[i] /= sum
			if cum >= c.topP {
				want[i] = 0
			}
			cum += want[i]
		}
		for i := range want {
			want[i] /= cum
		}
		counts := make([]float64, len(logits))
		for range n {
			counts[s.Sample(logits)]++
		}
		for i := range counts {
			if got := counts[i] / n; math.Abs(got-want[i]) > 0.006 || (want[i] == 0 && got != 0) {
				t.Errorf("T=%v top-p=%v: token %d frequency %.4f, want %.4f", c.temp, c.topP, i, got, want[i])
			}
		}
	}
}

func TestSeeded(t *testing.T) {
	logits := []float32{0.3, 0.1, 0.2, 0.25, 0.15}
	draw := func(seed uint64) []int {
		s, err := New(1, 0.9, seed)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for range 50 {
			out = append(out, s.Sample(logits))
		}
		return out
	}
	a, b, c := draw(1), draw(1), draw(2)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed gave different samples")
	}
	if same(a, c) {
		t.Error("seeds 1 and 2 gave the same 50 samples")
	}
	for i, v := range logits {
		if v != []float32{0.3, 0.1, 0.2, 0.25, 0.15}[i] {
			t.Fatal("Sample modified the logits")
		}
	}
}
