// GET /: the demo page. Static markup with a label for every control; demo.js fills it from the
// public API (models, sessions, SSE), so the page holds nothing from the server to escape.
import { html } from "hono/html";
import { page } from "./layout.ts";

/**
 * The demo page: pick a model and a session, type and watch the per-character outputs stream in
 * (next-character distribution or class probabilities), generate text, and see the hidden state
 * as a heatmap over time.
 *
 * @returns the HTML document
 */
export function demoPage(): Promise<string> {
  return page({ title: "edge-rnn demo", script: true, body: BODY });
}

const BODY = html`
  <header class="top">
    <h1>edge-rnn demo</h1>
    <p>Recurrent networks served over Server-Sent Events. This page uses only the public HTTP API
  (<code>/models</code>, <code>/session/:id</code>); see the README for the same calls with curl.</p>
  </header>
  <main>
    <noscript><p class="note">This page needs JavaScript. The API works without it.</p></noscript>

    <section aria-labelledby="setup-h">
      <h2 id="setup-h">Model and session</h2>
      <div class="row">
        <div class="field">
          <label for="model">Model</label>
          <select id="model" name="model"></select>
        </div>
        <div class="field grow">
          <label for="session">Session id</label>
          <input id="session" name="session" required maxlength="128" pattern="[A-Za-z0-9_\\-]{1,128}"
            autocomplete="off" spellcheck="false" aria-describedby="session-help">
        </div>
        <button type="button" id="new-session">New session</button>
      </div>
      <p id="session-help" class="hint">Letters, digits, <code>_</code> and <code>-</code>. Enter an
  existing id to continue that session (it keeps its model).</p>
      <p id="model-info"></p>
      <p id="session-info" class="hint"></p>
    </section>

    <section aria-labelledby="type-h" id="type-section">
      <h2 id="type-h">Type</h2>
      <div class="field">
        <label for="input">Text to send to the session</label>
        <textarea id="input" name="input" rows="3" autocomplete="off" spellcheck="false"
          aria-describedby="input-hint"></textarea>
      </div>
      <p id="input-hint" class="hint">Each character is sent as you type it, and its output comes back
  as it is applied. The state only moves forward: changing earlier text starts a new session.</p>
      <h3 id="transcript-h">Session text</h3>
      <p id="transcript" class="transcript" aria-labelledby="transcript-h"></p>
    </section>

    <section aria-labelledby="out-h" id="out-section">
      <h2 id="out-h">Outputs</h2>
      <div class="field">
        <label for="position">Token shown</label>
        <input type="range" id="position" name="position" min="0" max="0" value="0" disabled
          aria-describedby="position-out">
        <output id="position-out" for="position"></output>
      </div>
      <div id="dist-box">
        <h3 id="dist-h">Next character</h3>
        <p id="dist-caption" class="hint"></p>
        <ol id="dist" class="bars" aria-labelledby="dist-h"></ol>
      </div>
      <div id="class-box" hidden>
        <h3 id="class-h">Class probabilities</h3>
        <p id="class-caption" class="hint"></p>
        <ul id="classes" class="bars" aria-labelledby="class-h"></ul>
        <p id="result" aria-live="polite"></p>
      </div>
    </section>

    <section aria-labelledby="gen-h" id="gen-section">
      <h2 id="gen-h">Generate</h2>
      <form id="gen-form">
        <fieldset id="gen-fields">
          <legend class="visually-hidden">Sampling options</legend>
          <div class="row">
            <div class="field" id="class-field" hidden>
              <label for="class">Class</label>
              <select id="class" name="class"></select>
            </div>
            <div class="field">
              <label for="max-tokens">Tokens</label>
              <input type="number" id="max-tokens" name="max_tokens" min="1" max="2000" step="1"
                value="80"
                required>
            </div>
            <div class="field">
              <label for="temperature">Temperature</label>
              <input type="number" id="temperature" name="temperature" min="0" max="10" step="0.05"
                value="0.8" required>
            </div>
            <div class="field">
              <label for="top-k">Top-k (0: all)</label>
              <input type="number" id="top-k" name="top_k" min="0" step="1" value="0" required>
            </div>
            <div class="field">
              <label for="seed">Seed</label>
              <input type="number" id="seed" name="seed" min="0" max="4294967295" step="1" value="1"
                required>
            </div>
            <button type="submit" id="generate">Generate</button>
          </div>
        </fieldset>
      </form>
      <p id="gen-hint" class="hint">Generated characters join the session: typing goes on after them.
  Temperature 0 always picks the most likely character; the same seed and state give the same
  text.</p>
      <p id="gen-status" class="hint" aria-live="polite"></p>
    </section>

    <section aria-labelledby="heat-h" id="heat-section">
      <h2 id="heat-h">Hidden state</h2>
      <p class="hint">One column per token, one row per hidden unit (every layer, top to bottom),
  from <code>?hidden=1</code>.</p>
      <p
        class="legend"><span>−1</span><span class="ramp" aria-hidden="true"></span><span>+1</span></p>
      <div class="heat-wrap" id="heat-wrap">
        <canvas id="heatmap" role="img" width="0" height="0"
          aria-label="Hidden state: no tokens yet"></canvas>
      </div>
    </section>

    <p id="status" role="status" class="status"></p>
  </main>
`;
