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
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/llama"
	"github.com/lavakv/lava/examples/tokenizer"
)

// reportInput is everything the report shows.
type reportInput struct {
	command, model string
	m              *llama.Model
	tok            *tokenizer.Tokenizer
	prompts        []prompt
	promptDesc     string
	s              settings
	res            results
}

// metric is one table of the report: a per-prompt value of each cell,
// NaN where the prompt has nothing to measure, and how the report shows it.
type metric struct {
	title, about string
	value        func(r reference, c cell) float64
	format       string // of the mean and the half-width
	better       int    // +1 higher is better, −1 lower, 0 neither
	// note, if set, writes a paragraph between the description and the
	// table: the counts behind the means.
	note   func(in reportInput) string
	paired bool // also a table of per-prompt differences against LAVa
	// plot is the file name, without extension, of the plot of the means
	// against the budget; "" for none. logY plots them on a log scale when
	// all are positive.
	plot string
	logY bool
	// expected is set for metrics of the prompts' expected continuations,
	// left out when no prompt has one.
	expected bool
}

func metrics(s settings) []metric {
	return []metric{
		{title: "KL(full ‖ compressed), nats per token", better: -1, format: "%.4f", paired: true, plot: "kl", logY: true,
			about: fmt.Sprintf("Mean over the T = %d teacher-forced steps of the KL divergence of the compressed cache's next-token distribution from the full cache's.", s.steps),
			value: func(_ reference, c cell) float64 { return c.kl }},
		{title: "Top-1 agreement", better: +1, format: "%.3f",
			about: "Fraction of the T steps where the compressed cache's most likely next token is the full cache's.",
			value: func(_ reference, c cell) float64 { return c.agree }},
		{title: "Greedy tokens before the first divergence", better: +1, format: "%.1f",
			about: fmt.Sprintf("How many tokens free-running greedy decoding over the compressed cache reproduces of the full cache's greedy continuation, out of T = %d (T if it never diverges). "+
				"Until they diverge both runs feed the same tokens, so this is the first teacher-forced step whose top-1 differs.", s.steps),
			value: func(_ reference, c cell) float64 { return float64(c.diverge) }},
		{title: "Long-range recall: log-probability drop at copy steps, nats", better: -1, format: "%.3f", note: copyStepsNote, paired: true, plot: "recall", logY: true,
			about: fmt.Sprintf("Over the continuation tokens that copy a bigram from the prompt's evictable prefix (positions < n − w) "+
				"and occur neither in the last w = %d prompt tokens nor earlier in the continuation (see below), the mean of "+
				"log p_full(token) − log p_compressed(token), on every such token, confident or not. Prompts without copy steps are left out; n below.", s.window),
			value: func(_ reference, c cell) float64 { return c.recallDrop }},
		{title: "Long-range recall: top-1 kept at copy steps", better: +1, format: "%.3f", note: copyStepsNote,
			about: "Fraction of the same copy steps where the compressed cache's top-1 token is the full cache's.",
			value: func(_ reference, c cell) float64 { return c.recallTop1 }},
		{title: "Attention output error at the first decode step, mean over layers", better: -1, format: "%.4f",
			about: "‖o_full − o_comp‖₁ / ‖o_full‖₁ of each layer's attention output (all heads, before the output projection) " +
				"at the first decode step, averaged over layers; the per-layer values are in the detail tables. " +
				"Layer 0 sees identical inputs, so its error is the eviction's alone; later layers also inherit the error of the layers below.",
			value: func(_ reference, c cell) float64 { return mean(c.attnErr) }},
		{title: "Key/value bytes kept, % of the full cache", better: 0, format: "%.1f",
			about: "Bytes the cache holds right after Compress, against the full prompt's (lava.Report BytesAfter / BytesBefore). Decoding adds one entry per step to every policy except those that evict while decoding (StreamingLLM, TOVA, CAKE hold their size).",
			value: func(_ reference, c cell) float64 { return 100 * float64(c.kept) / float64(c.full) }},
		{title: "Expected continuation: log-probability drop, nats", better: -1, format: "%.3f", note: expectedNote, expected: true,
			about: "log p_full − log p_compressed of each prompt's expected continuation (all its tokens, teacher-forced).",
			value: func(r reference, c cell) float64 { return r.expectedLog - c.expectedLog }},
	}
}

// copyStepsNote counts the copy steps the recall metrics average over.
func copyStepsNote(in reportInput) string {
	steps, with := 0, 0
	for _, r := range in.res.refs {
		steps += len(r.copies)
		if len(r.copies) > 0 {
			with++
		}
	}
	return fmt.Sprintf("%d copy steps in %d of %d prompts (n = %d).", steps, with, len(in.prompts), with)
}

// expectedNote gives the full cache's log-probability of the expected
// continuations, from which the compressed caches' drops are measured.
func expectedNote(in reportInput) string {
	var full []float64
	for p, r := range in.res.refs {
		if in.prompts[p].expected != nil {
			full = append(full, r.expectedLog)
		}
	}
	fs := summarize(full)
	return fmt.Sprintf("Full cache: log p(expected continuation) = %s nats, over %d prompts with one.", cellText(fs, "%.3f"), fs.n)
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// summaries returns the summary of a metric's value for every entry and
// budget.
func summaries(in reportInput, value func(r reference, c cell) float64) [][]summary {
	out := make([][]summary, len(in.s.entries))
	for e := range in.s.entries {
		out[e] = make([]summary, len(in.s.budgets))
		for b := range in.s.budgets {
			var xs []float64
			for p := range in.prompts {
				if v := value(in.res.refs[p], in.res.cells[p][e][b]); !math.IsNaN(v) {
					xs = append(xs, v)
				}
			}
			out[e][b] = summarize(xs)
		}
	}
	return out
}

// writeReport writes eval.md and the plots to dir and returns the
// report's path and the plots' names.
func writeReport(dir string, in reportInput) (string, []string, error) {
	var w bytes.Buffer
	s := in.s
	m := in.m
	fmt.Fprintf(&w, "# KV-cache compression quality on %s\n\n", in.model)
	fmt.Fprintf(&w, "```sh\n%s\n```\n\n", in.command)
	fmt.Fprintf(&w, "- Model: %s; %d layers, %d query heads, %d KV heads, head dimension %d; %d-token vocabulary.\n",
		in.model, m.Layers, m.Heads, m.KVHeads, m.HeadDim, m.Vocab)
	fmt.Fprintf(&w, "- Prompts: %s.\n", in.promptDesc)
	fmt.Fprintf(&w, "- Each prompt is prefilled once; every policy × budget compresses its own copy of that cache (`KVCache.CloneWith`) and "+
		"teacher-forces the full cache's greedy continuation: c₀ from the prefill's logits (which no compression changes), then T = %d measured steps.\n", s.steps)
	fmt.Fprintf(&w, "- Window w = %d for every policy (TOVA scores with the last token only, by definition); pooling max, kernel %d (library default) "+
		"except CAKE, whose own default is average pooling, kernel %d; policy parameters are the library defaults "+
		"(PyramidKV β = %g, Ada α = %g, CAKE τ₁ = τ₂ = %g, γ = %g, StreamingLLM %d sinks, Random seed 1).\n",
		s.window, lava.DefaultKernel, lava.DefaultCAKEKernel, lava.DefaultPyramidBeta, lava.DefaultAdaAlpha, lava.DefaultCAKETau, lava.DefaultCAKEGamma, lava.DefaultSinks)
	fmt.Fprintf(&w, "- Budget B: average entries kept per KV head per layer, window included. The full cache row is one run without eviction, repeated in every column.\n")
	fmt.Fprintf(&w, "- Cells: mean ± half-width of the two-sided 95 %% confidence interval over prompts, t·sd/√n with Student's t at n − 1 degrees of freedom. "+
		"**Bold**: the best policy in the column (full cache excluded). Rows share prompts, so differences between rows are paired.\n\n")

	hasExpected := false
	for _, p := range in.prompts {
		hasExpected = hasExpected || p.expected != nil
	}
	type plotted struct {
		mt   metric
		sums [][]summary
	}
	var plots []plotted
	for _, mt := range metrics(s) {
		if mt.expected && !hasExpected {
			continue
		}
		sums := summaries(in, mt.value)
		fmt.Fprintf(&w, "## %s\n\n%s\n\n", mt.title, mt.about)
		if mt.note != nil {
			fmt.Fprintf(&w, "%s\n\n", mt.note(in))
		}
		table(&w, in, sums, mt)
		if mt.paired {
			pairedTable(&w, in, mt)
		}
		if mt.plot != "" {
			plots = append(plots, plotted{mt, sums})
		}
	}

	fmt.Fprintf(&w, "## Detail: attention output error per layer\n\nMean over prompts of ‖o_full − o_comp‖₁ / ‖o_full‖₁ at the first decode step.\n\n")
	for b, budget := range s.budgets {
		fmt.Fprintf(&w, "### B = %d\n\n| policy |", budget)
		for l := range m.Layers {
			fmt.Fprintf(&w, " layer %d |", l)
		}
		fmt.Fprintf(&w, "\n|---|%s\n", strings.Repeat("---:|", m.Layers))
		for e, en := range s.entries {
			fmt.Fprintf(&w, "| %s |", en.name)
			for l := range m.Layers {
				var xs []float64
				for p := range in.prompts {
					xs = append(xs, in.res.cells[p][e][b].attnErr[l])
				}
				fmt.Fprintf(&w, " %.4f |", mean(xs))
			}
			fmt.Fprintln(&w)
		}
		fmt.Fprintln(&w)
	}

	fmt.Fprintf(&w, "## Long-range copy steps\n\n"+
		"Step k ≥ 1 of the full cache's continuation c₀…c_T is a long-range copy when (1) the bigram (c_{k−1}, c_k) occurs in the prompt "+
		"at positions (i − 1, i) with i < n − w, the evictable prefix; (2) c_k does not occur among the last w prompt tokens, which every "+
		"policy keeps; (3) c_k does not occur in c₀…c_{k−1}; and (4) the continuation has not yet ended the story: steps from its first "+
		"BOS or EOS on are not counted, because stories260K then starts its most typical story (\"Once upon a time, there was a little girl "+
		"named Lily…\") from its prior, not from the prompt. With a 512-token vocabulary many words are split into pieces, so copied pieces "+
		"include word fragments (a rare word spelled again piece by piece) and some function words that happen not to be in the window; "+
		"the drop is measured on all of them.\n\n")
	fmt.Fprintf(&w, "| prompt | tokens | copy steps | copied tokens | start of the prompt |\n|---:|---:|---:|---|---|\n")
	for p, pr := range in.prompts {
		r := in.res.refs[p]
		var copied []string
		for _, k := range r.copies {
			copied = append(copied, fmt.Sprintf("%q", strings.TrimSpace(in.tok.Piece(r.cont[k-1], r.cont[k]))))
		}
		start := []rune(strings.Join(strings.Fields(in.tok.Decode(pr.tokens)), " "))
		if len(start) > 60 {
			start = append(start[:60], '…')
		}
		fmt.Fprintf(&w, "| %d | %d | %d | %s | %s |\n", p+1, len(pr.tokens), len(r.copies), strings.Join(copied, " "),
			strings.ReplaceAll(string(start), "|", `\|`))
	}

	// The tables first: a plot that fails must not lose the run's results.
	path := filepath.Join(dir, "eval.md")
	if err := os.WriteFile(path, w.Bytes(), 0o644); err != nil {
		return "", nil, err
	}
	var names []string
	for _, p := range plots {
		drawn, err := drawPlot(dir, p.mt, p.sums, in)
		if err != nil {
			return path, names, err
		}
		if drawn {
			names = append(names, p.mt.plot)
		}
	}
	return path, names, nil
}

func cellText(s summary, format string) string {
	return signedCellText(s, format, format)
}

// signedCellText is cellText with its own format for the mean (to show
// the sign of a difference).
func signedCellText(s summary, meanFormat, format string) string {
	if s.n == 0 {
		return "—"
	}
	if math.IsNaN(s.half) {
		return fmt.Sprintf(meanFormat, s.mean)
	}
	return fmt.Sprintf(meanFormat+" ± "+format, s.mean, s.half)
}

// table writes one metric's table: entries as rows, budgets as columns,
// the best mean of each column in bold.
func table(w *bytes.Buffer, in reportInput, sums [][]summary, mt metric) {
	var cols, names []string
	for _, b := range in.s.budgets {
		cols = append(cols, fmt.Sprintf("B = %d", b))
	}
	var ref []bool
	for _, en := range in.s.entries {
		names = append(names, en.name)
		ref = append(ref, en.full)
	}
	grid(w, cols, names, boldBest(sums, ref, mt.format, mt.better))
}

// grid writes a Markdown table with a "policy" column of names, then one
// column per cols, each cell's text from text(row, column).
func grid(w *bytes.Buffer, cols, names []string, text func(r, c int) string) {
	fmt.Fprintf(w, "| policy |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(cols)))
	for r, name := range names {
		fmt.Fprintf(w, "| %s |", name)
		for c := range cols {
			fmt.Fprintf(w, " %s |", text(r, c))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

// boldBest returns the cell texts of sums[row][column], the best mean of
// each column in bold (as printed, so that equal-looking means are all
// bold) among the rows that are not references (ref[row]); better is +1
// when higher is better, −1 when lower, 0 for no bold.
func boldBest(sums [][]summary, ref []bool, format string, better int) func(r, c int) string {
	cols := 0
	if len(sums) > 0 {
		cols = len(sums[0])
	}
	best := make([]float64, cols)
	for c := range best {
		best[c] = math.NaN()
		for r := range sums {
			v := sums[r][c].mean
			if ref[r] || math.IsNaN(v) || better == 0 {
				continue
			}
			if math.IsNaN(best[c]) || float64(better)*(v-best[c]) > 0 {
				best[c] = v
			}
		}
	}
	return func(r, c int) string {
		t := cellText(sums[r][c], format)
		if !ref[r] && !math.IsNaN(best[c]) && fmt.Sprintf(format, sums[r][c].mean) == fmt.Sprintf(format, best[c]) {
			t = "**" + t + "**"
		}
		return t
	}
}

// pairedTable writes, for each policy other than LAVa, the per-prompt
// difference of mt against LAVa on the same prompt, summarised: a paired
// comparison, free of the variation between prompts that the main table's
// intervals include. Positive means the policy's value is higher.
func pairedTable(w *bytes.Buffer, in reportInput, mt metric) {
	ref := slices.IndexFunc(in.s.entries, func(e entry) bool { return e.key == "lava" })
	if ref < 0 || len(in.prompts) < 2 {
		return
	}
	fmt.Fprintf(w, "Paired difference, policy − LAVa on the same prompts (mean ± 95 %% CI; an interval excluding 0 is a difference the prompts support):\n\n")
	var cols, names []string
	for _, b := range in.s.budgets {
		cols = append(cols, fmt.Sprintf("B = %d", b))
	}
	var rows []int
	for e, en := range in.s.entries {
		if e != ref && !en.full {
			names, rows = append(names, en.name), append(rows, e)
		}
	}
	grid(w, cols, names, func(r, b int) string {
		var d []float64
		for p := range in.prompts {
			x, y := mt.value(in.res.refs[p], in.res.cells[p][rows[r]][b]), mt.value(in.res.refs[p], in.res.cells[p][ref][b])
			if !math.IsNaN(x) && !math.IsNaN(y) {
				d = append(d, x-y)
			}
		}
		return signedCellText(summarize(d), "%+"+mt.format[1:], mt.format)
	})
}

// lineChart is a plot of lines against a shared x axis, drawn by draw.
type lineChart struct {
	title, xLabel, yLabel string
	xTicks, yTicks        []plot.Tick // nil for the default ticks
	logX                  bool
	// logY draws the y axis on a log scale when every value is positive.
	logY bool
	// lines draws lines without point markers, for dense series.
	lines  bool
	series []series
}

// series is one line of a lineChart; bold draws it wide and solid (LAVa).
type series struct {
	name string
	xys  plotter.XYs
	bold bool
}

// drawPlot draws the means sums of metric mt against the budget, one line
// per policy (the full cache, the reference, left out), as PNG and SVG. It
// draws nothing and returns false when no policy has a mean to plot (recall
// when no prompt has a copy step).
func drawPlot(dir string, mt metric, sums [][]summary, in reportInput) (bool, error) {
	c := lineChart{title: mt.title, xLabel: "budget B (entries per KV head per layer, window included)", yLabel: "mean over prompts",
		logX: true, logY: mt.logY}
	for _, b := range in.s.budgets {
		c.xTicks = append(c.xTicks, plot.Tick{Value: float64(b), Label: fmt.Sprint(b)})
	}
	for e, en := range in.s.entries {
		if en.full {
			continue
		}
		var xys plotter.XYs
		for b, budget := range in.s.budgets {
			if v := sums[e][b].mean; !math.IsNaN(v) {
				xys = append(xys, plotter.XY{X: float64(budget), Y: v})
			}
		}
		c.series = append(c.series, series{name: en.name, xys: xys, bold: en.key == "lava"})
	}
	return c.draw(dir, mt.plot)
}

// spread tells whether the chart's points take at least two values of
// coordinate v: a log axis over a single value has no range and gonum
// cannot draw it.
func (lc lineChart) spread(v func(plotter.XY) float64) bool {
	first, seen := 0.0, false
	for _, sr := range lc.series {
		for _, xy := range sr.xys {
			switch {
			case !seen:
				first, seen = v(xy), true
			case v(xy) != first:
				return true
			}
		}
	}
	return false
}

// draw writes the chart to dir as name.png and name.svg, with the legend
// beside the axes so that it hides no line; series without points are left
// out. It draws nothing and returns false when no series has a point.
func (lc lineChart) draw(dir, name string) (drawn bool, err error) {
	defer func() {
		// gonum panics on degenerate axes; report it as this plot's error.
		if r := recover(); r != nil {
			drawn, err = false, fmt.Errorf("plot %s: %v", name, r)
		}
	}()
	p := plot.New()
	p.Title.Text = lc.title
	p.X.Label.Text = lc.xLabel
	p.Y.Label.Text = lc.yLabel
	if lc.logX && lc.spread(func(xy plotter.XY) float64 { return xy.X }) {
		p.X.Scale = plot.LogScale{}
	}
	if lc.xTicks != nil {
		p.X.Tick.Marker = plot.ConstantTicks(lc.xTicks)
	}
	positive := true
	leg := plot.NewLegend()
	leg.Top, leg.Left = true, true
	i := 0
	for _, sr := range lc.series {
		if len(sr.xys) == 0 {
			continue
		}
		for _, xy := range sr.xys {
			positive = positive && xy.Y > 0
		}
		l, s, err := plotter.NewLinePoints(sr.xys)
		if err != nil {
			return false, err
		}
		l.Color, l.Dashes = plotutil.Color(i), plotutil.Dashes(i)
		s.Color, s.Shape = plotutil.Color(i), plotutil.Shape(i)
		if sr.bold {
			l.Width, l.Dashes, s.Radius = vg.Points(3), nil, vg.Points(4)
		}
		if lc.lines {
			p.Add(l)
			leg.Add(sr.name, l)
		} else {
			p.Add(l, s)
			leg.Add(sr.name, l, s)
		}
		i++
	}
	if i == 0 {
		return false, nil // no line: gonum's log axes panic without values
	}
	if lc.logY && positive && lc.spread(func(xy plotter.XY) float64 { return xy.Y }) {
		// The values span decades.
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if lc.yTicks != nil {
		p.Y.Tick.Marker = plot.ConstantTicks(lc.yTicks)
	}
	p.Add(plotter.NewGrid())
	const w, h, legendW = 9 * vg.Inch, 5 * vg.Inch, 1.8 * vg.Inch
	for _, format := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(w, h, format)
		if err != nil {
			return false, err
		}
		dc := draw.New(c)
		p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
		leg.Draw(draw.Crop(dc, w-legendW+vg.Points(8), 0, 0, -vg.Points(24)))
		f, err := os.Create(filepath.Join(dir, name+"."+format))
		if err != nil {
			return false, err
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return false, err
		}
		if err := f.Close(); err != nil {
			return false, err
		}
	}
	return true, nil
}
