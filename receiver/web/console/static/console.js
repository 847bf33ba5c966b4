// cellect-monitor console: the one script of its pages (no framework, no CDN).
//
// - Times: every <time datetime="…Z"> is shown in the browser's time zone; its title
//   keeps the UTC time the server wrote (hover).
// - Live regions: an element with data-live="<url>" (and data-live-every="<seconds>",
//   5 by default) fetches that URL every few seconds while the tab is visible, six times
//   slower while it is hidden, and at once when it becomes visible again; it replaces its
//   content only when the answer changed, so nothing flickers. A 401 (signed out)
//   reloads the page, which then shows the login form. A failed fetch marks the region
//   data-live-stale and the next tick tries again. After a swap the region dispatches
//   "console:refreshed" (bubbling). An element with an id that had the focus keeps it.
// - CellectConsole.request(url, {method, json}): fetch for the JSON API under /api/ with
//   the session cookie, sending the page's CSRF token (X-CSRF-Token) on unsafe methods.
// - Silences (Alerts page): form.silence-form posts one through request(); a
//   button[data-expire] expires one; the page's live regions refresh at once after.
(function () {
  "use strict";

  const HIDDEN_FACTOR = 6;
  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  function localizeTimes(root) {
    for (const el of (root || document).querySelectorAll("time[datetime]")) {
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) continue;
      if (!el.title) el.title = when.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
      el.textContent = format.format(when);
    }
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function request(url, options) {
    const opts = Object.assign({}, options || {});
    const method = (opts.method || "GET").toUpperCase();
    const headers = new Headers(opts.headers || {});
    headers.set("Accept", "application/json");
    if (!SAFE.has(method)) headers.set("X-CSRF-Token", csrfToken());
    if (opts.json !== undefined) {
      headers.set("Content-Type", "application/json");
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const response = await fetch(url, Object.assign(opts, { method, headers, credentials: "same-origin" }));
    if (response.status === 401) window.location.reload();
    return response;
  }

  function live(el) {
    const url = el.dataset.live;
    const every = Math.max(1, Number(el.dataset.liveEvery) || 5) * 1000;
    let timer = null;
    let busy = false;
    let last = null;

    function schedule() {
      if (timer !== null) clearTimeout(timer);
      const visible = document.visibilityState === "visible";
      timer = setTimeout(tick, visible ? every : every * HIDDEN_FACTOR);
    }

    function swap(html) {
      const focused = document.activeElement;
      const focusId = focused && el.contains(focused) ? focused.id : "";
      el.innerHTML = html;
      localizeTimes(el);
      if (focusId) {
        const again = document.getElementById(focusId);
        if (again) again.focus();
      }
      el.dispatchEvent(new CustomEvent("console:refreshed", { bubbles: true }));
    }

    async function tick() {
      timer = null;
      if (busy) return;
      busy = true;
      try {
        const response = await fetch(url, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "text/html" },
        });
        if (response.status === 401) {
          window.location.reload();
          return;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        const html = await response.text();
        if (html !== last) {
          last = html;
          swap(html);
        }
        delete el.dataset.liveStale;
      } catch (error) {
        el.dataset.liveStale = "true";
      } finally {
        busy = false;
        schedule();
      }
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !busy) tick();
      else schedule();
    });
    schedule();
    return { now: function () { if (!busy) tick(); } };
  }

  // Silences from the Alerts page: a form.silence-form carries the alert's matchers
  // (data-matchers, JSON); submitting it posts a silence, a button[data-expire] expires
  // one. Delegated from the document, so forms a live region swapped in work too.
  function say(form, text) {
    const out = form.querySelector("output");
    if (out) out.textContent = text;
  }

  async function silence(form) {
    const body = {
      matchers: JSON.parse(form.dataset.matchers),
      duration: form.elements.duration.value,
      comment: form.elements.comment.value || "silenced from the console",
      created_by: "console",
    };
    say(form, "…");
    const answer = await request("/api/silences", { method: "POST", json: body });
    if (answer.status === 201) {
      say(form, "silenced");
      refreshAll();
    } else {
      const problem = await answer.json().catch(() => ({}));
      say(form, "refused: " + (problem.field ? problem.field + ": " : "") + (problem.message || answer.status));
    }
  }

  async function expire(button) {
    const answer = await request("/api/silences/" + encodeURIComponent(button.dataset.expire), { method: "DELETE" });
    button.textContent = answer.status === 204 ? "expired" : "refused (" + answer.status + ")";
    refreshAll();
  }

  const regions = [];
  function refreshAll() {
    for (const region of regions) region.now();
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.classList.contains("silence-form")) {
      event.preventDefault();
      silence(form);
    }
  });
  document.addEventListener("click", function (event) {
    const button = event.target instanceof Element ? event.target.closest("button[data-expire]") : null;
    if (button) expire(button);
  });

  function start() {
    localizeTimes(document);
    for (const el of document.querySelectorAll("[data-live]")) regions.push(live(el));
  }

  window.CellectConsole = { localizeTimes, csrfToken, request, live };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
