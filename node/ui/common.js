// Shared by the dashboard's pages: calls to the JSON API with the user's key, the key
// prompt, messages, and a poller that never overlaps itself.
"use strict";

const Holdfast = (() => {
  const KEY_STORAGE = "holdfast.api-key";
  // Answers kept for 401s: every waiting call resumes once the user gives a key.
  let keyWaiters = [];

  function byId(id) {
    return document.getElementById(id);
  }

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (_) {
      return "";
    }
  }

  function askForKey() {
    const panel = byId("key-panel");
    panel.hidden = false;
    byId("key-input").focus();
    return new Promise((resolve) => keyWaiters.push(resolve));
  }

  function installKeyForm() {
    byId("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = byId("key-input").value.trim();
      if (!key) return;
      try {
        sessionStorage.setItem(KEY_STORAGE, key);
      } catch (_) {
        // Storage may be switched off; the key then lasts as long as this page.
      }
      memoryKey = key;
      byId("key-input").value = "";
      byId("key-panel").hidden = true;
      const waiting = keyWaiters;
      keyWaiters = [];
      waiting.forEach((resolve) => resolve());
    });
  }
  let memoryKey = "";

  function headersFor(extra) {
    const headers = new Headers(extra || {});
    const key = apiKey() || memoryKey;
    if (key) headers.set("Authorization", "Bearer " + key);
    return headers;
  }

  // Calls the API (`base` is "" for this node or another member's "http://host:port").
  // Resolves to {status, body, headers}; a 401 asks for a key once and retries.
  async function call(path, options, base) {
    const settings = options || {};
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch((base || "") + path, {
        method: settings.method || "GET",
        headers: headersFor(settings.headers),
        body: settings.body === undefined ? undefined : JSON.stringify(settings.body),
        cache: "no-store",
        signal: AbortSignal.timeout(settings.timeoutMs || 5000),
      });
      if (response.status === 401 && attempt === 0 && !settings.noPrompt) {
        await askForKey();
        continue;
      }
      let body = null;
      if (response.status !== 304) {
        const text = await response.text();
        try {
          body = text ? JSON.parse(text) : null;
        } catch (_) {
          body = null;
        }
      }
      return { status: response.status, body: body, headers: response.headers };
    }
    throw new Error("unreachable");
  }

  function post(path, body) {
    const key = "ui-" + (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    return call(path, {
      method: "POST",
      body: body,
      headers: { "Content-Type": "application/json", "Idempotency-Key": key },
      timeoutMs: 15000,
    });
  }

  function errorText(answer) {
    const error = answer.body && answer.body.error;
    if (error) return answer.status + " " + error.code + ": " + error.message;
    return "HTTP " + answer.status;
  }

  function say(text, isError) {
    const message = byId("message");
    message.textContent = text;
    message.classList.toggle("error", Boolean(isError));
  }

  // Runs `step` now and then every `intervalMs` after each run ends.
  function poll(step, intervalMs) {
    const state = byId("poll-state");
    async function tick() {
      try {
        await step();
        if (state) state.textContent = "live · updated " + new Date().toLocaleTimeString();
      } catch (error) {
        if (state) state.textContent = "update failed: " + error.message;
      }
      setTimeout(tick, intervalMs);
    }
    tick();
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function number(value) {
    return typeof value === "number" ? String(value) : "–";
  }

  document.addEventListener("DOMContentLoaded", installKeyForm);

  return { byId, call, post, errorText, say, poll, element, number };
})();
