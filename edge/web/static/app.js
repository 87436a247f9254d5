// moodbox web app: plain JavaScript, no libraries, no inline script (the CSP forbids it).
"use strict";

const csrf = document.body.dataset.csrf;
const $ = (id) => document.getElementById(id);

async function send(url, data, isForm) {
  const options = { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
  if (isForm) {
    options.body = data;
  } else {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(data || {});
  }
  const response = await fetch(url, options);
  let body = {};
  try { body = await response.json(); } catch (err) { body = {}; }
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function stream(handlers) {
  const source = new EventSource("/api/events");
  const live = $("live");
  source.onopen = () => { if (live) live.textContent = "live"; };
  source.onerror = () => { if (live) live.textContent = "reconnecting…"; };
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => handler(JSON.parse(message.data)));
  }
  return source;
}

// --- Home ---------------------------------------------------------------------

function renderState(state) {
  $("household-mood").textContent = state.mood || "nobody in view";
  const faces = $("faces");
  faces.replaceChildren();
  if (!state.faces.length) faces.append(el("p", { class: "muted", text: "Nobody in view." }));
  for (const face of state.faces.slice().reverse()) {
    const card = el("div", { class: "face", "data-user": face.user || "" },
      el("h3", { text: `${face.user || "someone"} · ${face.mood}` }));
    const entries = Object.entries(face.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [label, p] of entries) {
      const bar = el("progress", { max: "1", value: String(p) });
      card.append(el("div", { class: "bar" }, el("span", { text: label }), bar,
        el("span", { text: `${Math.round(p * 100)}%` })));
    }
    faces.append(card);
  }
  const present = $("present");
  present.replaceChildren();
  if (!state.present.length) present.append(el("li", { class: "muted", text: "nobody signed in" }));
  for (const name of state.present) present.append(el("li", { text: name }));
  const player = state.player;
  $("track-title").textContent = player.title || "nothing";
  $("track-artist").textContent = player.artist ? `– ${player.artist}` : "";
  $("player-state").textContent = player.state;
  $("track-mood").textContent = player.mood || "–";
  if (typeof player.volume === "number" && document.activeElement !== $("volume")) {
    $("volume").value = player.volume;
    $("volume-value").textContent = `${player.volume}%`;
  }
  if ("mood_override" in player) $("mood-override").value = player.mood_override || "auto";
  if (typeof player.auto === "boolean") $("auto").checked = player.auto;
}

function showError(err) {
  const box = $("command-error");
  box.hidden = false;
  box.textContent = err.message;
  setTimeout(() => { box.hidden = true; }, 4000);
}

function home() {
  stream({ state: renderState });
  for (const button of document.querySelectorAll("[data-player]")) {
    button.addEventListener("click", () =>
      send("/api/player", { action: button.dataset.player }).catch(showError));
  }
  $("volume").addEventListener("change", (e) => {
    $("volume-value").textContent = `${e.target.value}%`;
    send("/api/volume", { volume: Number(e.target.value) }).catch(showError);
  });
  $("mood-override").addEventListener("change", (e) =>
    send("/api/mood_override", { mood: e.target.value }).catch(showError));
  $("auto").addEventListener("change", (e) =>
    send("/api/auto", { on: e.target.checked }).catch(showError));
}

// --- Sign up ------------------------------------------------------------------

function signup() {
  const preview = $("preview");
  if (!preview) return;
  let wanted = null;
  const status = $("enrol-status");
  const progress = $("enrol-progress");
  const refresh = () => { preview.src = `/api/preview.jpg?t=${Date.now()}`; };
  preview.addEventListener("load", () => setTimeout(refresh, 250));
  preview.addEventListener("error", () => setTimeout(refresh, 1000));
  refresh();
  const say = (text, cls) => { status.textContent = text; status.className = `status ${cls || ""}`; };
  stream({
    enrolment: (view) => {
      const active = view.active;
      if (active && active.name === wanted) {
        progress.max = active.wanted;
        progress.value = active.samples;
        let text = `Look at the camera: ${active.samples} of ${active.wanted} samples.`;
        if (active.problem) text += ` Refused frames: ${active.problem}.`;
        say(text);
      }
    },
    status: (event) => {
      if (event.component !== "enrolment" || event.user !== wanted) return;
      if (event.ok) {
        progress.value = progress.max;
        say(`Enrolled ${wanted}. Waiting to recognise you…`);
      } else {
        say(`Enrolment failed: ${event.detail}`, "error");
        $("enroll").disabled = false;
      }
    },
    user_signed_in: (event) => {
      if (event.user !== wanted) return;
      say(`Signed in as ${event.user}.`, "ok");
      status.id = "enrol-status";
      status.dataset.signedIn = event.user;
      $("enroll").disabled = false;
    },
  });
  $("enroll-form").addEventListener("submit", (e) => {
    e.preventDefault();
    wanted = $("name").value.trim();
    $("enroll").disabled = true;
    progress.value = 0;
    say("Starting… look at the camera.");
    send("/api/people/enroll", { name: wanted }).catch((err) => {
      say(err.message, "error");
      $("enroll").disabled = false;
    });
  });
  $("photo-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    $("photo-status").textContent = "Uploading…";
    send("/api/people/photos", form, true).then((body) => {
      const skipped = body.skipped.length ? ` Skipped: ${body.skipped.join("; ")}` : "";
      $("photo-status").textContent = `Enrolled from ${body.samples} photo sample(s).${skipped}`;
    }).catch((err) => { $("photo-status").textContent = err.message; });
  });
}

// --- People -------------------------------------------------------------------

function people() {
  const status = $("people-status");
  for (const node of document.querySelectorAll("time[data-ts]")) {
    if (node.dataset.ts) node.textContent = new Date(Number(node.dataset.ts) * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }
  const done = (text) => { status.textContent = text; setTimeout(() => location.reload(), 800); };
  for (const button of document.querySelectorAll("button.rename")) {
    button.addEventListener("click", () => {
      const name = button.dataset.name;
      const renamed = prompt(`New name for ${name}:`, name);
      if (!renamed || renamed === name) return;
      send("/api/people/rename", { old: name, new: renamed })
        .then(() => done(`Renamed ${name} to ${renamed}.`))
        .catch((err) => { status.textContent = err.message; });
    });
  }
  for (const button of document.querySelectorAll("button.forget")) {
    button.addEventListener("click", () => {
      const name = button.dataset.name;
      if (!confirm(`Forget ${name}? Their face samples and their history are deleted for good.`)) return;
      send("/api/people/forget", { name, confirm: name })
        .then(() => done(`Forgot ${name}.`))
        .catch((err) => { status.textContent = err.message; });
    });
  }
  $("import-form").addEventListener("submit", (e) => {
    e.preventDefault();
    send("/api/people/import", new FormData(e.target), true)
      .then((body) => done(`Restored ${body.people.join(", ") || "nobody"}.`))
      .catch((err) => { status.textContent = err.message; });
  });
}

const pages = { home, signup, people };
const start = pages[document.body.dataset.page];
if (start) start();
