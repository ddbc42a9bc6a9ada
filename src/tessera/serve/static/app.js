// tessera web page: attach images (pick, drop, paste), ask, stream the answer over the SSE chat endpoint.
// Plain JS, no build step. The conversation lives here and is sent whole every turn (OpenAI style).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,
  maxTiles: 12,
  messages: [],        // OpenAI messages sent so far (images as data URLs)
  attachments: [],     // {dataUrl, width, height, name}
  controller: null,    // AbortController of the answer being streamed
};

// ---------------------------------------------------------------- server info
async function connect() {
  try {
    const res = await fetch("/health");
    const info = await res.json();
    state.model = info.model;
    state.maxTiles = info.max_tiles;
    $("model").textContent = info.model;
    $("status").className = "dot " + (res.ok ? "ok" : "bad");
    const slider = $("max-tiles");
    slider.max = String(info.max_tiles);
    slider.value = String(Math.min(Number(localStorage.getItem("tessera.maxTiles") || info.max_tiles), info.max_tiles));
    $("max-tiles-value").textContent = slider.value;
    if (info.auth && !$("api-key").value) openSettings();
  } catch (err) {
    $("model").textContent = "server unreachable";
    $("status").className = "dot bad";
  }
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function openSettings() {
  $("settings").hidden = false;
  $("settings-toggle").setAttribute("aria-expanded", "true");
}

// ---------------------------------------------------------------- tile grid
async function tileGrid(width, height) {
  const q = new URLSearchParams({ width, height, max_tiles: $("max-tiles").value });
  const res = await fetch("/v1/tile_grid?" + q, { headers: headers() });
  if (!res.ok) return null;
  return res.json();
}

// An <img> with the tile grid drawn over it; the grid is filled in once the server answers.
function tiledImage(att, grid) {
  const box = document.createElement("div");
  box.className = "tiled";
  const img = document.createElement("img");
  img.src = att.dataUrl;
  img.alt = att.name || "image";
  box.append(img);
  const overlay = document.createElement("div");
  overlay.className = "tiles";
  const label = document.createElement("span");
  label.className = "tile-label";
  box.append(overlay, label);
  const draw = (g) => {
    if (!g) return;
    overlay.style.gridTemplateColumns = `repeat(${g.cols}, 1fr)`;
    overlay.style.gridTemplateRows = `repeat(${g.rows}, 1fr)`;
    overlay.replaceChildren(...Array.from({ length: g.cols * g.rows }, () => document.createElement("span")));
    const thumb = g.thumbnail ? " + thumbnail" : "";
    label.textContent = `${g.cols}×${g.rows} tiles${thumb} · ${g.image_tokens} image tokens`;
    box.dataset.cols = g.cols;
    box.dataset.rows = g.rows;
  };
  if (grid) draw(grid); else tileGrid(att.width, att.height).then((g) => { att.grid = g; draw(g); });
  box.redraw = () => tileGrid(att.width, att.height).then((g) => { att.grid = g; draw(g); });
  return box;
}

// ---------------------------------------------------------------- attachments
function readImage(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onerror = () => reject(new Error("cannot read " + file.name));
    reader.onload = () => {
      const img = new Image();
      img.onload = () => resolve({ dataUrl: reader.result, width: img.naturalWidth, height: img.naturalHeight, name: file.name });
      img.onerror = () => reject(new Error(file.name + " is not an image the browser can show"));
      img.src = reader.result;
    };
    reader.readAsDataURL(file);
  });
}

async function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) continue;
    try {
      state.attachments.push(await readImage(file));
    } catch (err) {
      showError(err.message);
    }
  }
  renderAttachments();
}

function renderAttachments() {
  const list = $("attachments");
  list.replaceChildren();
  state.attachments.forEach((att, i) => {
    const wrap = document.createElement("div");
    wrap.className = "attachment";
    wrap.append(tiledImage(att));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.title = "Remove";
    remove.textContent = "×";
    remove.onclick = () => { state.attachments.splice(i, 1); renderAttachments(); };
    wrap.append(remove);
    list.append(wrap);
  });
  scrollDown();
}

// ---------------------------------------------------------------- chat
function addMessage(role, text, atts) {
  $("empty").hidden = true;
  const msg = document.createElement("div");
  msg.className = "msg " + role;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (atts && atts.length) {
    const imgs = document.createElement("div");
    imgs.className = "images";
    atts.forEach((a) => imgs.append(tiledImage(a, a.grid)));
    bubble.append(imgs);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  bubble.append(body);
  msg.append(bubble);
  $("chat").append(msg);
  scrollDown();
  return bubble;
}

function showError(message) {
  const bubble = addMessage("assistant", message);
  bubble.classList.add("error");
}

function scrollDown() {
  const chat = $("chat");
  chat.scrollTop = chat.scrollHeight;
}

function setBusy(busy) {
  const send = $("send");
  send.textContent = busy ? "Stop" : "Send";
  send.classList.toggle("stop", busy);
}

async function send() {
  if (state.controller) { state.controller.abort(); return; }
  const text = $("question").value.trim();
  if (!text && !state.attachments.length) return;
  const atts = state.attachments;
  const content = [
    ...atts.map((a) => ({ type: "image_url", image_url: { url: a.dataUrl } })),
    { type: "text", text },
  ];
  addMessage("user", text, atts);
  state.messages.push({ role: "user", content });
  state.attachments = [];
  renderAttachments();
  $("question").value = "";
  autosize();

  const bubble = addMessage("assistant", "");
  bubble.classList.add("streaming");
  bubble.dataset.state = "streaming";
  const body = bubble.querySelector(".text");
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let answer = "";
  let finish = null;
  let failed = null;
  const started = performance.now();
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      signal: controller.signal,
      body: JSON.stringify({
        model: state.model,
        messages: state.messages,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: Number($("max-tokens").value) || 256,
        temperature: Number($("temperature").value),
        max_tiles: Number($("max-tiles").value),
      }),
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      if (res.status === 401) openSettings();
      throw new Error((err.error && err.error.message) || `HTTP ${res.status}`);
    }
    let usage = null;
    for await (const event of sseEvents(res.body)) {
      if (event.error) throw new Error(event.error.message);
      if (event.usage) usage = event.usage;
      const choice = event.choices && event.choices[0];
      if (!choice) continue;
      if (choice.delta && choice.delta.content) {
        answer += choice.delta.content;
        body.textContent = answer;
        scrollDown();
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    const meta = document.createElement("span");
    meta.className = "meta";
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    meta.textContent = usage
      ? `${usage.completion_tokens} tokens · ${secs} s` + (finish === "length" ? " · stopped at max tokens" : "")
      : `${secs} s`;
    bubble.append(meta);
  } catch (err) {
    failed = err.name === "AbortError" ? "stopped" : err.message;
  } finally {
    state.controller = null;
    setBusy(false);
    bubble.classList.remove("streaming");
    bubble.dataset.state = "done";
  }
  if (failed && failed !== "stopped") {
    bubble.classList.add("error");
    body.textContent = answer ? answer + "\n\n" + failed : failed;
    state.messages.pop();  // keep the conversation valid: the failed question is not part of it
  } else {
    state.messages.push({ role: "assistant", content: answer });
  }
}

// Parse a text/event-stream body into JSON events (stops at "data: [DONE]").
async function* sseEvents(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = raw.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.messages = [];
  state.attachments = [];
  renderAttachments();
  $("chat").replaceChildren($("empty"));
  $("empty").hidden = false;
  $("question").focus();
}

function autosize() {
  const q = $("question");
  q.style.height = "auto";
  q.style.height = Math.min(q.scrollHeight, 200) + "px";
}

// ---------------------------------------------------------------- wiring
function init() {
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $("question").addEventListener("input", autosize);
  $("file").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  $("new-chat").addEventListener("click", newChat);
  $("settings-toggle").addEventListener("click", () => {
    const open = $("settings").hidden;
    $("settings").hidden = !open;
    $("settings-toggle").setAttribute("aria-expanded", String(open));
  });
  $("max-tiles").addEventListener("input", (e) => {
    $("max-tiles-value").textContent = e.target.value;
    localStorage.setItem("tessera.maxTiles", e.target.value);
    document.querySelectorAll("#attachments .tiled").forEach((box) => box.redraw());
  });
  $("temperature").addEventListener("input", (e) => { $("temperature-value").textContent = e.target.value; });
  const key = sessionStorage.getItem("tessera.apiKey");
  if (key) $("api-key").value = key;
  $("api-key").addEventListener("change", (e) => sessionStorage.setItem("tessera.apiKey", e.target.value));

  document.addEventListener("paste", (e) => {
    const files = Array.from(e.clipboardData ? e.clipboardData.files : []);
    if (files.some((f) => f.type.startsWith("image/"))) { e.preventDefault(); addFiles(files); }
  });
  let depth = 0;
  const drop = $("drop");
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  window.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth++; drop.hidden = false; } });
  window.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; drop.hidden = true; } });
  window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    drop.hidden = true;
    addFiles(e.dataTransfer.files);
  });
  connect();
  $("question").focus();
}

init();
