/**
 * Tokenizers: a character vocabulary with an unknown token.
 *
 * @module
 */
export * from "./char_vocab.ts";
