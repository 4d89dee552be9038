// Answers on their way to the server. They leave in order, one at a time, through the same
// routes as any API client (POST /v1/feedback, DELETE /v1/feedback/{id} for an undo). A
// transient failure (no answer, 5xx, 429) waits (Retry-After, else 1, 2, 4 ... 30 s) and is
// retried; a refusal (404 expired, 422) moves to `failed` and stays on screen until dismissed;
// a lost session (401) pauses everything until the person signs in again. What is pending is
// kept in sessionStorage, so a reload of the tab retries it: nothing is silently dropped.
import { api } from "./api.js";

const MAX_WAIT_S = 30;

export class Outbox {
  constructor(user, { onChange, onAuthLost, onSent }) {
    this.key = `ahunt-desk-outbox:${user}`;
    this.onChange = onChange;
    this.onAuthLost = onAuthLost;
    this.onSent = onSent;
    this.items = JSON.parse(sessionStorage.getItem(this.key) || "[]");
    this.failed = [];
    this.inFlight = null;
    this.attempt = 0;
    this.retryAt = null;
    this.lastError = null;
    this.paused = false;
    this.timer = null;
  }

  save() {
    sessionStorage.setItem(this.key, JSON.stringify(this.items));
    this.onChange(this);
  }

  add(op) {
    this.items.push({ ...op, seq: Date.now() + Math.random() });
    this.save();
    this.pump();
  }

  // Take back a label that has not left yet (undo before it was sent): true if it was found.
  cancelLabel(alertId) {
    const i = this.items.findIndex((op) => op.kind === "label" && op.alert_id === alertId && op !== this.inFlight);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.save();
    return true;
  }

  dismiss(index) {
    this.failed.splice(index, 1);
    this.onChange(this);
  }

  resume() {
    this.paused = false;
    this.retryNow();
  }

  retryNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.retryAt = null;
    this.pump();
  }

  async pump() {
    if (this.inFlight || this.paused || this.timer || !this.items.length) return;
    const op = this.items[0];
    this.inFlight = op;
    try {
      if (op.kind === "label") {
        await api("POST", "/v1/feedback", op.body);
      } else {
        try {
          await api("DELETE", `/v1/feedback/${encodeURIComponent(op.alert_id)}`);
        } catch (err) {
          if (err.status !== 404) throw err; // 404: no label left to undo, which is the goal
        }
      }
      this.items.shift();
      this.attempt = 0;
      this.lastError = null;
      this.onSent(op);
    } catch (err) {
      if (err.status === 401) {
        this.paused = true;
        this.lastError = "signed out: sign in again to send these";
        this.onAuthLost();
      } else if (err.transient) {
        this.attempt += 1;
        const wait = err.retryAfterS ?? Math.min(MAX_WAIT_S, 2 ** (this.attempt - 1));
        this.lastError = err.message;
        this.retryAt = Date.now() + wait * 1000;
        this.timer = setTimeout(() => this.retryNow(), wait * 1000);
      } else {
        this.items.shift();
        this.failed.push({ op, detail: err.message, status: err.status });
      }
    } finally {
      this.inFlight = null;
      this.save();
    }
    if (!this.timer && !this.paused) this.pump();
  }

  get pending() {
    return this.items.length;
  }
}
