// The desk: sign-in, screens, keys, and the wiring between the queue, the outbox and the live
// stream. Timings for the browser test land in window.deskMetrics (ready_ms: first question on
// screen, from navigation start; next_ms: answer key -> next question's stamps decoded).
import { api, ApiError, get } from "./api.js";
import { showDiscoveries } from "./discoveries.js";
import { InterestView } from "./interest.js";
import { connectLive } from "./live.js";
import { Outbox } from "./outbox.js";
import { QuestionsView } from "./questions.js";
import { Questions } from "./queue.js";

const $ = (id) => document.getElementById(id);
const metrics = { ready_ms: null, next_ms: [], live: [] };
window.deskMetrics = metrics;
const desk = { started: false, screen: null };

function announce(text) {
  $("answer-status").textContent = text;
}

function show(screen) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== screen;
  for (const b of document.querySelectorAll("#nav [data-screen]")) {
    if (b.dataset.screen === screen) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  desk.screen = screen;
  if (screen === "interest") desk.interest.load(desk.classes).catch((e) => announce(e.message));
  if (screen === "discoveries") {
    showDiscoveries().catch((e) => ($("discoveries-summary").textContent = `Unavailable: ${e.message}`));
  }
}

function signIn(message) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== "signin";
  $("signin-error").textContent = message || "";
  $("token").focus();
}

function renderOutbox(outbox) {
  const bar = $("outbox");
  bar.hidden = outbox.pending === 0;
  if (outbox.pending) {
    const wait = outbox.retryAt ? ` Retrying in ${Math.max(0, Math.ceil((outbox.retryAt - Date.now()) / 1000))} s.` : "";
    const why = outbox.lastError ? ` (${outbox.lastError})` : "";
    $("outbox-text").textContent = `${outbox.pending} answer${outbox.pending === 1 ? "" : "s"} not sent yet${why}.${wait}`;
  }
  const list = $("failures");
  list.hidden = outbox.failed.length === 0;
  list.replaceChildren(
    ...outbox.failed.map((f, i) => {
      const li = document.createElement("li");
      const what = f.op.kind === "label" ? `label ${f.op.body.label} of ${f.op.alert_id}` : `undo of ${f.op.alert_id}`;
      li.textContent = `Not accepted: ${what}: ${f.detail}`;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Dismiss";
      b.addEventListener("click", () => outbox.dismiss(i));
      li.append(b);
      return li;
    }),
  );
}

async function loadClasses(me) {
  const known = await get("/v1/classes");
  const ordered = [...known.classes]
    .sort((a, b) => Number(b.in_model) - Number(a.in_model) || b.labels - a.labels || a.name.localeCompare(b.name))
    .map((c) => c.name);
  return [...new Set([...ordered, ...Object.keys(me.interest.weights)])];
}

async function start(me) {
  $("nav").hidden = false;
  $("who").hidden = false;
  $("user-name").textContent = me.user;
  if (desk.started) {
    desk.outbox.resume();
    desk.live = desk.live || openLive();
    show(desk.screen || "questions");
    return;
  }
  desk.started = true;
  desk.outbox = new Outbox(me.user, {
    onChange: renderOutbox,
    onAuthLost: () => {
      desk.live?.close();
      desk.live = null;
      signIn(`Your session ended: sign in again. ${desk.outbox.pending} answer(s) wait to be sent.`);
    },
    onSent: () => null,
  });
  setInterval(() => desk.outbox.pending && renderOutbox(desk.outbox), 1000);
  $("outbox-retry").addEventListener("click", () => desk.outbox.retryNow());
  desk.queue = new Questions(() => desk.view?.updateStatus());
  desk.view = new QuestionsView({ queue: desk.queue, outbox: desk.outbox, announce, metrics });
  desk.interest = new InterestView();
  desk.classes = await loadClasses(me);
  desk.view.setClasses(desk.classes);
  show("questions");
  await desk.queue.refill();
  await desk.view.render();
  desk.outbox.pump();
  desk.live = openLive();
}

function openLive() {
  return connectLive({
    onState: (state) => {
      const live = $("live");
      live.dataset.state = state === "live" ? "live" : state === "down" ? "down" : "";
      live.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…", down: "offline, retrying" }[state];
    },
    onAlert: (alert) => {
      metrics.live.push(alert.alert_id);
      const queued = desk.queue.addLive(alert);
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `${alert.object_id} · ${alert.reason} · score ${alert.score.toFixed(3)}`;
      b.dataset.alertId = alert.alert_id;
      b.addEventListener("click", () => {
        const at = desk.queue.items.findIndex((q) => q.alert_id === alert.alert_id);
        if (at > 0) desk.queue.items.unshift(...desk.queue.items.splice(at, 1));
        show("questions");
        desk.view.render();
      });
      li.append(b);
      $("live-items").prepend(li);
      $("live-empty").hidden = true;
      while ($("live-items").children.length > 20) $("live-items").lastChild.remove();
      announce(`New delivery: ${alert.object_id} (score ${alert.score.toFixed(2)})${queued ? ", queued" : ""}.`);
      if (desk.queue.items.length === 1) desk.view.render();
    },
  });
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    $("signin-error").textContent = "Paste your token first.";
    return;
  }
  try {
    await api("POST", "/v1/session", undefined, { Authorization: `Bearer ${token}` });
    $("token").value = "";
    $("signin-error").textContent = "";
    await start(await get("/v1/me"));
  } catch (err) {
    $("token").select();
    $("signin-error").textContent =
      err.status === 401 ? "That token is not valid (or it was revoked): check it and try again." : `Sign-in failed: ${err.message}`;
  }
});

$("sign-out").addEventListener("click", async () => {
  desk.live?.close();
  try {
    await api("DELETE", "/v1/session");
  } finally {
    window.location.assign("/desk");
  }
});

for (const b of document.querySelectorAll("#nav [data-screen]")) {
  b.addEventListener("click", () => show(b.dataset.screen));
}
$("help-open").addEventListener("click", () => $("help").showModal());

document.addEventListener("keydown", (e) => {
  if ($("help").open || !desk.started || !$("signin").hidden) return;
  const target = e.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) {
    if (e.key === "Escape") target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const screens = { q: "questions", i: "interest", d: "discoveries" };
  let handled = true;
  if (e.key === "?") $("help").showModal();
  else if (screens[e.key]) show(screens[e.key]);
  else handled = desk.screen === "questions" && desk.view.onKey(e);
  if (handled) e.preventDefault();
});

get("/v1/me")
  .then(start)
  .catch((err) => signIn(err instanceof ApiError && err.status === 401 ? "" : `The API is not answering: ${err.message}`));
