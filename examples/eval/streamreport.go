package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/llama"
)

// streamHeader writes what every report starts with: its title, the
// command that reproduces it and the model.
func streamHeader(w *bytes.Buffer, title, command, model string, m *llama.Model) {
	fmt.Fprintf(w, "# %s on %s\n\n```sh\n%s\n```\n\n", title, model, command)
	fmt.Fprintf(w, "- Model: %s; %d layers, %d query heads, %d KV heads, head dimension %d; %d-token vocabulary.\n",
		model, m.Layers, m.Heads, m.KVHeads, m.HeadDim, m.Vocab)
}

const ciNote = "- Cells: mean ± half-width of the two-sided 95 % confidence interval over prompts, t·sd/√n with Student's t at n − 1 degrees of freedom. " +
	"**Bold**: the best policy in the column. Rows share prompts, so differences between rows are paired.\n"

// writeFile writes b to dir/name and returns the path.
func writeFile(dir, name string, b []byte) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, b, 0o644)
}

// chunkedMetric is one table of the chunked-prefill report.
type chunkedMetric struct {
	title, about string
	format       string
	better       int
	value        func(r reference, c chunkedCell) float64
	paired       bool // also the differences against one-shot compression
}

func chunkedMetrics(s settings) []chunkedMetric {
	return []chunkedMetric{
		{title: "KL(full ‖ compressed), nats per token", format: "%.4f", better: -1, paired: true,
			about: fmt.Sprintf("Mean over the T = %d teacher-forced steps, as in eval.md.", s.steps),
			value: func(_ reference, c chunkedCell) float64 { return c.kl }},
		{title: "Top-1 agreement", format: "%.3f", better: +1, paired: true,
			about: "Fraction of the T steps whose most likely next token is the full cache's.",
			value: func(_ reference, c chunkedCell) float64 { return c.agree }},
		{title: "Long-range recall: log-probability drop at copy steps, nats", format: "%.3f", better: -1, paired: true,
			about: "The copy steps of eval.md (prompts without one left out).",
			value: func(_ reference, c chunkedCell) float64 { return c.recallDrop }},
		{title: "Long-range recall: top-1 kept at copy steps", format: "%.3f", better: +1,
			about: "Fraction of the copy steps whose top-1 is the full cache's.",
			value: func(_ reference, c chunkedCell) float64 { return c.recallTop1 }},
		{title: "KL of the prompt's last logits (c₀), nats", format: "%.4f", better: -1,
			about: "KL(full ‖ compressed) of the next-token distribution at the end of the prefill. One-shot compression " +
				"cannot change it (0 in the whole column); a chunked prefill computed the last chunk's hidden states over a compressed past.",
			value: func(_ reference, c chunkedCell) float64 { return c.klFirst }},
		{title: "Peak cache during the prefill, entries per KV head on average", format: "%.1f", better: 0,
			about: "The most key/value bytes the cache held after any Append, Attend or Compress of the prefill (llama.Sequence.PeakBytes), " +
				"in entries per KV head per layer; the full prompt is n entries. A chunked prefill bounds it by about B plus one chunk.",
			value: func(_ reference, c chunkedCell) float64 { return c.peak }},
		{title: "Key/value bytes kept after the prefill, % of the full prompt", format: "%.1f", better: 0,
			about: "KVCache.Bytes after the last chunk's Compress against the full prompt's.",
			value: func(_ reference, c chunkedCell) float64 { return 100 * float64(c.kept) / float64(c.full) }},
	}
}

type chunkedReportInput struct {
	command, model, promptDesc string
	m                          *llama.Model
	prompts                    []prompt
	s                          settings
	cs                         chunkedSettings
	res                        chunkedResults
}

// writeChunkedReport writes chunked.md and the chunked-kl plot to dir.
func writeChunkedReport(dir string, in chunkedReportInput) (string, []string, error) {
	var w bytes.Buffer
	s, cs, m := in.s, in.cs, in.m
	streamHeader(&w, "Chunked prefill against one-shot compression", in.command, in.model, m)
	fmt.Fprintf(&w, "- Prompts: %s.\n", in.promptDesc)
	fmt.Fprintf(&w, "- Every run prefills the prompt itself (`llama.Sequence.Extend`): chunks of c tokens, each appended to every layer with its "+
		"attention computed by `KVCache.Attend` over what the cache holds, then `Compress`; later chunks' hidden states are computed "+
		"over a compressed past, so no two runs share a prefill. **whole** is one chunk, the paper's one-shot compression "+
		"(the runs of eval.md). Then the full cache's greedy continuation is teacher-forced for T = %d steps, as in eval.md; decode tokens "+
		"are not evicted (no slack), except by CAKE, which evicts while decoding.\n", s.steps)
	fmt.Fprintf(&w, "- Window w = %d; policy parameters as in eval.md (library defaults). Budget B: average entries kept per KV head per layer, window included.\n", s.window)
	fmt.Fprintf(&w, "- In lava, the per-step decode eviction of TOVA, StreamingLLM and CAKE also runs at the Attend (and, for StreamingLLM, the Append) "+
		"of a prefill chunk once a Compress has set their size, so CAKE also evicts inside later chunks.\n")
	fmt.Fprint(&w, ciNote)
	fmt.Fprintf(&w, "- Paired difference: chunked − one-shot (whole) for the same policy, budget and prompts; an interval excluding 0 is a difference the prompts support.\n\n")

	var cols []string
	for _, c := range cs.chunks {
		if c == 0 {
			cols = append(cols, "whole (one-shot)")
		} else {
			cols = append(cols, fmt.Sprintf("chunk %d", c))
		}
	}
	whole := slices.Index(cs.chunks, 0)
	var names []string
	ref := make([]bool, len(cs.entries))
	for _, en := range cs.entries {
		names = append(names, en.name)
	}
	// values returns a metric's per-prompt values of one policy, budget
	// and chunk, NaN where a prompt has nothing to measure.
	values := func(mt chunkedMetric, e, b, c int) []float64 {
		xs := make([]float64, len(in.prompts))
		for p := range in.prompts {
			xs[p] = mt.value(in.res.refs[p], in.res.cells[p][e][b][c])
		}
		return xs
	}
	var klSums [][][]summary // [budget][entry][chunk], for the plot
	for i, mt := range chunkedMetrics(s) {
		fmt.Fprintf(&w, "## %s\n\n%s\n\n", mt.title, mt.about)
		for b, budget := range cs.budgets {
			sums := make([][]summary, len(cs.entries))
			for e := range cs.entries {
				for c := range cs.chunks {
					sums[e] = append(sums[e], summarize(dropNaN(values(mt, e, b, c))))
				}
			}
			if i == 0 {
				klSums = append(klSums, sums)
			}
			fmt.Fprintf(&w, "### B = %d\n\n", budget)
			grid(&w, cols, names, boldBest(sums, ref, mt.format, mt.better))
			if !mt.paired || whole < 0 || len(in.prompts) < 2 {
				continue
			}
			fmt.Fprintf(&w, "Paired difference, chunked − one-shot, B = %d:\n\n", budget)
			var pcols []string
			var pcs []int
			for c, chunk := range cs.chunks {
				if chunk != 0 {
					pcols, pcs = append(pcols, cols[c]), append(pcs, c)
				}
			}
			grid(&w, pcols, names, func(e, c int) string {
				x, y := values(mt, e, b, pcs[c]), values(mt, e, b, whole)
				var d []float64
				for p := range x {
					if !math.IsNaN(x[p]) && !math.IsNaN(y[p]) {
						d = append(d, x[p]-y[p])
					}
				}
				return signedCellText(summarize(d), "%+"+mt.format[1:], mt.format)
			})
		}
	}

	// KL against the chunk size, one line per policy and budget; the
	// whole prompt sits one doubling past the largest chunk.
	chart := lineChart{title: "KL(full ‖ compressed) against the prefill chunk", xLabel: "prefill chunk (tokens); whole = the prompt in one chunk",
		yLabel: "mean over prompts, nats per token", logX: true, logY: true}
	xOf := func(c int) float64 {
		if cs.chunks[c] != 0 {
			return float64(cs.chunks[c])
		}
		return 2 * float64(slices.Max(cs.chunks))
	}
	for c := range cs.chunks {
		chart.xTicks = append(chart.xTicks, plot.Tick{Value: xOf(c), Label: chunkName(cs.chunks[c])})
	}
	if slices.Max(cs.chunks) == 0 {
		chart.xTicks, chart.logX = nil, false
	}
	for b, budget := range cs.budgets {
		for e, en := range cs.entries {
			sr := series{name: fmt.Sprintf("%s B=%d", en.name, budget), bold: en.key == "lava" && b == len(cs.budgets)-1}
			for c := range cs.chunks {
				if v := klSums[b][e][c].mean; !math.IsNaN(v) {
					sr.xys = append(sr.xys, plotter.XY{X: xOf(c), Y: v})
				}
			}
			chart.series = append(chart.series, sr)
		}
	}
	var plots []string
	if drawn, err := chart.draw(dir, "chunked-kl"); err != nil {
		return "", nil, err
	} else if drawn {
		plots = append(plots, "chunked-kl")
	}
	path, err := writeFile(dir, "chunked.md", w.Bytes())
	return path, plots, err
}

func dropNaN(xs []float64) []float64 {
	return slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
}

type longReportInput struct {
	command, model string
	m              *llama.Model
	ls             longSettings
	res            longResults
	seed           uint64
}

// longBins are the position ranges of the long-generation tables, from the
// first decoded position: each doubles the last.
func longBins(first, last int) [][2]int {
	var bins [][2]int
	for lo := first; lo <= last; {
		hi := min(max(2*lo, lo+1), last+1)
		if lo < 64 {
			hi = min(64, last+1)
		}
		bins = append(bins, [2]int{lo, hi})
		lo = hi
	}
	return bins
}

// writeLongReport writes long.md and the long-kl and long-bytes plots to
// dir.
func writeLongReport(dir string, in longReportInput) (string, []string, error) {
	var w bytes.Buffer
	ls, m, res := in.ls, in.m, in.res
	streamHeader(&w, "Long generation in a bounded cache", in.command, in.model, m)
	P := ls.promptLen
	fmt.Fprintf(&w, "- Prompts: %d stories sampled from the model itself, prompt i (from 0) with seed %d+i, temperature %.1f, top-p %.1f, "+
		"BOS and EOS never sampled; %d tokens each, BOS included.\n", len(res.prompts), in.seed, promptTemperature, promptTopP, P)
	fmt.Fprintf(&w, "- The full cache (never evicted from) decodes each prompt's greedy continuation for T = %d steps, positions %d–%d. "+
		"Every policy then prefills the prompt into a cache with budget B = %d and decode slack S = %d (`Config.DecodeSlack`: once it holds "+
		"more than B + S entries per KV head on average, `Attend` compresses it back to B) and teacher-forces that continuation.\n",
		ls.steps, P, P+ls.steps-1, ls.budget, ls.slack)
	fmt.Fprintf(&w, "- Window w = %d; policy parameters as in eval.md (library defaults). TOVA, StreamingLLM and CAKE also evict one entry "+
		"per step once the first Compress has set their size, so they stay at B instead of oscillating between B and B + S.\n", ls.window)
	ends, first := 0, 0
	for _, r := range res.refs {
		if k := storyEnd(r.cont[:ls.steps], ls.bos, ls.eos); k > 0 {
			ends++
			first += P + k - 1
		}
	}
	if ends > 0 {
		fmt.Fprintf(&w, "- In %d of %d continuations the full cache ends the story (BOS or EOS) and starts another, first at position %.0f on average; "+
			"the positions after that are measured too: the new story rarely needs the old one.\n", ends, len(res.refs), float64(first)/float64(ends))
	}
	fmt.Fprintf(&w, "- Position p is the position of the token fed; its distribution predicts token p + 1.\n")
	fmt.Fprint(&w, ciNote)
	fmt.Fprintln(&w)

	bins := longBins(P, P+ls.steps-1)
	var cols []string
	for _, b := range bins {
		cols = append(cols, fmt.Sprintf("positions %d–%d", b[0], b[1]-1))
	}
	cols = append(cols, "all")
	var names []string
	ref := make([]bool, len(ls.entries))
	for _, en := range ls.entries {
		names = append(names, en.name)
	}
	// binned returns per prompt the mean of value over the steps of each
	// bin and over all steps.
	binned := func(e int, value func(r longRun, k int) float64) [][]float64 {
		out := make([][]float64, len(bins)+1)
		for p := range res.prompts {
			r := res.runs[p][e]
			for i, b := range append(slices.Clone(bins), [2]int{P, P + ls.steps}) {
				var sum float64
				for pos := b[0]; pos < b[1]; pos++ {
					sum += value(r, pos-P)
				}
				out[i] = append(out[i], sum/float64(b[1]-b[0]))
			}
		}
		return out
	}
	klValue := func(r longRun, k int) float64 { return r.kl[k] }
	agreeValue := func(r longRun, k int) float64 {
		if r.agree[k] {
			return 1
		}
		return 0
	}
	for _, mt := range []struct {
		title, format string
		better        int
		value         func(r longRun, k int) float64
	}{
		{"KL(full ‖ bounded) by position, nats per token", "%.4f", -1, klValue},
		{"Top-1 agreement by position", "%.3f", +1, agreeValue},
	} {
		sums := make([][]summary, len(ls.entries))
		for e := range ls.entries {
			for _, xs := range binned(e, mt.value) {
				sums[e] = append(sums[e], summarize(xs))
			}
		}
		fmt.Fprintf(&w, "## %s\n\nPer prompt the mean over the positions of each column, then mean ± 95 %% CI over prompts.\n\n", mt.title)
		grid(&w, cols, names, boldBest(sums, ref, mt.format, mt.better))
	}

	// The ranking by KL over all positions, with the paired difference
	// from LAVa.
	all := make([][]float64, len(ls.entries))
	for e := range ls.entries {
		all[e] = binned(e, klValue)[len(bins)]
	}
	order := make([]int, len(ls.entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpFloat(mean(all[a]), mean(all[b])) })
	lavaAt := slices.IndexFunc(ls.entries, func(e entry) bool { return e.key == "lava" })
	fmt.Fprintf(&w, "## Ranking by KL over all %d positions\n\n| rank | policy | KL, nats per token | − LAVa, paired | top-1 agreement |\n|---:|---|---:|---:|---:|\n", ls.steps)
	for i, e := range order {
		diff := "—"
		if lavaAt >= 0 && e != lavaAt {
			d := make([]float64, len(all[e]))
			for p := range d {
				d[p] = all[e][p] - all[lavaAt][p]
			}
			diff = signedCellText(summarize(d), "%+.4f", "%.4f")
		}
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s |\n", i+1, ls.entries[e].name, cellText(summarize(all[e]), "%.4f"), diff,
			cellText(summarize(binned(e, agreeValue)[len(bins)]), "%.3f"))
	}
	fmt.Fprintln(&w)

	// Memory.
	perEntry := int64(2 * m.HeadDim * 4) // float32 storage
	perHead := func(b float64) float64 { return b / float64(perEntry) / float64(m.Layers*m.KVHeads) }
	var fullEnd []float64
	for _, r := range res.refs {
		fullEnd = append(fullEnd, float64(r.bytes[ls.steps-1]))
	}
	fmt.Fprintf(&w, "## Cache memory\n\nKey/value bytes (`KVCache.Bytes`) in entries per KV head per layer on average, mean over prompts: the most held after "+
		"any Append, Attend or Compress (`llama.Sequence.PeakBytes`), and after the last step; compressions counts the steps after which the cache "+
		"held less than before (one per slack Compress; the per-step evictions of TOVA, StreamingLLM and CAKE hold the size level). "+
		"The full cache holds %.0f entries per head at the end (%.0f KiB).\n\n", perHead(mean(fullEnd)), mean(fullEnd)/1024)
	fmt.Fprintf(&w, "| policy | peak | at the end | peak KiB | peak, %% of the full cache at the end | compressions |\n|---|---:|---:|---:|---:|---:|\n")
	for e, en := range ls.entries {
		var peak, end, drops []float64
		for p := range res.prompts {
			r := res.runs[p][e]
			peak, end = append(peak, float64(r.peak)), append(end, float64(r.bytes[ls.steps-1]))
			n := 0
			for k := 1; k < ls.steps; k++ {
				if r.bytes[k] < r.bytes[k-1] {
					n++
				}
			}
			drops = append(drops, float64(n))
		}
		fmt.Fprintf(&w, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", en.name, perHead(mean(peak)), perHead(mean(end)), mean(peak)/1024,
			100*mean(peak)/mean(fullEnd), mean(drops))
	}
	fmt.Fprintln(&w)

	// Plots: KL in 16-position bins, and the bytes of every step.
	const bin = 16
	klChart := lineChart{title: fmt.Sprintf("KL(full ‖ bounded), B = %d, S = %d", ls.budget, ls.slack), xLabel: "position",
		yLabel: fmt.Sprintf("mean over prompts and %d positions, nats", bin), logY: true}
	bytesChart := lineChart{title: fmt.Sprintf("Key/value cache held, B = %d, S = %d", ls.budget, ls.slack), xLabel: "position",
		yLabel: "KiB after each step, mean over prompts", lines: true}
	var full plotter.XYs
	for k := range ls.steps {
		var xs []float64
		for _, r := range res.refs {
			xs = append(xs, float64(r.bytes[k]))
		}
		full = append(full, plotter.XY{X: float64(P + k), Y: mean(xs) / 1024})
	}
	bytesChart.series = append(bytesChart.series, series{name: "full cache", xys: full})
	for e, en := range ls.entries {
		var klXY, bytesXY plotter.XYs
		for lo := 0; lo < ls.steps; lo += bin {
			hi := min(lo+bin, ls.steps)
			var xs []float64
			for p := range res.prompts {
				for k := lo; k < hi; k++ {
					xs = append(xs, res.runs[p][e].kl[k])
				}
			}
			klXY = append(klXY, plotter.XY{X: float64(P) + float64(lo+hi-1)/2, Y: mean(xs)})
		}
		for k := range ls.steps {
			var xs []float64
			for p := range res.prompts {
				xs = append(xs, float64(res.runs[p][e].bytes[k]))
			}
			bytesXY = append(bytesXY, plotter.XY{X: float64(P + k), Y: mean(xs) / 1024})
		}
		klChart.series = append(klChart.series, series{name: en.name, xys: klXY, bold: en.key == "lava"})
		bytesChart.series = append(bytesChart.series, series{name: en.name, xys: bytesXY, bold: en.key == "lava"})
	}
	var plots []string
	for _, c := range []struct {
		chart lineChart
		name  string
	}{{klChart, "long-kl"}, {bytesChart, "long-bytes"}} {
		drawn, err := c.chart.draw(dir, c.name)
		if err != nil {
			return "", nil, err
		}
		if drawn {
			plots = append(plots, c.name)
		}
	}
	path, err := writeFile(dir, "long.md", w.Bytes())
	return path, plots, err
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// policyEntries returns the entries of a comma-separated list of policy
// names, naming the flag in errors.
func policyEntries(flagName, list string) ([]entry, error) {
	var es []entry
	for _, f := range strings.Split(list, ",") {
		key := strings.ToLower(strings.TrimSpace(f))
		p, err := lava.PolicyByName(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %q, want names from %s", flagName, f, strings.Join(lava.PolicyNames(), ","))
		}
		if slices.ContainsFunc(es, func(e entry) bool { return e.key == key }) {
			return nil, fmt.Errorf("%s: %q given twice", flagName, key)
		}
		es = append(es, entry{key: key, name: p.Name(), policy: p})
	}
	return es, nil
}
