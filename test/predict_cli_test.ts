// `deno task predict` as a user runs it: a subprocess over PyTorch-made files, compared with the
// probabilities and states PyTorch recorded for the same text (fixtures/make_golden.py).
import assert from "node:assert/strict";
import { assertClose, loadCase } from "./_golden.ts";

const script = new URL("../src/cli/predict.ts", import.meta.url).pathname;

async function predict(args: string[], stdin?: string) {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", script, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder().decode(stdout);
  return {
    code,
    stderr: new TextDecoder().decode(stderr),
    lines: text.trim() === "" ? [] : text.trim().split("\n").map((l) => JSON.parse(l)),
  };
}

for (const name of ["gru_l2", "lstm_l2", "rnn_relu_l2"]) {
  Deno.test(`predict agrees with PyTorch on ${name}.safetensors`, async () => {
    const { golden, model } = await loadCase(name);
    const { layers, hiddenSize: h, outputSize: o } = model.network.config;
    const p = golden.predict;
    const { code, lines, stderr } = await predict([
      "--model",
      `fixtures/golden/${name}.safetensors`,
      "--text",
      p.text!,
      "--hidden",
      "--top-k",
      "3",
    ]);
    assert.equal(code, 0, stderr);
    assert.equal(lines.length, p.ids!.length);
    lines.forEach((line, s) => {
      assert.equal(line.id, p.ids![s]);
      assertClose(`step ${s} probs`, line.probs, p.probs.slice(s * o, (s + 1) * o), 1e-5);
      assertClose(
        `step ${s} hidden`,
        line.hidden.flat(),
        p.hidden.slice(s * layers * h, (s + 1) * layers * h),
        1e-5,
      );
      if (p.cell) {
        assertClose(
          `step ${s} cell`,
          line.cell.flat(),
          p.cell.slice(s * layers * h, (s + 1) * layers * h),
          1e-5,
        );
      }
      assert.equal(line.top.length, 3);
      assert.equal(line.top[0].p, Math.max(...line.probs));
      assert.equal(
        line.top[0].name,
        golden.predict.text ? model.meta.vocabulary![line.top[0].id] : undefined,
      );
    });
  });
}

Deno.test("predict reads the text from stdin and marks unknown characters as <unk>", async () => {
  const { code, lines, stderr } = await predict(
    ["--model", "fixtures/golden/gru_l1.safetensors"],
    "az",
  );
  assert.equal(code, 0, stderr);
  assert.deepEqual(lines.map((l) => [l.token, l.id]), [["a", 2], ["<unk>", 0]]);
});

Deno.test("predict runs a dense-input classifier on vectors and names its classes", async () => {
  const { golden } = await loadCase("gru_dense_l2");
  const inputs = golden.predict.inputs!;
  const vectors = [];
  for (let k = 0; k < inputs.length; k += 4) vectors.push(inputs.slice(k, k + 4));
  const { code, lines, stderr } = await predict(
    ["--model", "fixtures/golden/gru_dense_l2.safetensors", "--vectors", "-"],
    JSON.stringify(vectors),
  );
  assert.equal(code, 0, stderr);
  lines.forEach((line, s) =>
    assertClose(`step ${s}`, line.probs, golden.predict.probs.slice(s * 3, s * 3 + 3), 1e-5)
  );
  assert.ok(["neg", "neu", "pos"].includes(lines[0].top[0].name));
});

Deno.test("predict refuses a missing file, a corrupt model and bad flags with a message and exit 1", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = await Deno.readFile("fixtures/golden/gru_l1.safetensors");
    await Deno.writeFile(`${dir}/cut.safetensors`, bytes.subarray(0, bytes.length - 10));
    const cases: [string, string[], RegExp][] = [
      ["missing file", ["--model", `${dir}/none.safetensors`], /No such file/],
      ["truncated file", ["--model", `${dir}/cut.safetensors`, "--text", "a"], /safetensors/],
      ["no --model", ["--text", "a"], /--model FILE is required/],
      ["bad --top-k", [
        "--model",
        "fixtures/golden/gru_l1.safetensors",
        "--text",
        "a",
        "--top-k",
        "x",
      ], /--top-k/],
      ["vectors for a token model", [
        "--model",
        "fixtures/golden/gru_l1.safetensors",
        "--vectors",
        "-",
      ], /use --text/],
    ];
    for (const [what, args, message] of cases) {
      await t.step(what, async () => {
        const { code, stderr, lines } = await predict(args);
        assert.equal(code, 1);
        assert.match(stderr, message);
        assert.equal(lines.length, 0);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
