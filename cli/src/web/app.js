// pgq web: draws each snapshot the server sends (server-sent events), without reloading.
// Text goes in with textContent only: nothing from the database is ever parsed as HTML.
"use strict";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// The actions' token: present only when pgq web runs with --allow-actions.
const csrf = document.querySelector('meta[name="pgq-actions"]').content;
if (!csrf) document.documentElement.classList.add("no-actions");

// A cell of buttons, each posting one action; the next snapshot shows its effect.
function actions(row, list) {
  const td = document.createElement("td");
  td.className = "act";
  for (const [label, body] of csrf ? list : []) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = body.action;
    b.addEventListener("click", () => post(b, body));
    td.appendChild(b);
  }
  row.appendChild(td);
}

async function post(b, body) {
  b.disabled = true;
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/action", {
      method: "POST",
      headers: { "content-type": "application/json", "x-pgq-csrf": csrf },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      status.textContent = await response.text();
      status.className = "status bad";
    }
  } catch (error) {
    status.textContent = String(error);
    status.className = "status bad";
  }
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

function time(value) {
  return value ? new Date(value).toLocaleString() : "";
}

// Redraws a table's rows, unless they are what it shows already: rows that did not change stay
// the same elements, so a button under the pointer (or being clicked) is not replaced.
function fill(id, rows, draw) {
  const body = document.querySelector("#" + id + " tbody");
  const json = JSON.stringify(rows);
  if (body.dataset.rows === json) return;
  const fresh = document.createElement("tbody");
  fresh.dataset.rows = json;
  for (const item of rows) {
    const row = document.createElement("tr");
    draw(row, item);
    fresh.appendChild(row);
  }
  if (rows.length === 0) {
    const row = document.createElement("tr");
    const td = cell(row, "none", "empty");
    td.colSpan = document.querySelectorAll("#" + id + " thead th").length;
    fresh.appendChild(row);
  }
  body.replaceWith(fresh);
}

function totals(state) {
  const sum = (key) => state.entrypoints.reduce((n, e) => n + e[key], 0);
  const box = document.getElementById("totals");
  box.replaceChildren();
  for (const [label, value] of [["queued", sum("queued")], ["picked", sum("picked")],
                                ["held", sum("held")],
                                ["paused", state.entrypoints.filter((e) => e.paused).length],
                                ["workers", state.workers.length]]) {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.total = label;
    const number = document.createElement("strong");
    number.textContent = String(value);
    const name = document.createElement("span");
    name.textContent = label;
    tile.append(number, name);
    box.appendChild(tile);
  }
}

function chart(points) {
  const svg = document.getElementById("chart");
  svg.replaceChildren();
  if (points.length === 0) return;
  const top = Math.max(1, ...points.map((p) => (p.successful || 0) + (p.failed || 0)));
  const width = 600 / 60;
  const now = Date.now();
  for (const p of points) {
    const minutesAgo = (now - new Date(p.minute).getTime()) / 60000;
    const x = 600 - (minutesAgo + 1) * width;
    const ok = ((p.successful || 0) / top) * 110;
    const bad = ((p.failed || 0) / top) * 110;
    for (const [h, y, cls] of [[ok, 120 - ok, "ok"], [bad, 120 - ok - bad, "bad"]]) {
      if (h <= 0) continue;
      const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      bar.setAttribute("x", x.toFixed(1));
      bar.setAttribute("y", y.toFixed(1));
      bar.setAttribute("width", (width - 1).toFixed(1));
      bar.setAttribute("height", h.toFixed(1));
      bar.setAttribute("class", cls);
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = time(p.minute) + ": " + (p.successful || 0) + " ok/s, " +
        (p.failed || 0) + " failed/s";
      bar.appendChild(title);
      svg.appendChild(bar);
    }
  }
}

function draw(state) {
  const status = document.getElementById("status");
  if (state.error) {
    status.textContent = "database: " + state.error;
    status.className = "status bad";
    return;
  }
  status.textContent = "live · " + time(state.at);
  status.className = "status ok";
  totals(state);
  chart(state.per_minute);
  fill("entrypoints", state.entrypoints, (row, e) => {
    row.dataset.entrypoint = e.entrypoint;
    cell(row, e.entrypoint, "name");
    cell(row, e.queued, "queued");
    cell(row, e.ready, "ready");
    cell(row, e.picked, "picked");
    cell(row, e.held, "held");
    cell(row, age(e.oldest_queued_seconds), "oldest");
    cell(row, e.paused ? "paused" : "", e.paused ? "paused" : "");
    const verb = e.paused ? "resume" : "pause";
    actions(row, [[verb, { action: verb, entrypoint: e.entrypoint }]]);
  });
  fill("running", state.running, (row, j) => {
    cell(row, j.id);
    cell(row, j.entrypoint);
    cell(row, j.worker_id, "mono");
    cell(row, time(j.picked_at));
    cell(row, age(j.heartbeat_age_seconds));
    actions(row, [["cancel", { action: "cancel", ids: [j.id] }]]);
  });
  fill("held", state.held, (row, j) => {
    row.dataset.job = j.id;
    cell(row, j.id);
    cell(row, j.entrypoint);
    cell(row, j.attempts);
    cell(row, time(j.updated));
    cell(row, j.detail ? JSON.stringify(j.detail) : "", "detail");
    actions(row, [["requeue", { action: "requeue", ids: [j.id] }],
                  ["cancel", { action: "cancel", ids: [j.id] }]]);
  });
  fill("exceptions", state.exceptions, (row, x) => {
    cell(row, x.job_id);
    cell(row, x.entrypoint);
    cell(row, x.attempts);
    cell(row, time(x.created));
    cell(row, x.detail ? JSON.stringify(x.detail) : "", "detail");
  });
  fill("schedules", state.schedules, (row, s) => {
    cell(row, s.entrypoint);
    cell(row, s.expression, "mono");
    cell(row, s.timezone);
    cell(row, s.enabled ? time(s.next_run) : "disabled");
    cell(row, time(s.last_run));
  });
}

const events = new EventSource("/api/events");
events.addEventListener("snapshot", (event) => draw(JSON.parse(event.data)));
events.onerror = () => {
  const status = document.getElementById("status");
  status.textContent = "reconnecting…";
  status.className = "status bad";
};
