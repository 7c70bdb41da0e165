// V tokens. A character vocabulary: one token per Unicode code point, plus "<unk>" for the rest.

/** The token that stands for every character outside the vocabulary. */
export const UNK = "<unk>";

/**
 * A token that no text spells: `<unk>`, or a marker such as `<female>` that a model takes as
 * an input of its own (the class a generator is asked for). Text never encodes to one; a
 * client sends it as `{"token": "<female>"}`.
 */
export const SPECIAL_TOKEN = /^<[a-z][a-z0-9_-]{0,30}>$/;

/**
 * Maps text to token ids one Unicode code point at a time, and back. A character outside the
 * vocabulary becomes {@linkcode UNK} when the vocabulary has it, and is an error otherwise.
 * Besides single characters a vocabulary may hold special tokens ({@linkcode SPECIAL_TOKEN}).
 *
 * @example
 * ```ts
 * import { CharVocab } from "./char_vocab.ts";
 * const vocab = new CharVocab(["<unk>", "a", "b"]);
 * vocab.encode("abz"); // Int32Array [1, 2, 0]
 * vocab.decode([2, 1]); // "ba"
 * ```
 */
export class CharVocab {
  /** Tokens by id. */
  readonly tokens: readonly string[];
  /** Id of {@linkcode UNK}, or -1 when the vocabulary has none. */
  readonly unkId: number;
  readonly #ids: Map<string, number>;

  /**
   * Builds a vocabulary from its tokens; each is a single code point or {@linkcode UNK}.
   *
   * @param tokens tokens by id, no duplicates
   */
  constructor(tokens: readonly string[]) {
    this.tokens = [...tokens];
    this.#ids = new Map();
    tokens.forEach((tok, id) => {
      if (typeof tok !== "string" || (!SPECIAL_TOKEN.test(tok) && [...tok].length !== 1)) {
        throw new RangeError(
          `vocabulary entry ${id} (${
            JSON.stringify(tok)
          }) is not one character or a special token like ${UNK}`,
        );
      }
      if (this.#ids.has(tok)) {
        throw new RangeError(
          `vocabulary repeats ${JSON.stringify(tok)} (ids ${this.#ids.get(tok)} and ${id})`,
        );
      }
      this.#ids.set(tok, id);
    });
    this.unkId = this.#ids.get(UNK) ?? -1;
  }

  /**
   * Builds the vocabulary of a corpus: {@linkcode UNK} first, then every distinct character in
   * code point order (so the same text always gives the same ids).
   *
   * @param text the corpus
   * @returns a vocabulary that covers it
   */
  static fromText(text: string): CharVocab {
    const chars = [...new Set(text)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    return new CharVocab([UNK, ...chars]);
  }

  /** Number of tokens V. */
  get size(): number {
    return this.tokens.length;
  }

  /**
   * The id of a token (a character or a special token), or -1 when it is not in the vocabulary
   * (no fallback to {@linkcode UNK}).
   *
   * @param token the token
   * @returns its id or -1
   */
  tokenId(token: string): number {
    return this.#ids.get(token) ?? -1;
  }

  /** The special tokens other than {@linkcode UNK}, e.g. the classes a generator takes. */
  get markers(): string[] {
    return this.tokens.filter((t) => t !== UNK && SPECIAL_TOKEN.test(t));
  }

  /**
   * The id of one character.
   *
   * @param ch a single code point
   * @returns its id, {@linkcode CharVocab.unkId} when unknown, or -1 if there is no UNK either
   */
  id(ch: string): number {
    return this.#ids.get(ch) ?? this.unkId;
  }

  /**
   * Token ids of a text, one per code point.
   *
   * @param text the text
   * @returns the ids
   */
  encode(text: string): Int32Array {
    const chars = [...text];
    const ids = new Int32Array(chars.length);
    for (let k = 0; k < chars.length; k++) {
      const id = this.id(chars[k]);
      if (id < 0) {
        throw new RangeError(
          `character ${
            JSON.stringify(chars[k])
          } at ${k} is not in the vocabulary (which has no ${UNK})`,
        );
      }
      ids[k] = id;
    }
    return ids;
  }

  /**
   * The text of a sequence of ids.
   *
   * @param ids token ids
   * @returns the concatenated tokens
   */
  decode(ids: Iterable<number>): string {
    let out = "";
    for (const id of ids) {
      const tok = this.tokens[id];
      if (tok === undefined) throw new RangeError(`token id ${id} is outside 0..${this.size - 1}`);
      out += tok;
    }
    return out;
  }
}
