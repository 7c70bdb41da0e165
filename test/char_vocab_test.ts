// V tokens. Unit tests for the character vocabulary in src/text/char_vocab.ts.
import assert from "node:assert/strict";
import { CharVocab, UNK } from "../src/text/char_vocab.ts";

Deno.test("CharVocab encode() then decode() gives the text back", () => {
  const text = "hello, world\nçà va? 日本語";
  const vocab = CharVocab.fromText(text);
  const ids = vocab.encode(text);
  assert.ok(ids instanceof Int32Array);
  assert.equal(ids.length, [...text].length);
  assert.equal(vocab.decode(ids), text);
  // Ids are positions in the token list.
  assert.deepEqual(
    [...new CharVocab([UNK, "a", "b", " "]).encode("ab a")],
    [1, 2, 3, 1],
  );
  assert.equal(new CharVocab([UNK, "a", "b", " "]).decode([2, 3, 1]), "b a");
  assert.equal(vocab.decode([]), "");
  assert.deepEqual([...vocab.encode("")], []);
});

Deno.test("CharVocab maps characters outside the vocabulary to <unk>", () => {
  const vocab = new CharVocab(["a", UNK, "b"]); // <unk> need not be id 0
  assert.equal(vocab.unkId, 1);
  assert.deepEqual([...vocab.encode("abzq")], [0, 2, 1, 1]);
  assert.equal(vocab.id("z"), 1);
  assert.equal(vocab.decode(vocab.encode("azb")), `a${UNK}b`);
});

Deno.test("CharVocab without <unk> refuses an unknown character, naming it", () => {
  const vocab = new CharVocab(["a", "b"]);
  assert.equal(vocab.unkId, -1);
  assert.equal(vocab.id("z"), -1);
  assert.throws(
    () => vocab.encode("abz"),
    (err: unknown) =>
      err instanceof RangeError && err.message.includes('"z"') && err.message.includes("at 2"),
  );
  assert.throws(
    () => vocab.encode("a😀"),
    (err: unknown) => err instanceof RangeError && err.message.includes('"😀"'),
  );
});

Deno.test("CharVocab treats an astral code point (emoji) as one token", () => {
  const text = "a😀b😀🎉";
  const vocab = CharVocab.fromText(text);
  assert.deepEqual(vocab.tokens, [UNK, "a", "b", "🎉", "😀"]); // U+1F389 < U+1F600
  const ids = vocab.encode(text);
  assert.equal(ids.length, 5, "five code points, though the string has eight UTF-16 units");
  assert.deepEqual([...ids], [1, 4, 2, 4, 3]);
  assert.equal(vocab.decode(ids), text);
  // An unknown emoji is one <unk>, not two halves of a surrogate pair.
  assert.deepEqual([...vocab.encode("🚀a")], [0, 1]);
  // An emoji is accepted as a single-character token.
  assert.equal(new CharVocab(["🚀"]).size, 1);
});

Deno.test("CharVocab.fromText() is deterministic and sorted by code point, <unk> first", () => {
  const a = CharVocab.fromText("the quick brown fox");
  const b = CharVocab.fromText("xof nworb kciuq eht");
  assert.deepEqual(a.tokens, b.tokens, "the same characters in any order give the same ids");
  assert.deepEqual(a.tokens, [
    UNK,
    " ",
    "b",
    "c",
    "e",
    "f",
    "h",
    "i",
    "k",
    "n",
    "o",
    "q",
    "r",
    "t",
    "u",
    "w",
    "x",
  ]);
  // Code point order, not UTF-16 order: U+FF01 sorts before U+1F600 (whose first unit is 0xD83D).
  assert.deepEqual(CharVocab.fromText("😀！a").tokens, [UNK, "a", "！", "😀"]);
  assert.deepEqual(CharVocab.fromText("").tokens, [UNK]);
  assert.equal(CharVocab.fromText("abcabc").size, 4);
});

Deno.test("CharVocab refuses duplicate tokens, naming the token and both ids", () => {
  assert.throws(
    () => new CharVocab([UNK, "a", "b", "a"]),
    (err: unknown) =>
      err instanceof RangeError && err.message.includes('"a"') && err.message.includes("1") &&
      err.message.includes("3"),
  );
  assert.throws(() => new CharVocab([UNK, "x", UNK]), RangeError);
});

Deno.test("CharVocab refuses tokens that are not one character or a special token", () => {
  for (const bad of ["ab", "", "<Pad>", "<>", "<a b>", "e\u0301"]) {
    assert.throws(
      () => new CharVocab([UNK, "a", bad]),
      (err: unknown) =>
        err instanceof RangeError && err.message.includes("entry 2") &&
        err.message.includes(JSON.stringify(bad)),
      `token ${JSON.stringify(bad)}`,
    );
  }
});

Deno.test("CharVocab holds special tokens that text never encodes to", () => {
  const vocab = new CharVocab([UNK, "<female>", "<male>", "a", "<"]);
  assert.deepEqual(vocab.markers, ["<female>", "<male>"]);
  assert.equal(vocab.tokenId("<male>"), 2);
  assert.equal(vocab.tokenId("z"), -1);
  // "<male>" typed as text is six characters, not the marker.
  assert.deepEqual([...vocab.encode("<male>")], [4, 0, 3, 0, 0, 0]);
  assert.equal(vocab.decode([1, 3]), "<female>a");
});

Deno.test("CharVocab decode() refuses an id outside the vocabulary", () => {
  const vocab = new CharVocab([UNK, "a"]);
  for (const bad of [2, -1, 0.5]) {
    assert.throws(
      () => vocab.decode([1, bad]),
      (err: unknown) => err instanceof RangeError && err.message.includes(`${bad}`),
      `id ${bad}`,
    );
  }
});

Deno.test("CharVocab keeps its own copy of the tokens", () => {
  const tokens = [UNK, "a", "b"];
  const vocab = new CharVocab(tokens);
  tokens[1] = "z";
  assert.deepEqual(vocab.tokens, [UNK, "a", "b"]);
  assert.equal(vocab.decode([1]), "a");
});
