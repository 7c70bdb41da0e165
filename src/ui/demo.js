// The demo page's script (GET /demo.js), a client of the public HTTP API and nothing else:
// GET /models and /models/:name to learn what is served, GET /session/:id to look a session up,
// POST /session/:id?hidden=1 for each batch of typed characters and POST /session/:id/generate,
// whose Server-Sent Events it reads from fetch response streams. No framework, no build step.
// Text from the server reaches the page only as text (textContent), never as markup.

/** Whitespace tokens, drawn so they can be seen. */
const SHOWN = { " ": "␣", "\n": "↵", "\t": "⇥" };
/** Heatmap columns kept: the newest ones. */
const MAX_COLUMNS = 2000;
/** Width of a heatmap column, CSS pixels. */
const COLUMN_PX = 8;
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The element with this id.
 * @param {string} id
 * @returns {any}
 */
function byId(id) {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found;
}

const ui = {
  model: byId("model"),
  modelInfo: byId("model-info"),
  session: byId("session"),
  newSession: byId("new-session"),
  sessionInfo: byId("session-info"),
  typeSection: byId("type-section"),
  input: byId("input"),
  inputHint: byId("input-hint"),
  transcript: byId("transcript"),
  position: byId("position"),
  positionOut: byId("position-out"),
  distBox: byId("dist-box"),
  distCaption: byId("dist-caption"),
  dist: byId("dist"),
  classBox: byId("class-box"),
  classCaption: byId("class-caption"),
  classes: byId("classes"),
  result: byId("result"),
  genForm: byId("gen-form"),
  genFields: byId("gen-fields"),
  classField: byId("class-field"),
  klass: byId("class"),
  maxTokens: byId("max-tokens"),
  temperature: byId("temperature"),
  topK: byId("top-k"),
  seed: byId("seed"),
  genHint: byId("gen-hint"),
  genStatus: byId("gen-status"),
  heatSection: byId("heat-section"),
  heatWrap: byId("heat-wrap"),
  heatmap: byId("heatmap"),
  status: byId("status"),
};

/**
 * @typedef {{ seq: number, token: string, generated: boolean,
 *   top?: { token: string, p: number }[], probs?: Record<string, number>, h?: number[] }} Applied
 */

const state = {
  /** The selected model: name, version, task, labels, class markers, hidden units (L·H). */
  info: /** @type {null | { name: string, version: number, task: string,
    labels: string[] | null, markers: string[], units: number, cell: string,
    layers: number, hidden: number }} */
    (null),
  /** The session id requests go to (the field may hold an id being typed). */
  id: "",
  /** Every character taken from the text box so far (sent, or waiting to be). */
  typed: "",
  /** How much of `typed` has been handed to a request. */
  sent: 0,
  /** Tokens applied in this page's view of the session, oldest first. */
  tokens: /** @type {Applied[]} */ ([]),
  /** The session's seq as last reported. */
  seq: 0,
  /** The token whose outputs are shown (an index into tokens), or -1 for the newest. */
  shown: -1,
  /** A generator's session that has written its whole sequence. */
  complete: false,
  /** Requests on the session run one at a time (the server allows one per session). */
  chain: Promise.resolve(),
  flushQueued: false,
  /** Bumped for every new session: answers for an older one are dropped. */
  epoch: 0,
};

// ---------------------------------------------------------------------------------------------
// The API

/**
 * A JSON error body as one line of text.
 * @param {Response} res
 * @returns {Promise<string>}
 */
async function errorText(res) {
  try {
    const body = await res.json();
    return `${res.status} ${body.error.code}: ${body.error.message}`;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

/**
 * GET a JSON resource (asking for JSON: a browser's default Accept would get a page).
 * @param {string} path
 * @returns {Promise<any>}
 */
async function getJson(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(await errorText(res));
  return await res.json();
}

/**
 * Reads a Server-Sent Events response and hands each event to `onEvent` as it arrives.
 * @param {Response} res
 * @param {(event: { event: string, id: string, data: any }) => void} onEvent
 */
async function readEvents(res, onEvent) {
  if (res.body === null) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", id = "";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line === "" || line.startsWith(":")) continue; // a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "id") id = value;
        else if (field === "data") data.push(value);
      }
      if (data.length > 0) onEvent({ event, id, data: JSON.parse(data.join("\n")) });
    }
  }
}

/**
 * POSTs to a session route and reads its events; a refusal (4xx) becomes an Error.
 * @param {string} path
 * @param {string} type the body's content type
 * @param {string} body
 * @param {(event: { event: string, id: string, data: any }) => void} onEvent
 */
async function post(path, type, body, onEvent) {
  const res = await fetch(path, { method: "POST", headers: { "content-type": type }, body });
  if (!res.ok) throw new Error(await errorText(res));
  await readEvents(res, onEvent);
}

/**
 * Runs `work` after every request queued before it, unless the session changed meanwhile.
 * @param {() => Promise<void>} work
 */
function enqueue(work) {
  const epoch = state.epoch;
  state.chain = state.chain
    .then(() => epoch === state.epoch ? work() : undefined)
    .catch((err) => {
      if (epoch === state.epoch) say(`Error: ${err instanceof Error ? err.message : err}`);
    });
}

// ---------------------------------------------------------------------------------------------
// Models and sessions

/** A new session id: "demo-" and 8 random letters and digits. */
function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "demo-" + Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

/** @param {string} text */
function say(text) {
  ui.status.textContent = text;
}

/**
 * What a model is for, in a few words.
 * @param {string} task
 */
function taskName(task) {
  return {
    lm: "next character, many to many",
    classify: "classifier, many to one",
    generate: "generator, one to many",
    single: "one to one",
  }[task] ?? task;
}

async function loadModels() {
  const { models } = await getJson("/models");
  ui.model.replaceChildren();
  for (const m of models) {
    const current = m.versions.find((v) => v.version === m.current) ?? m.versions.at(-1);
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = current ? `${m.name} (${taskName(current.task)})` : m.name;
    ui.model.append(option);
  }
  if (models.length === 0) {
    say("No model is published yet: train one with deno task train.");
    return;
  }
  const wanted = new URLSearchParams(location.search).get("model");
  const names = models.map((m) => m.name);
  ui.model.value = names.includes(wanted) ? wanted : names.includes("moby") ? "moby" : names[0];
  await selectModel(ui.model.value, true);
}

/**
 * Loads a model's manifest and sets the page up for its task.
 * @param {string} name
 * @param {boolean} fresh start a new session on it
 * @param {number} [version] the version (an existing session's); the current one by default
 */
async function selectModel(name, fresh, version) {
  const found = await getJson(`/models/${encodeURIComponent(name)}`);
  const wanted = version ?? found.current;
  const m = found.versions.find((v) => v.version === wanted);
  if (m === undefined) throw new Error(`${name} version ${wanted} is no longer kept`);
  const vocab = m.vocabulary ?? [];
  state.info = {
    name,
    version: m.version,
    task: m.task,
    labels: m.labels,
    markers: vocab.filter((t) => /^<.+>$/.test(t) && t !== "<unk>"),
    units: m.layers * m.hiddenSize,
    cell: m.cell,
    layers: m.layers,
    hidden: m.hiddenSize,
  };
  const info = state.info;
  const link = document.createElement("a");
  link.href = `/models/${encodeURIComponent(name)}`;
  link.textContent = "model page: versions, training, loss curves";
  ui.modelInfo.replaceChildren(
    `${name} version ${info.version}: ${taskName(info.task)}, ${info.cell.toUpperCase()} ` +
      `${info.layers}×${info.hidden}. `,
    link,
  );
  const classifier = info.labels !== null;
  const generator = info.markers.length > 0;
  ui.distBox.hidden = classifier;
  ui.classBox.hidden = !classifier;
  ui.input.disabled = generator;
  ui.inputHint.textContent = generator
    ? "This model starts from a class: pick one under Generate. It does not read typed text."
    : info.task === "single"
    ? "One to one: the last character you type is sent alone, and its class comes back."
    : "Each character is sent as you type it, and its output comes back as it is applied. " +
      "The state only moves forward: changing earlier text starts a new session.";
  ui.genFields.disabled = classifier;
  ui.genHint.textContent = classifier
    ? "Classifiers do not generate."
    : generator
    ? "Each Generate writes one sequence from the class, in a new session."
    : "Generated characters join the session: typing goes on after them. Temperature 0 " +
      "always picks the most likely character; the same seed and state give the same text.";
  ui.classField.hidden = !generator;
  ui.klass.replaceChildren(...info.markers.map((marker) => {
    const option = document.createElement("option");
    option.value = marker.slice(1, -1);
    option.textContent = marker.slice(1, -1);
    return option;
  }));
  ui.heatSection.hidden = info.task === "single";
  if (fresh) startSession(newId());
}

/**
 * Starts over on a session id: clears what the page shows (not the text box).
 * @param {string} id
 */
function startSession(id) {
  state.epoch++;
  state.chain = Promise.resolve();
  state.flushQueued = false;
  state.typed = "";
  state.sent = 0;
  state.tokens = [];
  state.seq = 0;
  state.shown = -1;
  state.complete = false;
  state.id = id;
  ui.session.value = id;
  ui.sessionInfo.textContent = `Session ${id}: new, it starts with the first character sent.`;
  ui.genStatus.textContent = "";
  ui.result.textContent = "";
  ui.transcript.replaceChildren();
  heat.reset();
  render();
}

/** The user typed an id: continue that session if it exists (on its own model). */
async function lookUpSession() {
  const id = ui.session.value.trim();
  if (!SESSION_ID.test(id)) {
    say(`A session id is 1 to 128 letters, digits, _ or -; still using ${state.id}.`);
    return;
  }
  let found = null;
  try {
    found = await getJson(`/session/${id}`);
  } catch (err) {
    if (!(err instanceof Error && err.message.startsWith("404"))) throw err;
  }
  if (
    found !== null && (found.model !== state.info?.name || found.version !== state.info.version)
  ) {
    ui.model.value = found.model;
    await selectModel(found.model, false, found.version);
  }
  startSession(id);
  ui.input.value = "";
  if (found !== null) {
    state.seq = found.seq;
    state.complete = state.info !== null && state.info.markers.length > 0 && found.seq > 1;
    ui.sessionInfo.textContent =
      `Session ${id} continues at seq ${found.seq} (${found.model} version ${found.version}).`;
  }
}

// ---------------------------------------------------------------------------------------------
// Typing and generating

/** Takes what is new in the text box; an edit before its end starts a new session. */
function onInput() {
  const info = state.info;
  if (info === null) return;
  const text = ui.input.value;
  if (info.task === "single") {
    state.typed = text;
    if (!state.flushQueued && text !== "") {
      state.flushQueued = true;
      enqueue(sendLastCharacter);
    }
    return;
  }
  if (!text.startsWith(state.typed)) {
    startSession(newId());
    say(
      `The text changed before its end, and a state cannot go back: new session ` +
        `${state.id}, the whole text sent again.`,
    );
  }
  state.typed = text;
  if (!state.flushQueued) {
    state.flushQueued = true;
    enqueue(sendTyped);
  }
}

/** Sends every character typed since the last request, in one streamed request. */
async function sendTyped() {
  state.flushQueued = false;
  const chunk = state.typed.slice(state.sent);
  if (chunk === "") return;
  state.sent = state.typed.length;
  const epoch = state.epoch;
  const model = encodeURIComponent(state.info.name);
  const path = `/session/${state.id}?model=${model}&hidden=1`;
  await post(path, "text/plain; charset=utf-8", chunk, (e) => {
    if (epoch === state.epoch) onSessionEvent(e, false);
  });
}

/** One to one: sends the text box's last character alone. */
async function sendLastCharacter() {
  state.flushQueued = false;
  const last = Array.from(state.typed).at(-1);
  if (last === undefined) return;
  const epoch = state.epoch;
  const model = encodeURIComponent(state.info.name);
  await post(
    `/session/${state.id}?model=${model}`,
    "text/plain; charset=utf-8",
    last,
    (e) => {
      if (epoch !== state.epoch) return;
      if (e.event === "result") {
        showClasses(e.data.probs, `For “${shown(last)}” alone:`);
        ui.result.textContent = `Result: ${e.data.label}`;
      }
      onSessionEvent(e, false);
    },
  );
}

/**
 * @param {{ event: string, id: string, data: any }} e
 * @param {boolean} generated
 */
function onSessionEvent(e, generated) {
  const d = e.data;
  switch (e.event) {
    case "step":
    case "token":
      state.seq = d.seq;
      state.tokens.push({
        seq: d.seq,
        token: d.token,
        generated,
        top: d.top,
        probs: d.probs,
        h: d.h,
      });
      appendToken(state.tokens.length - 1);
      if (Array.isArray(d.h)) heat.push(d.h);
      scheduleRender();
      break;
    case "result":
      if (state.info.task !== "single") {
        ui.result.textContent = `Result after seq ${d.seq}: ${d.label} (${
          percent(d.probs[d.label])
        })`;
      }
      break;
    case "done":
      state.seq = d.seq;
      ui.sessionInfo.textContent = `Session ${state.id}: seq ${d.seq}, durable ${d.durable_seq}.`;
      if (d.finish_reason !== undefined) {
        ui.genStatus.textContent = `Generated up to seq ${d.seq} (${
          d.finish_reason === "stop" ? "the sequence ended" : "token limit reached"
        }).`;
        if (state.info.markers.length > 0 && d.finish_reason === "stop") state.complete = true;
      }
      break;
    case "error":
      say(`Error: ${d.code}: ${d.message} (durable seq ${d.durable_seq})`);
      break;
  }
}

/** @param {SubmitEvent} event */
function onGenerate(event) {
  event.preventDefault();
  const info = state.info;
  if (info === null || info.labels !== null) return;
  const options = {
    max_tokens: ui.maxTokens.valueAsNumber,
    temperature: ui.temperature.valueAsNumber,
    top_k: ui.topK.valueAsNumber,
    seed: ui.seed.valueAsNumber,
    model: info.name,
    hidden: true,
  };
  // A generator's session holds one sequence: each Generate starts another.
  if (info.markers.length > 0) {
    if (state.seq > 0 || state.complete) startSession(newId());
    options.class = ui.klass.value;
  }
  ui.genStatus.textContent = "Generating…";
  enqueue(async () => {
    const epoch = state.epoch;
    await post(
      `/session/${state.id}/generate`,
      "application/json",
      JSON.stringify(options),
      (e) => {
        if (epoch === state.epoch) onSessionEvent(e, true);
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Drawing

/** @param {string} token */
function shown(token) {
  return SHOWN[token] ?? token;
}

/** @param {number} p */
function percent(p) {
  return `${(100 * p).toFixed(1)} %`;
}

/** @param {number} index */
function appendToken(index) {
  const t = state.tokens[index];
  const span = document.createElement("span");
  span.textContent = t.token === "\n" ? "↵\n" : t.token;
  span.className = t.generated ? "tok generated" : "tok";
  span.dataset.index = String(index);
  ui.transcript.append(span);
}

/**
 * One bar per entry: the label, a meter, the percentage.
 * @param {HTMLElement} list
 * @param {[string, number][]} entries
 */
function drawBars(list, entries) {
  list.replaceChildren(...entries.map(([label, p]) => {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = p;
    meter.setAttribute("aria-hidden", "true");
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = percent(p);
    item.append(name, meter, value);
    return item;
  }));
}

/**
 * @param {Record<string, number>} probs
 * @param {string} caption
 */
function showClasses(probs, caption) {
  ui.classCaption.textContent = caption;
  drawBars(ui.classes, Object.entries(probs));
}

let renderPending = false;

/** Renders once per frame however many tokens arrived in it. */
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    render();
  });
}

/** Shows the outputs of the selected (or newest) token and keeps the slider in step. */
function render() {
  const n = state.tokens.length;
  const index = state.shown < 0 ? n - 1 : state.shown;
  ui.position.max = String(Math.max(n, 1));
  ui.position.min = "1";
  ui.position.value = String(index + 1);
  ui.position.disabled = n === 0;
  for (const old of ui.transcript.querySelectorAll(".selected")) old.classList.remove("selected");
  heat.select(index);
  if (index < 0) {
    ui.positionOut.textContent = "no token yet";
    if (state.info?.task !== "single") {
      ui.distCaption.textContent = "Type to see what the model expects next.";
      ui.dist.replaceChildren();
      ui.classCaption.textContent = "Type a name to see the class probabilities move.";
      ui.classes.replaceChildren();
    }
    return;
  }
  const t = state.tokens[index];
  ui.transcript.children[index]?.classList.add("selected");
  ui.positionOut.textContent = `seq ${t.seq}: “${shown(t.token)}”${
    state.shown < 0 ? " (newest)" : ""
  }`;
  if (t.top !== undefined) {
    ui.distCaption.textContent = `After “${
      shown(t.token)
    }” (seq ${t.seq}), the most likely next characters:`;
    drawBars(ui.dist, t.top.map((o) => [shown(o.token), o.p]));
  } else if (t.probs !== undefined) {
    showClasses(t.probs, `After “${shown(t.token)}” (seq ${t.seq}):`);
  } else {
    ui.distCaption.textContent = `“${shown(t.token)}” (seq ${t.seq}) was generated: sampled from ` +
      "the distribution after the token before it.";
    ui.dist.replaceChildren();
  }
}

/**
 * The hidden-state heatmap: one column per token, one row per unit, blue −1 to red +1. Cells
 * are kept one pixel each on an offscreen canvas (a column is written once, when its token
 * arrives) and drawn scaled up at most once per frame.
 */
const heat = {
  /** @type {OffscreenCanvas | null} one pixel per cell */
  cells: null,
  rows: 0,
  columns: 0,
  /** Index in state.tokens of the first kept column (older ones were dropped). */
  first: 0,
  selected: -1,
  pending: false,
  reset() {
    this.rows = state.info?.units ?? 0;
    this.cells = null;
    this.columns = 0;
    this.first = 0;
    this.selected = -1;
    this.schedule();
  },
  /** @param {number[]} h */
  push(h) {
    const rows = this.rows;
    if (this.cells === null || this.columns === this.cells.width) {
      // Room for more columns: double, up to MAX_COLUMNS, then drop the oldest.
      const width = Math.min(MAX_COLUMNS, Math.max(64, 2 * this.columns));
      if (this.cells !== null && width === this.cells.width) {
        this.cells.getContext("2d").drawImage(this.cells, -1, 0);
        this.columns--;
        this.first++;
      } else {
        const grown = new OffscreenCanvas(width, Math.max(rows, 1));
        if (this.cells !== null) grown.getContext("2d").drawImage(this.cells, 0, 0);
        this.cells = grown;
      }
    }
    const column = new ImageData(1, Math.max(rows, 1));
    for (let r = 0; r < rows; r++) {
      const v = Math.max(-1, Math.min(1, h[r] ?? 0));
      const fade = Math.round(255 * (1 - Math.abs(v)));
      column.data.set([v >= 0 ? 255 : fade, fade, v <= 0 ? 255 : fade, 255], 4 * r);
    }
    this.cells.getContext("2d").putImageData(column, this.columns, 0);
    this.columns++;
    this.schedule();
  },
  /** @param {number} index a token index */
  select(index) {
    if (index === this.selected) return;
    this.selected = index;
    this.schedule();
  },
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  },
  draw() {
    const canvas = ui.heatmap;
    const cols = this.columns, rows = this.rows;
    const rowPx = Math.max(2, Math.min(12, Math.floor(256 / Math.max(rows, 1))));
    canvas.width = cols * COLUMN_PX;
    canvas.height = cols === 0 ? 0 : rows * rowPx;
    canvas.dataset.columns = String(cols);
    canvas.dataset.rows = String(rows);
    canvas.setAttribute(
      "aria-label",
      cols === 0
        ? "Hidden state: no tokens yet"
        : `Hidden state: ${rows} units (rows) after each of the last ${cols} tokens (columns)`,
    );
    if (cols === 0 || this.cells === null) return;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.cells, 0, 0, cols, rows, 0, 0, cols * COLUMN_PX, rows * rowPx);
    const sel = this.selected - this.first;
    if (state.shown >= 0 && sel >= 0 && sel < cols) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect(sel * COLUMN_PX + 1, 1, COLUMN_PX - 2, rows * rowPx - 2);
    }
    if (state.shown < 0) ui.heatWrap.scrollLeft = ui.heatWrap.scrollWidth;
  },
};

// ---------------------------------------------------------------------------------------------
// Wiring

ui.model.addEventListener("change", () => {
  selectModel(ui.model.value, true).catch((err) => say(`Error: ${err.message}`));
  ui.input.value = "";
});
ui.newSession.addEventListener("click", () => {
  startSession(newId());
  ui.input.value = "";
  ui.input.focus();
});
ui.session.addEventListener("change", () => {
  lookUpSession().catch((err) => say(`Error: ${err.message}`));
});
ui.input.addEventListener("input", onInput);
ui.genForm.addEventListener("submit", onGenerate);
ui.position.addEventListener("input", () => {
  const index = ui.position.valueAsNumber - 1;
  state.shown = index >= state.tokens.length - 1 ? -1 : index;
  render();
});
ui.transcript.addEventListener("click", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  const index = Number(target.dataset?.index);
  if (!Number.isInteger(index)) return;
  state.shown = index >= state.tokens.length - 1 ? -1 : index;
  render();
});

loadModels().catch((err) => say(`Error: ${err.message}`));
