// The bulk cancellations page: preview a cancellation, confirm it, delete one. Requests to
// the public API; CSRF (from dashboard.js, loaded first) carries the session's token.
"use strict";

(() => {
  const form = document.getElementById("bulk-cancel");
  const result = document.getElementById("bulk-cancel-result");
  const list = document.getElementById("bulk-cancel-runs");
  const confirmButton = document.getElementById("bulk-cancel-confirm");
  // The body the last preview counted: Confirm creates exactly that one.
  let previewed = null;

  const when = (value) => (value ? new Date(value).toISOString() : null);

  function body() {
    const option = form.elements.function.selectedOptions[0];
    const out = {
      app_id: option ? option.dataset.app : "",
      function_id: form.elements.function.value,
      started_before: when(form.elements.started_before.value) || new Date().toISOString(),
    };
    const after = when(form.elements.started_after.value);
    if (after) out.started_after = after;
    if (form.elements.if.value.trim()) out.if = form.elements.if.value.trim();
    return out;
  }

  async function post(path, payload) {
    const response = await fetch(path, {
      method: "POST",
      headers: {"content-type": "application/json", ...CSRF},
      body: JSON.stringify(payload),
    });
    return [response, await response.json().catch(() => ({}))];
  }

  function show(text, error) {
    result.className = error ? "error" : "";
    result.textContent = text;
  }

  form.addEventListener("input", () => {
    previewed = null;
    confirmButton.disabled = true;
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    previewed = null;
    confirmButton.disabled = true;
    list.replaceChildren();
    const payload = body();
    const [response, answer] = await post("/v1/cancellations/preview", payload);
    if (!response.ok) {
      show("Refused: " + (answer.error || response.status), true);
      return;
    }
    const {count, runs} = answer.data;
    show(count === 1 ? "1 run would be cancelled." : count + " runs would be cancelled.");
    for (const id of runs) {
      const link = document.createElement("a");
      link.href = "/runs/" + id;
      link.className = "run-link";
      link.textContent = id;
      const item = document.createElement("li");
      item.append(link);
      list.append(item);
    }
    if (count > runs.length) {
      const more = document.createElement("li");
      more.className = "muted";
      more.textContent = "and " + (count - runs.length) + " more";
      list.append(more);
    }
    previewed = payload;
    confirmButton.disabled = count === 0;
  });

  confirmButton.addEventListener("click", async () => {
    if (!previewed) return;
    confirmButton.disabled = true;
    const [response, answer] = await post("/v1/cancellations", previewed);
    if (!response.ok) {
      show("Refused: " + (answer.error || response.status), true);
      return;
    }
    previewed = null;
    list.replaceChildren();
    show("Created cancellation " + answer.data.id + ".");
    htmx.trigger("#live", "refresh");
  });

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("[data-delete-cancellation]");
    if (!button) return;
    button.disabled = true;
    const response = await fetch("/v1/cancellations/" + button.dataset.deleteCancellation, {
      method: "DELETE",
      headers: CSRF,
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      button.disabled = false;
      alert("Delete failed: " + (answer.error || response.status));
      return;
    }
    htmx.trigger("#live", "refresh");
  });
})();
