// B streams, T = k1 = k2 steps per update, E embedding width, H hidden, V vocabulary.
// Training throughput in characters per second of TbpttTrainer with Adam on Moby-Dick, for the
// rnn, gru and lstm cells at a character model's usual size (H 256, B 32, T 64, E 64), and of
// the same loop in PyTorch when python3 has torch: the ratio says how far the runtime is from
// the reference. A script, not Deno.bench: an update takes a good fraction of a second, and the
// cells are interleaved round by round so that a machine that slows down mid-run (thermal, a
// neighbour) shifts every cell alike; each cell reports its median round.
//
//   deno run --allow-read --allow-write --allow-run --allow-env test/bench/train_throughput.ts
//     [--rounds 3] [--updates 10]
import { parseArgs } from "node:util";
import { type CellKind, Network } from "../../src/nn/mod.ts";
import { CharVocab, loadCorpus } from "../../src/text/mod.ts";
import { createOptimizer, TbpttTrainer } from "../../src/train/mod.ts";

const CELLS: readonly CellKind[] = ["rnn", "gru", "lstm"];
const H = 256, B = 32, T = 64, E = 64;
const LR = 3e-3;
/** Updates per cell before any timing: JIT compilation and first-touch of the buffers. */
const WARMUP = 2;
const PYTHON = "/usr/bin/python3";
const TORCH_THREADS = 2;
/** Threads of our trainer: the same two cores PyTorch gets. */
const THREADS = 2;

/** The same loop in PyTorch: detached state carried between chunks over B contiguous streams. */
const TORCH_SCRIPT = `
import json, statistics, sys, time
import torch
from torch import nn

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(1)
text = open(cfg["corpus"], encoding="utf-8").read()
chars = sorted(set(text))
stoi = {c: i + 1 for i, c in enumerate(chars)}  # id 0 is <unk>, as in CharVocab.fromText
V = len(chars) + 1
B, T, E, H = cfg["batch"], cfg["steps"], cfg["embed"], cfg["hidden"]
ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
seg = len(ids) // B
streams = ids[: B * seg].view(B, seg).t().contiguous()  # (seg, B): stream b is a contiguous run

class Net(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](E, H)
        self.head = nn.Linear(H, V)

    def forward(self, x, state):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state

class Run:
    def __init__(self, cell):
        self.net = Net(cell)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg["lr"])
        self.loss = nn.CrossEntropyLoss()
        self.p, self.state = 0, None

    def update(self):
        if self.p + T + 1 > seg:
            self.p, self.state = 0, None
        x = streams[self.p : self.p + T]
        y = streams[self.p + 1 : self.p + T + 1]
        logits, state = self.net(x, self.state)
        loss = self.loss(logits.reshape(-1, V), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        self.p += T
        return T * B

runs = {cell: Run(cell) for cell in cfg["cells"]}
for run in runs.values():
    for _ in range(cfg["warmup"]):
        run.update()
rates = {cell: [] for cell in runs}
for _ in range(cfg["rounds"]):
    for cell, run in runs.items():
        t0 = time.perf_counter()
        chars_done = sum(run.update() for _ in range(cfg["updates"]))
        rates[cell].append(chars_done / (time.perf_counter() - t0))
blas = ([w.split("=")[1].rstrip(",") for w in torch.__config__.show().split() if w.startswith("BLAS_INFO=")] or ["?"])[0]
print(json.dumps({"blas": blas, "rates": {cell: statistics.median(r) for cell, r in rates.items()}}))
`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median characters per second of each cell in this runtime. */
function measureOurs(text: string, rounds: number, updates: number): Map<CellKind, number> {
  const vocab = CharVocab.fromText(text);
  const ids = vocab.encode(text); // (N)
  const trainers = new Map<CellKind, TbpttTrainer>();
  for (const cell of CELLS) {
    const net = Network.create({
      cell,
      nonlinearity: "tanh",
      input: "embedding",
      vocabSize: vocab.size,
      inputSize: E,
      hiddenSize: H,
      layers: 1,
      outputSize: vocab.size,
    }, 1);
    const optimizer = createOptimizer("adam", net.params.length, {});
    const trainer = new TbpttTrainer(
      net,
      ids,
      { k1: T, k2: T, batch: B, threads: THREADS },
      optimizer,
    );
    // No clipping, as in the PyTorch loop (the norm is still computed: one pass over P).
    for (let k = 0; k < WARMUP; k++) trainer.step(LR, Infinity);
    trainers.set(cell, trainer);
  }
  const rates = new Map<CellKind, number[]>(CELLS.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    for (const cell of CELLS) {
      const trainer = trainers.get(cell)!;
      let chars = 0, loss = 0;
      const t0 = performance.now();
      for (let k = 0; k < updates; k++) {
        const step = trainer.step(LR, Infinity);
        chars += step.tokens;
        loss = step.loss;
      }
      const seconds = (performance.now() - t0) / 1000;
      // A diverged run does different work (NaNs take other paths): its time means nothing.
      if (!Number.isFinite(loss)) throw new Error(`${cell}: training diverged (loss ${loss})`);
      rates.get(cell)!.push(chars / seconds);
    }
  }
  for (const trainer of trainers.values()) trainer.close();
  return new Map(CELLS.map((c) => [c, median(rates.get(c)!)]));
}

async function hasTorch(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** What the PyTorch loop measured, and the BLAS its build links (BLAS_INFO of torch's config). */
interface TorchResult {
  blas: string;
  rates: Map<CellKind, number>;
}

/** Median characters per second of each cell in PyTorch, on the same text and sizes. */
async function measureTorch(text: string, rounds: number, updates: number): Promise<TorchResult> {
  const corpus = await Deno.makeTempFile({ prefix: "moby_", suffix: ".txt" });
  try {
    await Deno.writeTextFile(corpus, text);
    const cfg = {
      corpus,
      cells: CELLS,
      batch: B,
      steps: T,
      embed: E,
      hidden: H,
      lr: LR,
      threads: TORCH_THREADS,
      warmup: WARMUP,
      rounds,
      updates,
    };
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", TORCH_SCRIPT, JSON.stringify(cfg)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    if (!out.success) {
      throw new Error(`the PyTorch loop failed (exit ${out.code}):\n${dec.decode(out.stderr)}`);
    }
    const { blas, rates } = JSON.parse(dec.decode(out.stdout)) as {
      blas: string;
      rates: Record<CellKind, number>;
    };
    return { blas, rates: new Map(CELLS.map((c) => [c, rates[c]])) };
  } finally {
    await Deno.remove(corpus);
  }
}

function positiveInt(flag: string, text: string): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`--${flag} must be a whole number ≥ 1, not ${JSON.stringify(text)}`);
  }
  return v;
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      rounds: { type: "string", default: "3" },
      updates: { type: "string", default: "10" },
    },
  });
  const rounds = positiveInt("rounds", values.rounds);
  const updates = positiveInt("updates", values.updates);
  const { text } = await loadCorpus("moby-dick");
  const setup = `Moby-Dick (${text.length} characters), Adam lr ${LR}, H=${H}, B=${B}, ` +
    `k1=k2=${T}, embedding ${E}; ${rounds} rounds × ${updates} updates per cell after ${WARMUP} ` +
    `warm-up updates, median round`;
  console.log(`Training throughput: ${setup}.\n`);

  const ours = measureOurs(text, rounds, updates);
  const torch = await hasTorch() ? await measureTorch(text, rounds, updates) : null;

  const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
  const rows = CELLS.map((cell) => {
    const o = ours.get(cell)!;
    if (torch === null) return `| ${cell} | ${fmt(o)} |`;
    const p = torch.rates.get(cell)!;
    return `| ${cell} | ${fmt(o)} | ${fmt(p)} | ${(o / p).toFixed(2)} |`;
  });
  const header = torch === null ? ["| cell | ours (chars/s) |", "|---|---:|"] : [
    `| cell | ours (chars/s) | PyTorch ${TORCH_THREADS} threads (chars/s) | ours / PyTorch |`,
    "|---|---:|---:|---:|",
  ];
  console.log([...header, ...rows].join("\n"));
  if (torch === null) {
    console.log(`\nPyTorch skipped: \`${PYTHON} -c "import torch"\` failed.`);
  } else if (torch.blas === "generic") {
    // Distribution builds (Debian's python3-torch) link the system libblas, often the reference
    // one: their matrix products are many times slower than a pip wheel's MKL.
    console.log(
      "\nThis PyTorch build links a generic BLAS (BLAS_INFO=generic, e.g. Debian's reference " +
        "libblas): a pip wheel with MKL or OpenBLAS would be much faster than the numbers above.",
    );
  } else {
    console.log(`\nPyTorch BLAS: ${torch.blas}.`);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (err) {
    console.error(`train_throughput: ${(err as Error).message}`);
    Deno.exitCode = 1;
  }
}
