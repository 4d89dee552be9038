// The question queue: GET /v1/me/questions in batches, the next few alerts' facts and stamps
// fetched ahead (so the next question shows without waiting), live deliveries slotted in by
// score, answered ids never shown again in this tab.
import { get, stampUrl } from "./api.js";
import { unixToMjd } from "./format.js";

export const STAMPS = ["science", "template", "difference"];
const BATCH = 20;
const REFILL_BELOW = 5;
const AHEAD = 3;

export class Questions {
  constructor(onChange) {
    this.onChange = onChange;
    this.items = [];
    this.answered = new Set();
    this.details = new Map();
    this.images = new Map();
    this.stretch = "zscale";
    this.loading = null;
  }

  has(id) {
    return this.items.some((q) => q.alert_id === id);
  }

  current() {
    return this.items[0] || null;
  }

  refill() {
    if (this.loading) return this.loading;
    this.loading = get(`/v1/me/questions?limit=${BATCH}`)
      .then((page) => {
        for (const q of page.items) {
          if (!this.answered.has(q.alert_id) && !this.has(q.alert_id)) this.items.push(q);
        }
        this.prefetch();
      })
      .finally(() => {
        this.loading = null;
        this.onChange();
      });
    return this.loading;
  }

  detail(id) {
    if (!this.details.has(id)) {
      const pending = get(`/v1/alerts/${encodeURIComponent(id)}`);
      pending.catch(() => this.details.delete(id)); // fetched again next time
      this.details.set(id, pending);
    }
    return this.details.get(id);
  }

  // Fetch and decode the three stamps now, so showing them later is instant.
  preload(id) {
    const key = `${id}|${this.stretch}`;
    if (!this.images.has(key)) {
      const decoded = STAMPS.map((which) => {
        const img = new Image();
        img.src = stampUrl(id, which, this.stretch);
        return img.decode().catch(() => null);
      });
      this.images.set(key, Promise.all(decoded));
    }
    return this.images.get(key);
  }

  prefetch() {
    for (const q of this.items.slice(0, AHEAD)) {
      this.detail(q.alert_id).catch(() => null);
      this.preload(q.alert_id);
    }
  }

  // The current question is answered: drop it, keep the queue topped up.
  advance() {
    const done = this.items.shift();
    if (done) this.answered.add(done.alert_id);
    if (this.items.length < REFILL_BELOW) this.refill().catch(() => null);
    this.prefetch();
    this.onChange();
    return done;
  }

  // Undo: the question comes back to the front.
  putBack(question) {
    this.answered.delete(question.alert_id);
    this.items = [question, ...this.items.filter((q) => q.alert_id !== question.alert_id)];
    this.prefetch();
    this.onChange();
  }

  // A delivery from the live stream: queued by score behind the question on screen.
  addLive(alert) {
    if (this.answered.has(alert.alert_id) || this.has(alert.alert_id)) return false;
    const question = {
      alert_id: alert.alert_id,
      score: alert.score,
      reason: alert.reason,
      model_version: alert.model_version,
      delivered_at: alert.published_at,
    };
    this.details.set(alert.alert_id, Promise.resolve({
      ...question,
      object_id: alert.object_id,
      survey: alert.survey,
      ra: alert.ra,
      dec: alert.dec,
      magnitude: alert.magnitude,
      observed_mjd: unixToMjd(alert.alert_time),
      class_probabilities: alert.class_probabilities,
      novelty: alert.novelty,
      cached: true,
      your_label: null,
    }));
    let at = this.items.findIndex((q, i) => i > 0 && q.score < alert.score);
    if (at < 0) at = this.items.length;
    this.items.splice(Math.max(at, this.items.length ? 1 : 0), 0, question);
    this.prefetch();
    this.onChange();
    return true;
  }
}
