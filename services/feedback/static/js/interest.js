// My interest: the whole profile (GET/PUT /v1/me/interest) as a form.
import { api, get } from "./api.js";

const $ = (id) => document.getElementById(id);
const numberOrNull = (input) => (input.value === "" ? null : Number(input.value));

export class InterestView {
  constructor() {
    this.classes = [];
    $("interest-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    $("add-class-button").addEventListener("click", () => this.addClass());
    $("add-class").addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.addClass();
      }
    });
  }

  async load(classes) {
    this.classes = classes;
    this.render(await get("/v1/me/interest"));
  }

  addRow(name, weight) {
    const tbody = $("weights");
    const i = tbody.rows.length;
    const row = tbody.insertRow();
    row.dataset.class = name;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = name;
    row.append(th);
    const w = document.createElement("input");
    Object.assign(w, { type: "number", min: "0", step: "0.1", id: `weight-${i}`, placeholder: "default" });
    w.setAttribute("aria-label", `Weight of ${name}`);
    const off = document.createElement("input");
    Object.assign(off, { type: "checkbox", id: `dismissed-${i}` });
    off.setAttribute("aria-label", `Dismiss ${name}`);
    off.checked = weight === 0;
    w.value = weight == null || weight === 0 ? "" : String(weight);
    w.disabled = off.checked;
    off.addEventListener("change", () => {
      w.disabled = off.checked;
    });
    row.insertCell().append(w);
    row.insertCell().append(off);
  }

  addClass() {
    const input = $("add-class");
    const name = input.value.trim().toLowerCase().replace(/[ \t]+/g, "_");
    if (!name) return;
    if (![...$("weights").rows].some((r) => r.dataset.class === name)) this.addRow(name, 1);
    input.value = "";
  }

  render(doc) {
    $("weights").replaceChildren();
    const names = [...new Set([...Object.keys(doc.weights), ...this.classes])];
    for (const name of names) this.addRow(name, doc.weights[name]);
    $("reserve-share").value = doc.reserve_share;
    for (const s of ["top", "uncertain", "random"]) $(`strategy-${s}`).value = doc.strategy[s] ?? 0;
    $("budget-alerts").value = doc.budget.alerts;
    $("budget-period").value = doc.budget.period;
    const f = doc.filters;
    $("min-mag").value = f.min_magnitude ?? "";
    $("max-mag").value = f.max_magnitude ?? "";
    $("cone-on").checked = Boolean(f.cone);
    $("cone-ra").value = f.cone?.ra ?? "";
    $("cone-dec").value = f.cone?.dec ?? "";
    $("cone-radius").value = f.cone?.radius ?? "";
    for (const s of ["ztf", "rubin"]) $(`survey-${s}`).checked = Boolean(f.surveys?.includes(s));
  }

  collect() {
    const weights = {};
    for (const row of $("weights").rows) {
      const [w, off] = row.querySelectorAll("input");
      if (off.checked) weights[row.dataset.class] = 0;
      else if (w.value !== "") weights[row.dataset.class] = Number(w.value);
    }
    const surveys = ["ztf", "rubin"].filter((s) => $(`survey-${s}`).checked);
    return {
      weights,
      reserve_share: Number($("reserve-share").value),
      strategy: Object.fromEntries(["top", "uncertain", "random"].map((s) => [s, Number($(`strategy-${s}`).value)])),
      budget: { alerts: Number($("budget-alerts").value), period: $("budget-period").value },
      filters: {
        min_magnitude: numberOrNull($("min-mag")),
        max_magnitude: numberOrNull($("max-mag")),
        cone: $("cone-on").checked
          ? { ra: numberOrNull($("cone-ra")), dec: numberOrNull($("cone-dec")), radius: numberOrNull($("cone-radius")) }
          : null,
        surveys: surveys.length ? surveys : null,
      },
    };
  }

  async save() {
    const status = $("interest-status");
    try {
      this.render(await api("PUT", "/v1/me/interest", this.collect()));
      status.dataset.kind = "ok";
      status.textContent = `Saved at ${new Date().toLocaleTimeString()}: the scorer picks it up within seconds.`;
    } catch (err) {
      status.dataset.kind = "error";
      status.textContent = `Not saved: ${err.message}`;
    }
  }
}
