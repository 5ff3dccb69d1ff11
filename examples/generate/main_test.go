package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lavakv/lava/examples/internal/modelfile"
	"github.com/lavakv/lava/examples/llama"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestDefaultPromptEvicts(t *testing.T) {
	path := modelfile.PathForTest(t)
	_, tok, err := llama.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tok.Encode(defaultPrompt)); n != defaultPromptTokens {
		t.Errorf("the default prompt is %d tokens, the help says %d", n, defaultPromptTokens)
	}
	code, out, errs := runArgs(t, "-model", path, "-steps", "30")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	if !strings.HasPrefix(out, defaultPrompt) {
		t.Errorf("output does not start with the prompt:\n%s", out)
	}
	m := regexp.MustCompile(`prefill:  full (\d+) bytes, kept (\d+) bytes`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no prefill line in the report:\n%s", out)
	}
	full, _ := strconv.Atoi(m[1])
	kept, _ := strconv.Atoi(m[2])
	// 128 positions × 1,280 bytes (models README); 64 entries per head.
	if full != 128*1280 || kept > 64*1280 {
		t.Errorf("prefill full %d, kept %d bytes; want %d and at most %d", full, kept, 128*1280, 64*1280)
	}
	for _, want := range []string{"tokens:   prompt 128 (BOS included) in 4 chunks, generated 30", "tokens/s", "layer 4:", "chunk 32, slack 16"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// The golden text of the models README through the command line: greedy,
// no prompt, 200 tokens, decode tokens never evicted (-slack 0; with the
// default slack the cache is compressed from token 81 on and the text
// departs from the full cache's in its fourth line).
func TestGoldenCLI(t *testing.T) {
	path := modelfile.PathForTest(t)
	code, out, errs := runArgs(t, "-model", path, "-prompt", "", "-steps", "200", "-slack", "0")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	want := "Once upon a time, there was a little girl named Lily."
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "Lily didn't want to help her mom, so she\n") {
		t.Errorf("output is not the golden text:\n%s", out)
	}
}

func TestCompare(t *testing.T) {
	path := modelfile.PathForTest(t)
	// A prompt within the budget: nothing is evicted, the continuations
	// agree.
	code, out, errs := runArgs(t, "-model", path, "-prompt", "Once upon a time", "-steps", "60", "-compare")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	if !strings.Contains(out, "compare:  identical continuations over all 60 generated tokens") {
		t.Errorf("want identical continuations:\n%s", out)
	}
	// A tiny budget evicts most of the default prompt: the continuations
	// part somewhere, and the report says where.
	code, out, errs = runArgs(t, "-model", path, "-budget", "12", "-window", "4", "-steps", "60", "-compare")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	if !regexp.MustCompile(`compare:  (continuations first differ at generated token \d+|identical)`).MatchString(out) {
		t.Errorf("no comparison line:\n%s", out)
	}
	if strings.Count(out, defaultPrompt) != 2 {
		t.Errorf("want the prompt printed twice, once per continuation:\n%s", out)
	}
}

func TestSampledRunsRepeat(t *testing.T) {
	path := modelfile.PathForTest(t)
	args := []string{"-model", path, "-prompt", "The cat", "-steps", "40", "-temperature", "0.9", "-topp", "0.9", "-seed", "7"}
	_, a, _ := runArgs(t, args...)
	_, b, _ := runArgs(t, args...)
	text := func(s string) string { return s[:strings.Index(s, "--- cache report")] }
	if text(a) != text(b) {
		t.Errorf("the same seed gave different text:\n%s\n%s", text(a), text(b))
	}
}

func TestErrors(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "bad.gguf")
	if err := os.WriteFile(garbage, []byte("GGUF\x03\x00\x00\x00 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-model", filepath.Join(t.TempDir(), "missing.gguf")}, 1, "does not exist; pass -model"},
		{[]string{"-model", garbage}, 1, "cannot load model"},
		{[]string{"-budget", "8", "-window", "8"}, 1, "-budget = 8, want more than -window = 8"},
		{[]string{"-steps", "0"}, 1, "-steps = 0"},
		{[]string{"-policy", "snap"}, 1, `-policy = "snap", want one of lava, lava-layer, lava-head, snapkv`},
		{[]string{"-temperature", "-1", "-model", garbage}, 1, "-temperature = -1"},
		{[]string{"-topp", "0"}, 1, "-topp = 0, want a value in (0, 1]"},
		{[]string{"-chunk", "-1"}, 1, "-chunk = -1, want 1 ≤ chunk ≤ 1048576 tokens, or 0 for the whole prompt"},
		{[]string{"-budget", "9999999999"}, 1, "-budget = 9999999999"},
		{[]string{"-context", "99999999999"}, 1, "-context = 99999999999"},
		{[]string{"-slack", "-2"}, 1, "-slack = -2, want 0 ≤ slack ≤ 1048576"},
		{[]string{"-slack", "2000000"}, 1, "-slack = 2000000"},
		{[]string{"-nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"stray"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		code, _, errs := runArgs(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errs, c.code, c.msg)
		}
		if code == 1 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: stderr has several lines, want one:\n%s", c.args, errs)
		}
	}
}

// -kv-type (and -k-type, -v-type) set the storage: the full cache of the
// 128-token prompt is 5 layers × 4 KV heads × a key and a value row of 8
// elements per token, 32 bytes per row as f32, 16 as f16, 10 as q8_0 (a
// 2-byte scale and 8 int8) and 6 as q4_0 (a scale and 4 bytes).
func TestKVTypeFlags(t *testing.T) {
	path := modelfile.PathForTest(t)
	for _, c := range []struct {
		args    []string
		name    string
		rowK, v int
	}{
		{[]string{"-kv-type", "f16"}, "float16", 16, 16},
		{[]string{"-kv-type", "q8_0"}, "q8_0", 10, 10},
		{[]string{"-kv-type", "Q4_0"}, "q4_0", 6, 6},
		{[]string{"-k-type", "q8_0", "-v-type", "q4_0"}, "q8_0/q4_0", 10, 6},
		{[]string{"-kv-type", "q4_0", "-k-type", "f32"}, "float32/q4_0", 32, 6},
	} {
		code, out, errs := runArgs(t, append([]string{"-model", path, "-steps", "10"}, c.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %s", c.args, code, errs)
		}
		m := regexp.MustCompile(`prefill:  full (\d+) bytes, kept (\d+) bytes`).FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, c.name+" storage") {
			t.Fatalf("%v: no %s report:\n%s", c.args, c.name, out)
		}
		if full, _ := strconv.Atoi(m[1]); full != 128*5*4*(c.rowK+c.v) {
			t.Errorf("%v: full cache %d bytes, want %d", c.args, full, 128*5*4*(c.rowK+c.v))
		}
	}
	if code, _, errs := runArgs(t, "-model", path, "-kv-type", "q3"); code != 1 || !strings.Contains(errs, "-kv-type") {
		t.Errorf("-kv-type q3: exit %d, stderr %q; want 1 naming the flag", code, errs)
	}
}

// The peak the report gives is the most the cache held at any point: with
// chunks of 32 and the default budget of 64 it is reached by a prefill
// chunk, below the budget plus one chunk per head and above the budget;
// in one chunk it is the whole prompt; and with a slack the cache at the
// end of a long generation is within the budget plus the slack.
func TestPeak(t *testing.T) {
	path := modelfile.PathForTest(t)
	peak := regexp.MustCompile(`peak:     (\d+) bytes over prefill and decode`)
	end := regexp.MustCompile(`at end:   full (\d+) bytes, kept (\d+) bytes`)
	for _, c := range []struct {
		args     []string
		min, max int // entries per KV head, on average
	}{
		{[]string{"-steps", "10"}, 64, 64 + 32},
		{[]string{"-steps", "10", "-chunk", "0", "-slack", "0"}, 128, 128 + 9},
		{[]string{"-steps", "10", "-chunk", "16"}, 64, 64 + 16},
	} {
		code, out, errs := runArgs(t, append([]string{"-model", path}, c.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %s", c.args, code, errs)
		}
		m := peak.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%v: no peak line:\n%s", c.args, out)
		}
		p, _ := strconv.Atoi(m[1])
		if p < c.min*1280 || p > c.max*1280 {
			t.Errorf("%v: peak %d bytes = %.1f entries per head, want %d to %d", c.args, p, float64(p)/1280, c.min, c.max)
		}
	}
	code, out, errs := runArgs(t, "-model", path, "-prompt", "Once upon a time", "-steps", "300", "-slack", "8")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	m := end.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no at-end line:\n%s", out)
	}
	if kept, _ := strconv.Atoi(m[2]); kept > (64+8)*1280 {
		t.Errorf("kept %d bytes after 300 steps with slack 8, want ≤ %d", kept, (64+8)*1280)
	}
}
