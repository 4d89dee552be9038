// The question on screen and the answers to it: one key per known class, n, a typed class,
// undo. Answers go to the outbox (which posts them) and the next question shows at once.
import { stampUrl } from "./api.js";
import { explorerLinks } from "./explorers.js";
import { decDms, mjdToUnix, num, raHms, REASONS, utc } from "./format.js";
import { STAMPS } from "./queue.js";

const CLASS_INPUT = /^[ \t]*[A-Za-z0-9][A-Za-z0-9_.+ \t-]*$/;
const RESERVE = "reserve";
const ZOOMS = [1, 1.5, 2, 3, 4, 6];
const $ = (id) => document.getElementById(id);

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// What the server will store: lower case, blanks to '_' (models.taxonomy.normalise_class_name).
export const normalise = (name) => name.trim().toLowerCase().replace(/[ \t]+/g, "_");

export class QuestionsView {
  constructor({ queue, outbox, announce, metrics }) {
    this.queue = queue;
    this.outbox = outbox;
    this.announce = announce;
    this.metrics = metrics;
    this.keyClasses = []; // stable for the session: a key never changes its class
    this.allClasses = [];
    this.history = [];
    this.zoom = 0;
    this.guess = null;
    this.shown = null;
    this.renders = 0;
    $("not-interesting").addEventListener("click", () => this.notInteresting());
    $("undo").addEventListener("click", () => this.undo());
    $("new-class").addEventListener("submit", (e) => {
      e.preventDefault();
      this.typedClass();
    });
    $("stretch").addEventListener("change", (e) => this.setStretch(e.target.value));
    $("zoom-in").addEventListener("click", () => this.setZoom(this.zoom + 1));
    $("zoom-out").addEventListener("click", () => this.setZoom(this.zoom - 1));
    $("zoom-reset").addEventListener("click", () => this.setZoom(0));
  }

  setClasses(known) {
    this.allClasses = [...new Set([...this.allClasses, ...known])].filter((c) => c !== RESERVE);
    for (const c of this.allClasses) {
      if (this.keyClasses.length < 9 && !this.keyClasses.includes(c)) this.keyClasses.push(c);
    }
    const list = $("class-list");
    list.replaceChildren(...this.allClasses.map((c) => el("option", null, { value: c })));
    const keys = $("class-keys");
    keys.replaceChildren(
      ...this.keyClasses.map((c, i) => {
        const b = el("button", null, {
          type: "button",
          "aria-keyshortcuts": `${i + 1} Shift+${i + 1}`,
          title: `${i + 1}: it is ${c}; Shift+${i + 1}: and I want more`,
        });
        b.append(el("kbd", String(i + 1)), ` ${c}`);
        b.addEventListener("click", (e) => this.answer(c, e.shiftKey ? true : null));
        return b;
      }),
    );
  }

  // Keys while no text field has the focus; true when the key was ours.
  onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return false;
    const digit = /^Digit([1-9])$/.exec(e.code);
    if (digit) {
      const c = this.keyClasses[Number(digit[1]) - 1];
      if (c) this.answer(c, e.shiftKey ? true : null);
      return Boolean(c);
    }
    switch (e.key) {
      case "n": this.notInteresting(); return true;
      case "u": this.undo(); return true;
      case "c": case "/": $("class-input").focus(); return true;
      case "s": this.setStretch(this.queue.stretch === "zscale" ? "asinh" : "zscale"); return true;
      case "+": case "=": this.setZoom(this.zoom + 1); return true;
      case "-": this.setZoom(this.zoom - 1); return true;
      case "0": this.setZoom(0); return true;
      default: return false;
    }
  }

  answer(label, interesting) {
    const q = this.queue.current();
    if (!q) {
      this.announce("No question on screen.");
      return;
    }
    const started = performance.now();
    this.outbox.add({ kind: "label", alert_id: q.alert_id, body: { alert_id: q.alert_id, label, interesting } });
    this.history.push(q);
    this.queue.advance();
    const opinion = interesting === true ? ", interesting" : interesting === false ? ", not interesting" : "";
    $("answer-status").textContent = `${q.alert_id}: ${normalise(label)}${opinion}. u undoes.`;
    this.render(started);
  }

  notInteresting() {
    if (!this.guess) {
      $("opinion").value = "false";
      $("class-input").focus();
      this.announce("The model has no guess for this one: type what it is, then Enter.");
      return;
    }
    this.answer(this.guess, false);
  }

  typedClass() {
    const input = $("class-input");
    const name = input.value;
    if (!CLASS_INPUT.test(name) || name.length > 64) {
      this.announce("A class name: letters, digits, blanks and _ . + - (at most 64).");
      return;
    }
    const opinion = $("opinion").value;
    const label = normalise(name);
    this.setClasses([label]);
    input.value = "";
    $("opinion").value = "";
    input.blur();
    this.answer(label, opinion === "" ? null : opinion === "true");
  }

  undo() {
    const q = this.history.pop();
    if (!q) {
      this.announce("Nothing to undo.");
      return;
    }
    if (!this.outbox.cancelLabel(q.alert_id)) this.outbox.add({ kind: "undo", alert_id: q.alert_id });
    this.queue.putBack(q);
    $("answer-status").textContent = `Undone: ${q.alert_id} is back.`;
    this.render();
  }

  setStretch(stretch) {
    this.queue.stretch = stretch;
    $("stretch").value = stretch;
    this.queue.prefetch();
    this.render();
  }

  setZoom(level) {
    this.zoom = Math.max(0, Math.min(ZOOMS.length - 1, level));
    const scale = ZOOMS[this.zoom];
    for (const which of STAMPS) $(`img-${which}`).style.transform = `scale(${scale})`;
    $("zoom-level").textContent = `${scale}×`;
  }

  updateStatus() {
    const n = this.queue.items.length;
    $("queue-status").textContent = n
      ? `${n} question${n === 1 ? "" : "s"} waiting · ${this.history.length} answered in this tab`
      : "";
  }

  // Show the current question; `started` (an answer's time) records how long the next took.
  async render(started) {
    const token = ++this.renders;
    this.updateStatus();
    const q = this.queue.current();
    $("empty").hidden = Boolean(q);
    $("question").hidden = !q;
    if (!q) {
      this.shown = null;
      return;
    }
    let detail;
    try {
      detail = await this.queue.detail(q.alert_id);
    } catch (err) {
      detail = { ...q, class_probabilities: {} };
      this.announce(`Facts of ${q.alert_id} unavailable: ${err.message}`);
    }
    if (token !== this.renders) return; // a newer answer already moved on
    this.shown = q.alert_id;
    this.fill(q, detail);
    const imgs = STAMPS.map((which) => $(`img-${which}`));
    await Promise.all(imgs.map((img) => img.decode().catch(() => null)));
    if (token === this.renders && started !== undefined) {
      this.metrics.next_ms.push(performance.now() - started);
    }
    if (token === this.renders && this.metrics.ready_ms === null) {
      this.metrics.ready_ms = performance.now();
    }
  }

  fill(q, d) {
    const name = d.object_id || q.alert_id;
    $("question").dataset.alertId = q.alert_id;
    $("q-title").textContent = `${name} · alert ${q.alert_id}`;
    for (const which of STAMPS) {
      const img = $(`img-${which}`);
      img.src = stampUrl(q.alert_id, which, this.queue.stretch);
      img.alt = `${which} stamp of ${name} (${this.queue.stretch} stretch)`;
    }
    const facts = [
      ["Alert", q.alert_id],
      ["Object", d.object_id || "–"],
      ["Survey", (d.survey || "–").toUpperCase()],
      ["RA", d.ra == null ? "–" : `${raHms(d.ra)}  (${num(d.ra, 5)}°)`],
      ["Dec", d.dec == null ? "–" : `${decDms(d.dec)}  (${num(d.dec, 5)}°)`],
      ["Magnitude", num(d.magnitude, 2)],
      ["Observed", utc(mjdToUnix(d.observed_mjd))],
      ["Delivered", utc(d.delivered_at ?? q.delivered_at)],
      ["Model", d.model_version || q.model_version || "–"],
      ["Why chosen", REASONS[q.reason] || q.reason || "–"],
      ["Your score", num(q.score, 3)],
      ["Novelty", d.novelty == null ? "–" : `${num(d.novelty, 2)} (1 = 95th percentile)`],
    ];
    $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
    const probs = Object.entries(d.class_probabilities || {}).sort((a, b) => b[1] - a[1]);
    $("probs").replaceChildren(
      ...probs.map(([c, p]) => {
        const li = el("li");
        const bar = el("span", null, { class: "bar", role: "presentation" });
        bar.style.width = `${Math.round(p * 100)}%`;
        const track = el("span", null, { class: "track" });
        track.append(bar);
        li.append(el("span", c), track, el("span", `${(p * 100).toFixed(0)}%`, { class: "num" }));
        return li;
      }),
    );
    const known = probs.filter(([c]) => c !== RESERVE);
    this.guess = known.length ? known[0][0] : null;
    const button = $("not-interesting");
    button.replaceChildren(el("kbd", "n"), this.guess ? ` Not interesting (as ${this.guess})` : " Not interesting…");
    const links = explorerLinks(d.survey, d.object_id);
    $("explorers").replaceChildren(
      ...(links.length ? [el("span", "Explore: ", { class: "muted" })] : []),
      ...links.map((l) => el("a", l.name, { href: l.href, target: "_blank", rel: "noopener noreferrer" })),
    );
  }
}
