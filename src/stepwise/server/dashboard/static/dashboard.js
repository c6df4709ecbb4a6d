// The dashboard's actions: send an event (its JSON checked before it is sent), cancel a
// run, rerun a run (from a step). All are requests to the public API, as any client's.
"use strict";

// In production the page's session authenticates these requests, and each one that changes
// something must send back the session's CSRF token (empty in dev, where none is needed).
const CSRF = {"x-csrf-token": document.querySelector("meta[name=csrf-token]").content};

// A form's data (an event's, an invoke's): a JSON object, or the reason it is not one.
function parseDataObject(text) {
  let data;
  try {
    data = JSON.parse(text || "{}");
  } catch (err) {
    return {error: "The data is not valid JSON: " + err.message};
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return {error: "The data must be a JSON object."};
  }
  return {data};
}

document.addEventListener("submit", async (e) => {
  const form = e.target;
  if (form.id !== "send-event") return;
  e.preventDefault();
  const result = document.getElementById("send-result");
  result.className = "";
  const {data, error} = parseDataObject(form.elements.data.value);
  if (error) {
    result.className = "error";
    result.textContent = error;
    return;
  }
  // The dev server accepts any event key; in production the session stands in for one.
  const response = await fetch("/e/dashboard", {
    method: "POST",
    headers: {"content-type": "application/json", ...CSRF},
    body: JSON.stringify([{name: form.elements.name.value, data}]),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    result.className = "error";
    result.textContent = "Refused: " + (body.error || response.status);
    return;
  }
  result.textContent = "Sent: " + (body.ids || []).join(", ");
  htmx.trigger("#live", "refresh");
});

document.addEventListener("click", async (e) => {
  const button = e.target.closest("[data-cancel-run]");
  if (!button) return;
  button.disabled = true;
  const response = await fetch("/v1/runs/" + button.dataset.cancelRun, {method: "DELETE", headers: CSRF});
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    button.disabled = false;
    alert("Cancel failed: " + (body.error || response.status));
    return;
  }
  htmx.ajax("GET", location.pathname, {target: "#live", select: "#live", swap: "outerHTML"});
});

document.addEventListener("click", async (e) => {
  const button = e.target.closest("[data-rerun]");
  if (!button) return;
  button.disabled = true;
  const fromStep = button.dataset.fromStep;
  const response = await fetch("/v1/runs/" + button.dataset.rerun + "/rerun", {
    method: "POST",
    headers: {"content-type": "application/json", ...CSRF},
    body: JSON.stringify(fromStep ? {from_step: fromStep} : {}),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    button.disabled = false;
    alert("Rerun failed: " + (body.error || response.status));
    return;
  }
  location.assign("/runs/" + body.data.run_id);
});

// The apps page: add an app by URL, resync one. The server syncs the app before it
// answers, so the answer says whether it worked; the table then shows the attempt.
async function syncApp(path, body) {
  const result = document.getElementById("apps-result");
  result.className = "";
  result.textContent = "Syncing…";
  const response = await fetch(path, {
    method: "POST",
    headers: {"content-type": "application/json", ...CSRF},
    body: body === undefined ? "" : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.ok) {
    const app = answer.data;
    result.textContent = "Synced " + app.name + ": " + app.function_count + " function" + (app.function_count === 1 ? "" : "s");
  } else {
    result.className = "error";
    result.textContent = "Sync failed: " + (answer.error || response.status);
  }
  htmx.trigger("#live", "refresh");
}

document.addEventListener("submit", (e) => {
  if (e.target.id !== "add-app") return;
  e.preventDefault();
  syncApp("/v1/apps", {url: e.target.elements.url.value.trim()});
});

document.addEventListener("click", async (e) => {
  const button = e.target.closest("[data-resync-app], [data-add-url]");
  if (!button) return;
  button.disabled = true;
  if (button.dataset.resyncApp) {
    await syncApp("/v1/apps/" + encodeURIComponent(button.dataset.resyncApp) + "/resync");
  } else {
    await syncApp("/v1/apps", {url: button.dataset.addUrl});
  }
  button.disabled = false;
});

// Live: a page's live part refreshes as soon as the server says one of the things it shows
// changed (GET /v1/live, server-sent events), at most every 300 ms; its slow timer is only
// the fallback for a feed that dropped. The stream reconnects by itself.
(() => {
  const topicsOf = () => {
    const live = document.querySelector("#live[hx-get][data-live-topics]");
    return live ? live.dataset.liveTopics.split(" ") : [];
  };
  if (!topicsOf().length || !window.EventSource) return;
  const feed = new EventSource("/v1/live");
  let pending = false;
  const refresh = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      const live = document.querySelector("#live[hx-get]");
      if (live) htmx.trigger(live, "refresh");
    }, 300);
  };
  // What changed between the page's rendering and the feed's (re)opening was not told.
  feed.addEventListener("open", refresh);
  feed.addEventListener("change", (message) => {
    const changed = JSON.parse(message.data).topics;
    if (changed.some((t) => topicsOf().includes(t))) refresh();
  });
  window.addEventListener("pagehide", () => feed.close());
})();

// Keyboard: "g" then a letter goes to a page, "/" to the page's first field, "j"/"k" move
// through the rows of the page's table and Enter or "o" opens the selected one, "?" lists
// all of these. Keys typed into a field are the field's.
(() => {
  const pages = {r: "/runs", e: "/events", f: "/functions", a: "/apps", c: "/cancellations"};
  const dialog = document.getElementById("shortcuts");
  let pendingG = false;
  let selected = -1;
  const rows = () =>
    [...document.querySelectorAll("main table.list tbody tr, main table.timeline tbody tr")].filter(
      (row) => row.querySelector("a, button"),
    );
  const select = (index) => {
    const all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("selected", i === selected));
    all[selected].scrollIntoView({block: "nearest"});
  };
  const typing = (el) =>
    el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  document.getElementById("show-shortcuts").addEventListener("click", () => dialog.showModal());
  // A live refresh re-renders the table: the selection stays on the same position.
  document.body.addEventListener("htmx:afterSwap", () => {
    if (selected >= 0) select(selected);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && typing(document.activeElement)) {
      document.activeElement.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || dialog.open) return;
    if (pendingG) {
      pendingG = false;
      if (pages[e.key]) {
        e.preventDefault();
        location.assign(pages[e.key]);
      }
      return;
    }
    if (e.key === "g") {
      pendingG = true;
      setTimeout(() => (pendingG = false), 1500);
    } else if (e.key === "?") {
      dialog.showModal();
    } else if (e.key === "/") {
      // The search field where a page has one, else its first text field.
      const field = ["main input[name=q]", "main input:is([type=text], :not([type])), main textarea"]
        .map((selector) => document.querySelector(selector))
        .find(Boolean);
      if (!field) return;
      e.preventDefault();
      field.focus();
    } else if (e.key === "j") {
      select(selected + 1);
    } else if (e.key === "k") {
      select(selected < 0 ? 0 : selected - 1);
    } else if ((e.key === "Enter" || e.key === "o") && selected >= 0) {
      const target = rows()[selected]?.querySelector("a[href]");
      if (!target || (e.key === "Enter" && e.target.closest("a, button"))) return;
      e.preventDefault();
      location.assign(target.href);
    }
  });
})();
