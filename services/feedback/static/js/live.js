// Live deliveries: GET /v1/me/stream as an EventSource (the session cookie authenticates it).
// The browser reconnects by itself with Last-Event-ID; if the server refuses outright (signed
// out, too many tabs) the stream closes, and we open a new one later from the last event id.
const REOPEN_S = 10;

export function connectLive({ onAlert, onState }) {
  let lastId = null;
  let source = null;
  let stopped = false;

  const open = () => {
    const query = lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : "";
    source = new EventSource(`/v1/me/stream${query}`);
    onState("connecting");
    source.addEventListener("ready", (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      onState("live");
    });
    source.addEventListener("alert", (e) => {
      lastId = e.lastEventId || lastId;
      onAlert(JSON.parse(e.data));
    });
    source.addEventListener("skipped", (e) => {
      lastId = e.lastEventId || lastId;
    });
    source.addEventListener("error", () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        onState("down");
        setTimeout(() => !stopped && open(), REOPEN_S * 1000);
      } else {
        onState("reconnecting");
      }
    });
  };
  open();
  return {
    close() {
      stopped = true;
      source?.close();
    },
  };
}
