// The dashboard's little script: live refresh over SSE, and CSRF-protected writes.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const live = document.getElementById("live");
const toast = document.getElementById("toast");
let refreshing = false;

function say(text, bad) {
  toast.textContent = text;
  toast.className = bad ? "bad" : "ok";
  toast.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { toast.hidden = true; }, bad ? 8000 : 3000);
}

async function refresh() {
  if (refreshing || document.activeElement?.closest("#live form")) return;
  refreshing = true;
  try {
    const r = await fetch(location.href, { headers: { "X-Fragment": "1" }, credentials: "same-origin" });
    if (r.redirected || r.status === 401) { location.href = "/ui/login"; return; }
    if (r.ok) live.innerHTML = await r.text();
  } finally {
    refreshing = false;
  }
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf },
    body: body,
    credentials: "same-origin",
  });
  if (r.ok) { say("Done: " + url.replace("/ui/", "")); refresh(); return; }
  let detail = r.statusText;
  try {
    const j = await r.json();
    detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
  } catch (_) { /* not JSON */ }
  say(r.status + (r.status === 423 ? " frozen: " : ": ") + detail, true);
}

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-post]");
  if (!button) return;
  ev.preventDefault();
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  post(button.dataset.post);
});
document.addEventListener("submit", async (ev) => {
  const logout = ev.target.closest("form[data-logout]");
  if (logout) {
    ev.preventDefault();
    window.turnoutEvents.close();
    // The server ends the session (CSRF-checked) and clears the cookie either way.
    await fetch(logout.dataset.logout, { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
    location.href = "/ui/login";
    return;
  }
  const form = ev.target.closest("form[data-form]");
  if (form) {
    ev.preventDefault();
    post(form.dataset.form, new FormData(form));
    form.reset();
    document.activeElement.blur();
  }
});

function connect() {
  const events = new EventSource("/ui/events");
  window.turnoutEvents = events;  // tests wait for readyState 1 (open)
  events.addEventListener("change", refresh);
  // Proxy status and load reports change without a commit: the board and fleet follow ticks.
  events.addEventListener("tick", () => {
    if (document.body.dataset.page !== "history" && document.body.dataset.page !== "consumers") refresh();
  });
  // A refused stream (503: too many open) is not retried by EventSource itself.
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  });
}
connect();
