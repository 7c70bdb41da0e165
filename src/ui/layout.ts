// The HTML shell of the pages (the demo page and the model pages): one stylesheet and one script,
// both served from here, under a Content-Security-Policy that allows nothing else: no inline
// script or style, no other origin. Text from models (names, vocabularies, labels) is escaped by
// the `html` template, and even markup that slipped through could not run a script.
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

/** What the pages may load: scripts, styles, images and fetches from this origin only. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers of every HTML page. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** What goes into the shell. */
export interface PageParts {
  /** The document title (escaped). */
  title: string;
  /** The page body, already made with the `html` template. */
  body: HtmlEscapedString | Promise<HtmlEscapedString>;
  /** Load the demo script. @default false */
  script?: boolean;
}

/**
 * A whole HTML document: language, character set, viewport for narrow screens, the stylesheet,
 * the icon and (for the demo) the script, then the body.
 *
 * @param parts title, body, script
 * @returns the document as text
 * @example
 * ```ts
 * import { html } from "hono/html";
 * import { page } from "./layout.ts";
 * const doc = await page({ title: "a <b>", body: html`<main>hi</main>` });
 * doc.includes("<title>a &lt;b&gt;</title>"); // true
 * ```
 */
export async function page(parts: PageParts): Promise<string> {
  const doc = await html`
    <!doctype html>
    <html lang="en">
      <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${parts.title}</title>
    <link rel="stylesheet" href="/style.css">
    <link rel="icon" href="/favicon.svg" type="image/svg+xml">
    ${parts.script === true ? html`<script type="module" src="/demo.js"></script>` : ""}
      </head>
      <body>
    ${parts.body}
      </body>
    </html>
  `;
  return doc.toString().trimStart();
}
