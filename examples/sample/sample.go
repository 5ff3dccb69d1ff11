// Package sample picks the next token from a model's logits: greedily, or
// at random from the temperature-scaled distribution, optionally restricted
// to its top-p nucleus, with a seeded generator so runs repeat.
package sample

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampler chooses tokens. It is not safe for concurrent use.
type Sampler struct {
	temperature float64
	topP        float64
	rng         *rand.Rand
	probs       []float64
	order       []int
}

// seedStream is PCG's second seed word; fixing it makes the seed alone
// select the sequence.
const seedStream = 0x853c49e6748fea9b

// New returns a sampler. temperature 0 is greedy (argmax); otherwise it
// must be positive and finite. topP in (0, 1] keeps the smallest set of
// most probable tokens whose probabilities sum to at least topP (1 keeps
// all). seed selects the random sequence.
func New(temperature, topP float64, seed uint64) (*Sampler, error) {
	if !(temperature >= 0) || math.IsInf(temperature, 0) {
		return nil, fmt.Errorf("sample: temperature = %v, want a finite value ≥ 0 (0 is greedy)", temperature)
	}
	if !(topP > 0 && topP <= 1) {
		return nil, fmt.Errorf("sample: top-p = %v, want a value in (0, 1]", topP)
	}
	return &Sampler{temperature: temperature, topP: topP, rng: rand.New(rand.NewPCG(seed, seedStream))}, nil
}

// Argmax returns the index of the largest logit, the first among equals.
func Argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// Sample returns the next token for logits, which it does not modify.
func (s *Sampler) Sample(logits []float32) int {
	if s.temperature == 0 {
		return Argmax(logits)
	}
	// Softmax of logits/T in float64, shifted by the maximum.
	mx := float64(logits[Argmax(logits)])
	s.probs = slices.Grow(s.probs[:0], len(logits))[:len(logits)]
	var sum float64
	for i, v := range logits {
		p := math.Exp((float64(v) - mx) / s.temperature)
		s.probs[i] = p
		sum += p
	}
	if s.topP >= 1 {
		r := s.rng.Float64() * sum
		for i, p := range s.probs {
			if r < p {
				return i
			}
			r -= p
		}
		return len(s.probs) - 1 // r landed on the rounding at the end
	}
	// Nucleus: most probable first, index breaking ties, cut where the
	// cumulative probability first reaches topP.
	s.order = slices.Grow(s.order[:0], len(logits))[:len(logits)]
	for i := range s.order {
		s.order[i] = i
	}
	slices.SortFunc(s.order, func(a, b int) int {
		if c := cmp.Compare(s.probs[b], s.probs[a]); c != 0 {
			return c
		}
		return a - b
	})
	var cum float64
	n := len(s.order)
	for i, id := range s.order {
		cum += s.probs[id]
		if cum >= s.topP*sum {
			n = i + 1
			break
		}
	}
	r := s.rng.Float64() * cum
	for _, id := range s.order[:n] {
		if r < s.probs[id] {
			return id
		}
		r -= s.probs[id]
	}
	return s.order[n-1]
}
