// The files the pages load: the demo script, the stylesheet and the icon. They are plain files
// beside this module (read once, on first use), so the script is linted and formatted like the
// rest and needs no build step.

/** A static file the pages load. */
export interface Asset {
  /** The body. */
  text: string;
  /** Its Content-Type. */
  type: string;
}

/** Served path to file name and content type. */
export const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  "/demo.js": { file: "demo.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/favicon.svg": { file: "favicon.svg", type: "image/svg+xml" },
};

const loaded = new Map<string, Promise<Asset>>();

/**
 * A static file of the pages, read on first use and kept.
 *
 * @param path its served path, a key of {@linkcode ASSETS}
 * @returns the file's text and content type
 * @throws {RangeError} for a path that is not an asset
 */
export function asset(path: string): Promise<Asset> {
  const entry = ASSETS[path];
  if (entry === undefined) throw new RangeError(`no asset ${path}`);
  let found = loaded.get(path);
  if (found === undefined) {
    found = Deno.readTextFile(new URL(entry.file, import.meta.url)).then((text) => ({
      text,
      type: entry.type,
    }));
    // A failed read is not kept: the next request tries again.
    found.catch(() => loaded.delete(path));
    loaded.set(path, found);
  }
  return found;
}
