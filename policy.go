package lava

import "strings"

// Policy selects how Compress ranks tokens and splits the budget among
// layers and heads. The zero Policy is LAVa. Build one with a constructor
// ([LAVa], [SnapKV], [PyramidKV], …); its parameters are checked by [New].
//
// Every policy keeps Config.Budget entries per KV head per layer on average
// (window included), and every policy's evicted entries are freed.
type Policy struct {
	kind   policyKind
	layers LayerAllocation
	heads  HeadAllocation

	alpha      float64 // AdaKV floor fraction
	beta       float64 // PyramidKV
	tau1, tau2 float64 // CAKE
	gamma      float64 // CAKE
	cakePool   Pooling // CAKE's own pooling (kernel 0: not set)
	cakeKernel int
	sinks      int    // StreamingLLM
	seed       uint64 // Random
	scorer     Scorer // Custom
	customName string
}

type policyKind uint8

const (
	kindLAVa policyKind = iota
	kindSnapKV
	kindVATP
	kindCAKE
	kindH2O
	kindTOVA
	kindStreaming
	kindRandom
	kindCustom
)

// LayerAllocation is how a policy splits the total budget among layers.
type LayerAllocation uint8

const (
	// EntropyLayers gives each layer a share proportional to the
	// normalised entropy of its scores (LAVa, spec section 5).
	EntropyLayers LayerAllocation = iota
	// UniformLayers gives every layer Budget − Window prefix entries per head.
	UniformLayers
	pyramidLayers
	cakeLayers
)

// HeadAllocation is how a layer's budget is split among its KV heads.
type HeadAllocation uint8

const (
	// JointHeads ranks the prefix tokens of all KV heads of a layer
	// together, so heads keep different numbers (LAVa, AdaKV).
	JointHeads HeadAllocation = iota
	// UniformHeads lets every KV head keep its own best b_l prefix tokens.
	UniformHeads
)

// Defaults of the baselines' parameters (spec section 7).
const (
	DefaultAdaAlpha    = 0.2  // AdaKV's floor fraction
	DefaultPyramidBeta = 20.0 // PyramidKV's β
	DefaultCAKETau     = 1.0  // CAKE's τ1 and τ2
	DefaultCAKEGamma   = 200.0
	DefaultSinks       = 4 // StreamingLLM's attention sinks
)

// LAVa is the default policy (spec sections 3–5): tokens ranked by pooled
// window attention, max over the query heads of a KV head, times the head's
// largest value L1 norm; one joint ranking per layer (dynamic head budgets,
// with Config.Floor) and per-layer budgets proportional to score entropy.
// Shen et al., arXiv 2509.09754.
func LAVa() Policy { return Policy{kind: kindLAVa} }

// LAVaUniformLayers is LAVa without dynamic layer budgets: every layer gets
// Budget − Window prefix entries per head, shared jointly by its heads. The
// paper's "−layer" ablation.
func LAVaUniformLayers() Policy {
	p := LAVa()
	p.layers = UniformLayers
	return p
}

// LAVaUniformHeads is LAVa without dynamic head budgets: layers get entropy
// budgets, and every head keeps its own best b_l prefix tokens. The paper's
// "−head" ablation.
func LAVaUniformHeads() Policy {
	p := LAVa()
	p.heads = UniformHeads
	return p
}

// SnapKV keeps, in every head, the Budget − Window prefix tokens that the
// observation window attends to most (window attention averaged over the
// window and over the query heads of the group, then pooled), plus the
// window. Li et al., "SnapKV: LLM Knows What You are Looking for Before
// Generation", arXiv 2404.14469.
func SnapKV() Policy {
	return Policy{kind: kindSnapKV, layers: UniformLayers, heads: UniformHeads}
}

// PyramidKV scores like SnapKV but gives lower layers more entries than
// higher ones, on a linear schedule from 2b̄ − ⌊b̄/β⌋ down to ⌊b̄/β⌋ with
// b̄ = Budget − Window (spec section 7); β > 0, default [DefaultPyramidBeta].
// Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal
// Information Funneling", arXiv 2406.02069.
func PyramidKV(beta float64) Policy {
	p := SnapKV()
	p.layers, p.beta = pyramidLayers, beta
	return p
}

// AdaSnapKV is SnapKV with AdaKV's adaptive head budgets: one joint ranking
// per layer, each head guaranteed a floor of ⌊α·b_l⌋ (cap = round((1−α)·c +
// ⌊α·b_l⌋)); α in [0, 1), default [DefaultAdaAlpha]. Feng et al., "Ada-KV:
// Optimizing KV Cache Eviction by Adaptive Budget Allocation", arXiv
// 2407.11550.
func AdaSnapKV(alpha float64) Policy {
	p := SnapKV()
	p.heads, p.alpha = JointHeads, alpha
	return p
}

// AdaPyramidKV combines PyramidKV's layer schedule with AdaKV's head
// budgets.
func AdaPyramidKV(beta, alpha float64) Policy {
	p := PyramidKV(beta)
	p.heads, p.alpha = JointHeads, alpha
	return p
}

// CAKE scores a token by the mean plus γ times the variance of the window's
// attention to it (averaged over the group, then average-pooled with kernel
// 5), and splits the total budget among layers in proportion to
// H_l^(1/τ1)·V_l^(1/τ2), the layer's attention dispersion and temporal
// shift, capped at each layer's prefix with the excess redistributed so the
// total is exact. Heads keep uniform shares. During decoding each layer is
// held at its budget plus the window by evicting, per head, the older entry
// the current query attends to least. τ1, τ2 > 0 (default
// [DefaultCAKETau]), γ ≥ 0 (default [DefaultCAKEGamma]). Qin et al., "CAKE:
// Cascading and Adaptive KV Cache Eviction with Layer Preferences", arXiv
// 2503.12491.
func CAKE(tau1, tau2, gamma float64) Policy {
	return Policy{kind: kindCAKE, layers: cakeLayers, heads: UniformHeads,
		tau1: tau1, tau2: tau2, gamma: gamma, cakePool: PoolAvg, cakeKernel: 5}
}

// WithPooling returns p with its own pooling, for CAKE (whose default is
// average pooling with kernel 5; the LAVa paper ran it with max pooling,
// kernel 7). For other policies pooling is Config.Pooling and Config.Kernel.
func (p Policy) WithPooling(kind Pooling, kernel int) Policy {
	p.cakePool, p.cakeKernel = kind, kernel
	return p
}

// StreamingLLM keeps the first sinks tokens (attention sinks) and the most
// recent Budget − sinks, whatever they attend to, and keeps doing so while
// decoding by evicting the oldest non-sink entry. It needs no queries.
// sinks ≥ 0 and at most Budget − Window; default [DefaultSinks]. Xiao et
// al., "Efficient Streaming Language Models with Attention Sinks", arXiv
// 2309.17453.
func StreamingLLM(sinks int) Policy {
	return Policy{kind: kindStreaming, layers: UniformLayers, heads: UniformHeads, sinks: sinks}
}

// H2O keeps the Budget − Window "heavy hitters", the prefix tokens with the
// largest attention accumulated over every prompt query (column sums of the
// causal attention, averaged over the group, no pooling), plus the window.
// The sums are accumulated as prompt chunks are appended, so Append needs
// the queries of every prompt token. Zhang et al., "H2O: Heavy-Hitter
// Oracle for Efficient Generative Inference of Large Language Models",
// arXiv 2306.14048.
func H2O() Policy {
	return Policy{kind: kindH2O, layers: UniformLayers, heads: UniformHeads}
}

// TOVA keeps the Budget tokens that the last prompt token attends to most,
// averaged over all query heads of the layer: one kept set shared by the
// layer's KV heads, the last token always in it. While decoding it evicts,
// after each Attend, the entry the current query attends to least, so each
// layer stays at Budget entries. Config.Window is not used. Oren et al.,
// "Transformers are Multi-State RNNs", arXiv 2401.06104.
func TOVA() Policy {
	return Policy{kind: kindTOVA, layers: UniformLayers, heads: UniformHeads}
}

// VATP scores a token by its window attention (as SnapKV) times the L1
// norm of its own value vector, so that tokens with tiny values, which
// cannot change the output much, go first. Guo et al., "Attention Score is
// not All You Need for Token Importance Indicator in KV Cache Reduction:
// Value Also Matters", arXiv 2406.12335.
func VATP() Policy {
	return Policy{kind: kindVATP, layers: UniformLayers, heads: UniformHeads}
}

// Random keeps Budget − Window prefix tokens per head chosen uniformly at
// random (reproducibly from seed), plus the window: the floor any policy
// must beat. It needs no queries.
func Random(seed uint64) Policy {
	return Policy{kind: kindRandom, layers: UniformLayers, heads: UniformHeads, seed: seed}
}

// Custom ranks tokens with s and reuses lava's budget allocation, ranking
// and compaction: layers split the total by layers, heads by heads. With
// EntropyLayers the entropy of s's scores sets the split, so scores must be
// non-negative. The window is always kept.
func Custom(name string, s Scorer, layers LayerAllocation, heads HeadAllocation) Policy {
	return Policy{kind: kindCustom, layers: layers, heads: heads, scorer: s, customName: name}
}

// Name returns the policy's name, as used in reports.
func (p Policy) Name() string {
	switch p.kind {
	case kindLAVa:
		switch {
		case p.layers == UniformLayers:
			return "LAVa-layer"
		case p.heads == UniformHeads:
			return "LAVa-head"
		}
		return "LAVa"
	case kindSnapKV:
		switch {
		case p.layers == pyramidLayers && p.heads == JointHeads:
			return "Ada-PyramidKV"
		case p.layers == pyramidLayers:
			return "PyramidKV"
		case p.heads == JointHeads:
			return "Ada-SnapKV"
		}
		return "SnapKV"
	case kindVATP:
		return "VATP"
	case kindCAKE:
		return "CAKE"
	case kindH2O:
		return "H2O"
	case kindTOVA:
		return "TOVA"
	case kindStreaming:
		return "StreamingLLM"
	case kindRandom:
		return "Random"
	}
	return p.customName
}

func (p Policy) String() string { return p.Name() }

// check validates the policy's parameters against the configuration.
func (p Policy) check(c *Config) error {
	switch {
	case p.kind == kindSnapKV && p.heads == JointHeads && !(p.alpha >= 0 && p.alpha < 1):
		return invalidf("%s: α = %v, want a value in [0, 1)", p.Name(), p.alpha)
	case p.layers == pyramidLayers && !(p.beta > 0):
		return invalidf("%s: β = %v, want > 0", p.Name(), p.beta)
	case p.kind == kindCAKE && !(p.tau1 > 0 && p.tau2 > 0):
		return invalidf("CAKE: τ1 = %v, τ2 = %v, want both > 0", p.tau1, p.tau2)
	case p.kind == kindCAKE && !(p.gamma >= 0):
		return invalidf("CAKE: γ = %v, want ≥ 0", p.gamma)
	case p.kind == kindCAKE && p.cakePool != PoolMax && p.cakePool != PoolAvg:
		return invalidf("CAKE: pooling = %d, want PoolMax or PoolAvg", int(p.cakePool))
	case p.kind == kindCAKE && (p.cakeKernel < 1 || p.cakeKernel%2 == 0):
		return invalidf("CAKE: pooling kernel = %d, want an odd number ≥ 1", p.cakeKernel)
	case p.kind == kindStreaming && p.sinks < 0:
		return invalidf("StreamingLLM: sinks = %d, want ≥ 0", p.sinks)
	case p.kind == kindStreaming && p.sinks > c.Budget-c.Window:
		return invalidf("StreamingLLM: sinks = %d, want ≤ Budget − Window = %d", p.sinks, c.Budget-c.Window)
	case p.kind == kindCustom && p.scorer == nil:
		return invalidf("Custom policy %q: Scorer is nil", p.customName)
	case p.kind == kindCustom && (p.layers > UniformLayers || p.heads > UniformHeads):
		return invalidf("Custom policy %q: unknown layer or head allocation", p.customName)
	case p.kind != kindLAVa && c.Floor != FloorNone:
		return invalidf("Config.Floor = %v applies to LAVa policies only, not %s", c.Floor, p.Name())
	case p.cakeKernel != 0 && p.kind != kindCAKE: // only WithPooling sets it outside CAKE
		return invalidf("%s: WithPooling applies to CAKE only; set Config.Pooling and Config.Kernel", p.Name())
	}
	return nil
}

// window is the number of most recent prompt tokens the policy always keeps
// and whose queries score the rest: Config.Window, or 1 for TOVA (its last
// token).
func (p Policy) window(c *Config) int {
	if p.kind == kindTOVA {
		return 1
	}
	return c.Window
}

// needsQueries tells whether scoring needs the window's queries.
func (p Policy) needsQueries() bool {
	return p.kind != kindStreaming && p.kind != kindRandom
}

// floor returns the head-floor mode and fraction of joint head budgets.
func (p Policy) floor(c *Config) (FloorMode, float64) {
	if p.kind == kindLAVa {
		return c.Floor, c.Alpha
	}
	if p.heads == JointHeads && p.kind == kindSnapKV {
		return FloorAdaKV, p.alpha
	}
	return FloorNone, 0
}

// pooling returns the pooling the policy smooths scores with.
func (p Policy) pooling(c *Config) (Pooling, int) {
	if p.kind == kindCAKE {
		return p.cakePool, p.cakeKernel
	}
	return c.Pooling, c.Kernel
}

// policyNames maps the lower-case names PolicyByName accepts to the
// policies with their default parameters, in the order PolicyNames lists.
var policyNames = []struct {
	name string
	make func() Policy
}{
	{"lava", LAVa},
	{"lava-layer", LAVaUniformLayers},
	{"lava-head", LAVaUniformHeads},
	{"snapkv", SnapKV},
	{"pyramidkv", func() Policy { return PyramidKV(DefaultPyramidBeta) }},
	{"ada-snapkv", func() Policy { return AdaSnapKV(DefaultAdaAlpha) }},
	{"ada-pyramidkv", func() Policy { return AdaPyramidKV(DefaultPyramidBeta, DefaultAdaAlpha) }},
	{"cake", func() Policy { return CAKE(DefaultCAKETau, DefaultCAKETau, DefaultCAKEGamma) }},
	{"streamingllm", func() Policy { return StreamingLLM(DefaultSinks) }},
	{"h2o", H2O},
	{"tova", TOVA},
	{"vatp", VATP},
	{"random", func() Policy { return Random(1) }},
}

// PolicyNames returns the names PolicyByName accepts, LAVa's first.
func PolicyNames() []string {
	names := make([]string, len(policyNames))
	for i, p := range policyNames {
		names[i] = p.name
	}
	return names
}

// PolicyByName returns the built-in policy with the given name (as
// PolicyNames lists them, any case) and its default parameters; Random's
// seed is 1. It is meant for command-line flags and configuration files.
func PolicyByName(name string) (Policy, error) {
	for _, p := range policyNames {
		if strings.EqualFold(p.name, name) {
			return p.make(), nil
		}
	}
	return Policy{}, invalidf("policy %q, want one of %s", name, strings.Join(PolicyNames(), ", "))
}
