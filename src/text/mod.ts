/**
 * Tokenizers (a character vocabulary with an unknown token) and training corpora.
 *
 * @module
 */
export * from "./char_vocab.ts";
export * from "./corpus.ts";
