/**
 * The pages people open in a browser: the demo page (`/`, with its script and stylesheet) and
 * the model pages (`/models/:name` when HTML is asked for).
 *
 * @module
 */
export * from "./layout.ts";
export * from "./demo_page.ts";
export * from "./model_page.ts";
export * from "./assets.ts";
