// The seat map of /ui/events/{event_id}: seats coloured by status, pools as bars, the
// counters as text, refreshed from GET /availability twice a second (conditional requests:
// an unchanged page costs a 304), and hold / confirm / cancel buttons for demos.
"use strict";

(() => {
  const { byId, call, post, errorText, say, poll, element, number } = Holdfast;
  const PAGE_SEATS = 5000;
  // Seats drawn at most: a stadium's million seats would not help anyone in a browser.
  const PAGES_MAX = 4;
  const REFRESH_MS = 500;
  const eventId = decodeURIComponent(window.location.pathname.slice("/ui/events/".length));
  const holdsStorage = "holdfast.holds." + eventId;

  // Pages by their `after` ("" for the first), with the ETag they came with.
  const pages = new Map();
  // Seat elements by seat id, and the layout (seat ids in order) they were built for.
  const seatElements = new Map();
  let layoutKey = "";
  const selected = new Set();
  let holds = loadHolds();

  function loadHolds() {
    try {
      return JSON.parse(sessionStorage.getItem(holdsStorage) || "[]");
    } catch (_) {
      return [];
    }
  }

  function saveHolds() {
    try {
      sessionStorage.setItem(holdsStorage, JSON.stringify(holds.slice(-50)));
    } catch (_) {
      // Without storage the list lasts as long as the page.
    }
  }

  async function fetchPage(after) {
    let path = "/availability?view=full&limit=" + PAGE_SEATS + "&event_id=" + encodeURIComponent(eventId);
    if (after) path += "&after=" + encodeURIComponent(after);
    const cached = pages.get(after);
    const headers = cached && cached.etag ? { "If-None-Match": cached.etag } : {};
    const answer = await call(path, { headers: headers });
    if (answer.status === 304 && cached) return cached.body;
    if (answer.status !== 200) return Promise.reject(answer);
    pages.set(after, { etag: answer.headers.get("ETag"), body: answer.body });
    return answer.body;
  }

  async function refresh() {
    let first;
    try {
      first = await fetchPage("");
    } catch (answer) {
      if (answer && answer.status) {
        byId("seats-note").textContent = "GET /availability answered " + errorText(answer);
        return;
      }
      throw answer;
    }
    const seats = first.seats.slice();
    let next = first.next_after;
    let fetched = 1;
    while (next && fetched < PAGES_MAX) {
      const page = await fetchPage(next);
      seats.push(...page.seats);
      next = page.next_after;
      fetched++;
    }
    renderSummary(first);
    renderPools(first.pools || []);
    renderSeats(seats, Boolean(next), first.summary);
  }

  function renderSummary(page) {
    const summary = page.summary || {};
    byId("count-available").textContent = number(summary.seats_available);
    byId("count-held").textContent = number(summary.seats_held);
    byId("count-booked").textContent = number(summary.seats_booked);
    byId("count-total").textContent = number(summary.seats_total);
    byId("applied-index").textContent = number(page.applied_index);
  }

  function renderPools(pools) {
    const box = byId("pools");
    if (pools.length === 0) {
      box.replaceChildren(element("p", "muted", "none"));
      return;
    }
    box.replaceChildren(...pools.map((pool) => {
      const row = element("div", "pool");
      row.dataset.poolId = pool.id;
      row.appendChild(element("span", "pool-name", pool.id));
      const bar = element("div", "bar");
      bar.title = pool.id + ": capacity " + pool.capacity;
      for (const [part, value] of [["booked", pool.booked], ["held", pool.held], ["available", pool.available]]) {
        const segment = element("span", "segment s-" + part);
        segment.style.width = (pool.capacity > 0 ? (100 * value) / pool.capacity : 0) + "%";
        bar.appendChild(segment);
      }
      row.appendChild(bar);
      const text = element("span", "pool-counts");
      text.appendChild(element("span", "count s-available", "available " + number(pool.available)));
      text.appendChild(element("span", "count s-held", "held " + number(pool.held)));
      text.appendChild(element("span", "count s-booked", "booked " + number(pool.booked)));
      text.appendChild(element("span", "muted", "of " + number(pool.capacity)));
      row.appendChild(text);
      const button = element("button", "small", "Hold 1");
      button.type = "button";
      button.disabled = pool.available === 0;
      button.addEventListener("click", () => holdItems({ pools: [{ pool_id: pool.id, quantity: 1 }] }, "1 × " + pool.id));
      row.appendChild(button);
      return row;
    }));
  }

  function buildLayout(seats) {
    seatElements.clear();
    const map = byId("seat-map");
    const sections = new Map();
    for (const seat of seats) {
      if (!sections.has(seat.section)) sections.set(seat.section, new Map());
      const rows = sections.get(seat.section);
      if (!rows.has(seat.row)) rows.set(seat.row, []);
      rows.get(seat.row).push(seat);
    }
    const blocks = [];
    for (const [section, rows] of sections) {
      const block = element("div", "section");
      block.appendChild(element("h3", "", section));
      for (const [row, rowSeats] of rows) {
        const line = element("div", "seat-row");
        line.appendChild(element("span", "row-label", row));
        for (const seat of rowSeats) {
          const button = element("button", "seat");
          button.type = "button";
          button.dataset.seatId = seat.id;
          button.addEventListener("click", () => toggle(seat.id));
          seatElements.set(seat.id, button);
          line.appendChild(button);
        }
        block.appendChild(line);
      }
      blocks.push(block);
    }
    map.replaceChildren(...blocks);
  }

  function renderSeats(seats, truncated, summary) {
    const key = seats.map((seat) => seat.id).join("\n");
    if (key !== layoutKey) {
      buildLayout(seats);
      layoutKey = key;
    }
    for (const seat of seats) {
      const button = seatElements.get(seat.id);
      const status = seat.status.toLowerCase();
      if (status !== "available") selected.delete(seat.id);
      const className = "seat s-" + status + (selected.has(seat.id) ? " s-selected" : "");
      if (button.className !== className) button.className = className;
      if (button.dataset.status !== seat.status) {
        button.dataset.status = seat.status;
        button.title = seat.id + " · " + (seat.price / 100).toFixed(2) + " " + seat.currency + " · " + seat.status;
      }
    }
    const total = summary ? summary.seats_total : seats.length;
    byId("seats-note").textContent = seats.length === 0
      ? "no numbered seats"
      : truncated ? "the first " + seats.length + " of " + total + " seats are drawn" : "";
    updateSelection();
  }

  function toggle(seatId) {
    const button = seatElements.get(seatId);
    if (!button || button.dataset.status !== "AVAILABLE") return;
    if (selected.has(seatId)) selected.delete(seatId);
    else if (selected.size < 100) selected.add(seatId);
    button.classList.toggle("s-selected", selected.has(seatId));
    updateSelection();
  }

  function updateSelection() {
    byId("hold-button").disabled = selected.size === 0;
    byId("selection").textContent = selected.size === 0
      ? "click available seats to select them"
      : selected.size + " selected: " + Array.from(selected).slice(0, 8).join(", ") + (selected.size > 8 ? "…" : "");
  }

  async function holdItems(items, label) {
    const customer = byId("customer-input").value.trim() || "ui-demo";
    const body = Object.assign({ event_id: eventId, customer_id: customer, ttl_seconds: 600 }, items);
    const answer = await post("/booking/hold", body);
    if (answer.status !== 201) {
      say("hold refused: " + errorText(answer), true);
      return;
    }
    holds.push({ hold_id: answer.body.hold_id, items: label, status: "HELD", booking_id: null });
    saveHolds();
    say("held " + label + " as " + answer.body.hold_id + " until " + answer.body.expires_at);
    renderHolds();
    await refresh();
  }

  async function act(hold, action) {
    let answer;
    if (action === "confirm") {
      answer = await post("/booking/confirm", { hold_id: hold.hold_id, payment: { method: "card", token: "tok_visa" } });
      if (answer.status === 200) {
        hold.status = "CONFIRMED";
        hold.booking_id = answer.body.booking_id;
      }
    } else if (action === "release") {
      answer = await post("/booking/cancel", { hold_id: hold.hold_id });
      if (answer.status === 200) hold.status = "CANCELLED";
    } else {
      answer = await post("/booking/cancel", { booking_id: hold.booking_id, reason: "cancelled from the dashboard" });
      if (answer.status === 200) hold.status = "BOOKING CANCELLED";
    }
    if (answer.status === 200) say(action + " of " + hold.hold_id + " done");
    else {
      say(action + " refused: " + errorText(answer), true);
      if (answer.status === 410) hold.status = "EXPIRED";
    }
    saveHolds();
    renderHolds();
    await refresh();
  }

  function renderHolds() {
    const rows = byId("holds-rows");
    rows.replaceChildren(...holds.slice().reverse().map((hold) => {
      const row = element("tr");
      row.dataset.holdId = hold.hold_id;
      row.appendChild(element("td", "", hold.hold_id));
      row.appendChild(element("td", "", hold.items));
      row.appendChild(element("td", "", hold.status));
      row.appendChild(element("td", "", hold.booking_id || "–"));
      const buttons = element("td");
      const add = (text, action) => {
        const button = element("button", "small", text);
        button.type = "button";
        button.dataset.action = action;
        button.addEventListener("click", () => act(hold, action).catch((error) => say(error.message, true)));
        buttons.appendChild(button);
      };
      if (hold.status === "HELD") {
        add("Confirm (test card)", "confirm");
        add("Cancel hold", "release");
      } else if (hold.status === "CONFIRMED") {
        add("Cancel booking", "cancel-booking");
      }
      row.appendChild(buttons);
      return row;
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    byId("hold-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const seats = Array.from(selected);
      if (seats.length === 0) return;
      selected.clear();
      holdItems({ seats: seats }, seats.join(", ")).catch((error) => say("hold failed: " + error.message, true));
    });
    renderHolds();
    poll(refresh, REFRESH_MS);
  });
})();
