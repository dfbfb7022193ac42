// The cluster view and the event list of /ui. Each member is asked for its own
// /cluster/status every second; a member that does not answer is shown as down.
"use strict";

(() => {
  const { byId, call, say, poll, element, number } = Holdfast;
  const MEMBER_TIMEOUT_MS = 1500;
  let searchText = "";

  async function memberStatus(member, own) {
    if (member.id === own.node_id) return { state: "up", status: own };
    const base = "http://" + member.http_addr;
    try {
      const answer = await call("/cluster/status", { noPrompt: true, timeoutMs: MEMBER_TIMEOUT_MS }, base);
      if (answer.status === 200 && answer.body) return { state: "up", status: answer.body };
      return { state: "up", status: null, note: "status answered " + answer.status };
    } catch (_) {
      // Not readable: either the member is down or it does not share its status with this
      // page's origin (opened through another name). An opaque probe tells them apart.
      try {
        await fetch(base + "/healthz", { mode: "no-cors", cache: "no-store", signal: AbortSignal.timeout(MEMBER_TIMEOUT_MS) });
        return { state: "up", status: null, note: "open the dashboard through a member's address to read its status" };
      } catch (_) {
        return { state: "down", status: null };
      }
    }
  }

  function cell(row, value, className) {
    row.appendChild(element("td", className || "", value));
  }

  function renderCluster(own, results) {
    const rows = byId("cluster-rows");
    rows.replaceChildren();
    const leader = results.find((result) => result.status && result.status.role === "leader");
    const leaderCommitted = leader ? leader.status.committed_index : own.committed_index;
    // When each member last answered the leader, as the leader's own status says.
    const contact = new Map();
    if (leader) {
      (leader.status.members || []).forEach((member) => {
        if (member.last_contact_ms !== null && member.last_contact_ms !== undefined) {
          contact.set(member.id, member.last_contact_ms);
        }
      });
    }
    let up = 0;
    own.members.forEach((member, position) => {
      const result = results[position];
      const status = result.status;
      if (result.state === "up") up++;
      const row = element("tr", "member " + result.state);
      row.dataset.nodeId = String(member.id);
      row.dataset.state = result.state;
      cell(row, member.id + (member.id === own.node_id ? " (this node)" : ""));
      const stateCell = element("td", "state");
      stateCell.appendChild(element("span", "badge " + result.state, result.state));
      row.appendChild(stateCell);
      cell(row, status ? status.role : "–", status ? "role-" + status.role : "");
      cell(row, member.region || "–");
      cell(row, member.voter ? "voter" : "learner");
      cell(row, status ? number(status.term) : "–");
      cell(row, status && status.leader_id !== null && status.leader_id !== undefined ? status.leader_id : "–");
      cell(row, status ? number(status.committed_index) : "–");
      cell(row, status ? number(status.applied_index) : "–");
      const lag = status ? Math.max(0, leaderCommitted - status.applied_index) : null;
      cell(row, lag === null ? "–" : number(lag));
      cell(row, contact.has(member.id) ? number(contact.get(member.id)) + " ms" : "–");
      cell(row, member.http_addr, "address");
      if (result.note) row.title = result.note;
      rows.appendChild(row);
    });
    const leaderText = own.leader_id !== null && own.leader_id !== undefined ? "leader " + own.leader_id : "no leader known";
    byId("cluster-summary").textContent =
      up + " of " + own.members.length + " members up · " + leaderText + " · term " + own.term;
    byId("node-label").textContent = "served by node " + own.node_id + " (" + own.role + ")";
    const warning = byId("placement-warning");
    const placement = own.placement_warning || (leader && leader.status.placement_warning);
    warning.hidden = !placement;
    warning.textContent = placement ? "Placement: " + placement : "";
  }

  async function refreshCluster() {
    const answer = await call("/cluster/status");
    if (answer.status !== 200 || !answer.body) {
      byId("cluster-summary").textContent = "/cluster/status answered " + Holdfast.errorText(answer);
      return;
    }
    const own = answer.body;
    if (!own.members || own.members.length === 0) {
      byId("cluster-rows").replaceChildren();
      byId("cluster-summary").textContent =
        "node " + own.node_id + " is not part of a cluster yet (" + own.role + "): POST /cluster/init or /cluster/learners";
      return;
    }
    const results = await Promise.all(own.members.map((member) => memberStatus(member, own)));
    renderCluster(own, results);
  }

  function eventItem(event) {
    const item = element("li", "event");
    const link = element("a", "", event.name || event.event_id);
    link.href = "/ui/events/" + encodeURIComponent(event.event_id);
    item.appendChild(link);
    const details = [event.event_id, event.category, event.venue, event.city, event.starts_at]
      .filter((part) => part)
      .join(" · ");
    item.appendChild(element("span", "muted", " " + details));
    const summary = event.summary;
    if (summary) {
      item.appendChild(element("span", "count s-available", "available " + number(summary.seats_available)));
      item.appendChild(element("span", "count s-held", "held " + number(summary.seats_held)));
      item.appendChild(element("span", "count s-booked", "booked " + number(summary.seats_booked)));
    }
    return item;
  }

  // Whether this node serves GET /events: asked once from its OpenAPI document (open to
  // everyone), so that a node without the search answers no 404 to the browser.
  let listsEvents = null;
  async function nodeListsEvents() {
    if (listsEvents === null) {
      const answer = await call("/openapi.json", { noPrompt: true, timeoutMs: 5000 });
      listsEvents = answer.status === 200 && answer.body && answer.body.paths
        ? Object.prototype.hasOwnProperty.call(answer.body.paths, "/events")
        : true;
    }
    return listsEvents;
  }

  async function refreshEvents() {
    if (!(await nodeListsEvents())) {
      byId("events-note").textContent =
        "This node does not list events yet (no GET /events): open an event by its id below.";
      return;
    }
    const query = "/events?limit=50" + (searchText ? "&q=" + encodeURIComponent(searchText) : "");
    const answer = await call(query);
    const list = byId("event-list");
    const note = byId("events-note");
    if (answer.status === 200 && answer.body && Array.isArray(answer.body.events)) {
      list.replaceChildren(...answer.body.events.map(eventItem));
      note.textContent = answer.body.events.length === 0
        ? "no events match"
        : answer.body.next_after ? "first 50 shown: narrow the search" : "";
      return;
    }
    list.replaceChildren();
    note.textContent = answer.status === 404 || answer.status === 405
      ? "This node does not list events (GET /events is not available): open an event by its id below."
      : "GET /events answered " + Holdfast.errorText(answer);
  }

  document.addEventListener("DOMContentLoaded", () => {
    byId("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      searchText = byId("search-input").value.trim();
      refreshEvents().catch((error) => say("event search failed: " + error.message, true));
    });
    byId("open-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = byId("open-input").value.trim();
      if (id) window.location.assign("/ui/events/" + encodeURIComponent(id));
    });
    poll(refreshCluster, 1000);
    poll(refreshEvents, 5000);
  });
})();
