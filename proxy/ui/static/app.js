// The status page: fetches /ui/summary.json every few seconds and renders it with DOM calls
// only (textContent, never innerHTML): event excerpts are user text.
"use strict";

const REFRESH_MS = 5000;
const KEY_STORAGE = "candor-admin-key";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    // Through the CSSOM: the page's CSP forbids inline style attributes.
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function percent(rate) {
  return `${Math.round(rate * 1000) / 10}%`;
}

function adminKey() {
  const match = /(?:^|&)key=([^&]+)/.exec(location.hash.slice(1));
  if (match) {
    sessionStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(KEY_STORAGE);
}

function heat(rate) {
  // Pale green for none, then light to dark red with the rate; white text on dark cells.
  if (rate === 0) return { background: "rgba(30, 132, 73, 0.09)" };
  const alpha = 0.12 + 0.76 * rate;
  return { background: `rgba(192, 57, 43, ${alpha.toFixed(2)})`, color: rate > 0.55 ? "#fff" : "inherit" };
}

function renderMeta(data) {
  const meta = document.getElementById("meta");
  const store = data.store;
  // A store that answers but refuses writes (Redis at maxmemory) is as bad as an absent one:
  // audit events wait in the buffer (then are dropped) and rate limits are off.
  const state = !store.reachable ? "unreachable" : !store.writable ? "read-only" : "ok";
  const problem = {
    ok: "",
    unreachable: " unreachable",
    "read-only": ` refuses writes · ${store.buffered_events} events buffered, ${store.dropped_events} dropped`,
  }[state];
  meta.replaceChildren(
    el("span", { id: "store", "data-store": state },
      el("span", { class: `dot ${state === "ok" ? "ok" : "bad"}` }), `store ${store.kind}${problem}`),
    data.demo_mode ? el("span", {}, "demo mode") : null,
    el("span", {}, `updated ${new Date(data.generated_at * 1000).toLocaleTimeString()}`),
  );
  const minutes = Math.round(data.window_seconds / 60);
  document.getElementById("window").textContent = `· last ${minutes >= 120 ? `${Math.round(minutes / 60)} h` : `${minutes} min`}`;
}

function renderCards(data) {
  const cards = data.models.map((m) => {
    const hot = m.rate >= 0.2;
    return el("div", { class: "card", "data-model": m.name },
      el("div", { class: "label" }, `policy ${m.policy}`),
      el("div", { class: "name" }, m.name),
      el("div", { class: `value ${m.scanned ? (hot ? "hot" : "cool") : ""}` }, m.scanned ? percent(m.rate) : "–"),
      el("div", { class: "sub" }, `${m.censored} of ${m.scanned} answers censored`),
      el("div", { class: "bar" }, el("span", { style: { width: `${Math.round(m.rate * 100)}%` } })),
    );
  });
  const total = data.reroutes.reduce((sum, r) => sum + r.count, 0);
  const pairs = data.reroutes.map((r) => el("div", { class: "sub" }, `${r.from} → ${r.to}: ${r.count}`));
  cards.push(el("div", { class: "card", id: "reroutes" },
    el("div", { class: "label" }, "re-routes"),
    el("div", { class: "name" }, "to a fallback model"),
    el("div", { class: "value" }, String(total)),
    ...(pairs.length ? pairs : [el("div", { class: "sub" }, "none yet")]),
  ));
  const flags = (data.actions.flag || 0) + (data.actions.annotate || 0);
  cards.push(el("div", { class: "card", id: "flags" },
    el("div", { class: "label" }, "flagged"),
    el("div", { class: "name" }, "passed on, marked"),
    el("div", { class: "value" }, String(flags)),
    el("div", { class: "sub" }, `blocked ${data.actions.block || 0} · shadowed ${Object.keys(data.actions).filter((a) => a.startsWith("shadow")).reduce((s, a) => s + data.actions[a], 0)}`),
  ));
  document.getElementById("cards").replaceChildren(...cards);
}

function renderRates(data) {
  const table = document.getElementById("rates");
  const judged = data.models.filter((m) => m.scanned);
  document.getElementById("rates-empty").classList.toggle("hidden", judged.length > 0);
  table.classList.toggle("hidden", judged.length === 0);
  const head = el("tr", {}, el("th", {}, "model"), el("th", { class: "topic" }, "all topics"),
    ...data.topics.map((t) => el("th", { class: "topic" }, t.replaceAll("_", " "))));
  const rows = judged.map((m) => el("tr", {},
    el("td", {}, m.name),
    rateCell(m),
    ...data.topics.map((t) => rateCell(m.topics[t])),
  ));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function rateCell(counts) {
  if (!counts || !counts.scanned) return el("td", { class: "rate none" }, "–");
  return el("td", { class: "rate", style: heat(counts.rate), title: `${counts.censored} censored of ${counts.scanned}` },
    percent(counts.rate), el("span", { class: "count" }, `${counts.censored}/${counts.scanned}`));
}

function renderEvents(data) {
  const table = document.getElementById("events");
  document.getElementById("events-empty").classList.toggle("hidden", data.events.length > 0);
  table.classList.toggle("hidden", data.events.length === 0);
  const head = el("tr", {}, ...["time", "model", "action", "category", "topics", "prompt", "answered by"].map((h) => el("th", {}, h)));
  const rows = data.events.map((e) => el("tr", { "data-action": e.action },
    el("td", { class: "time" }, new Date(e.time * 1000).toLocaleTimeString()),
    el("td", {}, e.model),
    el("td", {}, el("span", { class: `badge ${e.action.split(":")[0]}` }, e.action)),
    el("td", {}, e.category.replaceAll("_", " ")),
    el("td", {}, ...e.topics.map((t) => el("span", { class: "pill" }, t.replaceAll("_", " ")))),
    el("td", { class: "excerpt" }, e.prompt_excerpt ?? "(redacted)"),
    el("td", {}, e.fallback_model ?? e.model),
  ));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

async function refresh() {
  const key = adminKey();
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  let response;
  try {
    response = await fetch("/ui/summary.json", { headers, cache: "no-store" });
  } catch (err) {
    document.getElementById("meta").textContent = "Candor is not answering";
    return;
  }
  const needsKey = response.status === 401;
  document.getElementById("login").classList.toggle("hidden", !needsKey);
  document.getElementById("content").classList.toggle("hidden", needsKey);
  if (needsKey) {
    document.getElementById("meta").textContent = "admin key needed";
    document.getElementById("login-error").textContent = key ? "That key was refused." : "";
    return;
  }
  if (!response.ok) {
    document.getElementById("meta").textContent = `summary failed: HTTP ${response.status}`;
    return;
  }
  const data = await response.json();
  renderMeta(data);
  renderCards(data);
  renderRates(data);
  renderEvents(data);
  document.body.dataset.loaded = "true";
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("key").value.trim());
  refresh();
});
refresh();
setInterval(refresh, REFRESH_MS);
