"use strict";
// The tower-realtime console: one WebSocket to the gateway, speaking the
// OpenAI GA realtime protocol, or a WebRTC call through the gateway (the
// gateway mints a client secret, the browser posts its SDP offer with it,
// audio arrives over RTP and events over the `oai-events` data channel; the
// call's sideband, attached through the gateway with the same secret, shows
// the usage the provider reports to the server).
// No build step, no dependencies.

const REALTIME_PATH = "/v1/realtime";
const CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets";
const CALLS_PATH = "/v1/realtime/calls";
const RATE = 24000; // PCM16 mono at 24 kHz, both ways
const $ = (id) => document.getElementById(id);

const ui = {
  status: $("status"), banner: $("banner"), connectForm: $("connect-form"),
  model: $("model"), models: $("models"), token: $("token"), keyHint: $("key-hint"),
  connect: $("connect"), disconnect: $("disconnect"), sessionId: $("session-id"),
  conversation: $("conversation"), composer: $("composer"), message: $("message"),
  send: $("send"), mic: $("mic"), level: $("level"), responses: $("responses"),
  log: $("log"), micLabel: document.querySelector("#mic span"), webrtc: $("webrtc"),
};

let socket = null;          // the session's WebSocket
let call = null;            // the WebRTC call: { pc, channel, location, secret, player, sideband }
let audio = null;           // one AudioContext for playback and capture
let playhead = 0;           // when the next audio delta starts playing
let playing = [];           // scheduled audio, stopped when the user talks
let mic = null;             // the running capture
let workletLoaded = false;
let requestedAt = null;     // when the client last asked for a response
let pendingVoice = null;    // the bubble of the voice message being committed
const rows = new Map();     // response id -> its row in the table
const sidebandUsage = new Map(); // response id -> usage the sideband reported before its row existed
const bubbles = new Map();  // item id -> its bubble
let deltaLine = null;       // the log line collapsing a run of deltas

// ---------------------------------------------------------------- set up

fetch("/console/config.json")
  .then((response) => (response.ok ? response.json() : null))
  .then((config) => {
    if (!config) return;
    for (const model of config.models) {
      const option = document.createElement("option");
      option.value = model;
      ui.models.append(option);
    }
    ui.keyHint.textContent = config.auth ? "(required)" : "(auth is off)";
    if (!config.auth) ui.token.placeholder = "not required";
  })
  .catch(() => {});
ui.token.value = sessionStorage.getItem("gateway-key") || "";

ui.connectForm.addEventListener("submit", (event) => {
  event.preventDefault();
  connect();
});
ui.disconnect.addEventListener("click", () => {
  if (socket) socket.close(1000, "bye");
  if (call) hangUp();
});
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.mic.addEventListener("click", () => (mic ? stopTalking() : startTalking()));

// ---------------------------------------------------------------- connection

function realtimeUrl(model) {
  const url = new URL(REALTIME_PATH, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("model", model);
  return url.toString();
}

function connect() {
  if (socket) socket.close(1000, "reconnecting");
  if (call) hangUp();
  hideBanner();
  if (ui.webrtc.checked) {
    callOverWebRtc();
    return;
  }
  const url = realtimeUrl(ui.model.value.trim());
  const token = ui.token.value.trim();
  sessionStorage.setItem("gateway-key", token);
  // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol.
  const protocols = ["realtime"];
  if (token) protocols.push("openai-insecure-api-key." + token);
  // Created in the click, so the browser lets it play.
  audio = audio || new AudioContext();
  audio.resume();
  setStatus("connecting", "connecting…");
  let ws;
  try {
    ws = new WebSocket(url, protocols);
  } catch (error) {
    setStatus("refused", "error");
    showBanner(`Cannot connect: ${error.message}`);
    return;
  }
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    setStatus("connecting", "waiting for the session…");
    logEvent("in", { type: "websocket.open", protocol: ws.protocol });
  };
  ws.onmessage = (event) => receive(event.data);
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    if (mic) stopTalking(false);
    setControls(false);
    logEvent("in", { type: "websocket.close", code: event.code, reason: event.reason });
    ui.sessionId.textContent = "";
    if (!opened) {
      setStatus("refused", "refused");
      diagnose(url, token);
    } else {
      setStatus("closed", `closed (${event.code})`);
      const normal = event.code === 1000 || event.code === 1005;
      showBanner(`Session closed: ${event.code}${event.reason ? " " + event.reason : ""}`, normal);
    }
  };
  ui.connect.disabled = true;
  ui.disconnect.disabled = false;
}

// A refused WebSocket tells the page nothing; ask the same URL over plain
// HTTP, which passes the same authentication.
async function diagnose(url, token) {
  const httpUrl = url.replace(/^ws/, "http");
  let message;
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch(httpUrl, { headers });
    const body = await response.json().catch(() => null);
    const error = (body && body.error) || {};
    if (response.status === 401) {
      message = `Refused: the gateway did not accept the key (401 ${error.code || ""}). ${error.message || ""}`;
    } else if (response.status >= 500 || response.status === 429) {
      message = `Refused: ${response.status} ${error.message || ""}`;
    } else {
      message = "Refused: the key is fine, but the gateway would not open this session. " +
        "Check the model (is its provider configured?) and the gateway log; " +
        "too many new sessions or a session limit also refuse.";
    }
  } catch (error) {
    message = `Cannot reach the gateway at ${httpUrl}.`;
  }
  showBanner(message);
}

function send(event) {
  if (call) {
    if (call.channel.readyState !== "open") return false;
    call.channel.send(JSON.stringify(event));
  } else {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(event));
  }
  logEvent("out", event);
  return true;
}

// ---------------------------------------------------------------- WebRTC

// The flow of OpenAI's browser guide, through the gateway: mint a client
// secret (the gateway key, if any, authorizes it), then post the offer with
// the secret. The provider's key and its call id never reach the page.
async function callOverWebRtc() {
  const model = ui.model.value.trim();
  const token = ui.token.value.trim();
  sessionStorage.setItem("gateway-key", token);
  setStatus("connecting", "minting a client secret…");
  ui.connect.disabled = true;
  ui.disconnect.disabled = false;
  const here = { pc: null, channel: null, location: null, secret: null, player: null, sideband: null };
  call = here;
  try {
    const minted = await post(CLIENT_SECRETS_PATH, token, "application/json",
      JSON.stringify({ session: { type: "realtime", model } }));
    const secret = await minted.json().catch(() => null);
    if (!minted.ok) throw refusal("minting a client secret", minted.status, secret);
    here.secret = secret.value;
    logEvent("in", { type: "client_secret.created", expires_at: secret.expires_at, model: secret.session?.model });
    if (call !== here) return;

    const pc = new RTCPeerConnection();
    here.pc = pc;
    // Audio to receive (the console talks by text here) and the events channel.
    pc.addTransceiver("audio", { direction: "recvonly" });
    const player = document.createElement("audio");
    player.autoplay = true;
    player.hidden = true;
    document.body.append(player);
    here.player = player;
    pc.ontrack = (event) => {
      player.srcObject = event.streams[0] || new MediaStream([event.track]);
      player.play().catch(() => {});
    };
    const channel = pc.createDataChannel("oai-events");
    here.channel = channel;
    channel.onmessage = (event) => receive(event.data);
    channel.onopen = () => logEvent("in", { type: "datachannel.open", label: channel.label });
    pc.onconnectionstatechange = () => {
      if (call !== here) return;
      logEvent("in", { type: "webrtc.state", state: pc.connectionState });
      if (pc.connectionState === "failed" || pc.connectionState === "closed") endCall(here, `call ${pc.connectionState}`);
    };

    await pc.setLocalDescription(await pc.createOffer());
    setStatus("connecting", "calling…");
    const answered = await post(CALLS_PATH, here.secret, "application/sdp", pc.localDescription.sdp);
    const answer = await answered.text();
    if (answered.status !== 201) throw refusal("posting the offer", answered.status, JSON.parse(answer || "null"));
    here.location = answered.headers.get("Location");
    logEvent("in", { type: "call.created", location: here.location });
    ui.sessionId.textContent = (here.location || "").split("/").pop();
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    attachSideband(here);
  } catch (error) {
    if (call !== here) return;
    endCall(here, null);
    setStatus("refused", "refused");
    showBanner(error.message);
  }
}

// The call's sideband, `/v1/realtime?call_id=gw_call_…`, as the server side
// of an app would attach it: the gateway lets the call's owner in (here with
// the call's own client secret, as a subprotocol) and relays the provider's
// sideband, whose `response.done` events carry the usage the call is billed.
function attachSideband(here) {
  const id = (here.location || "").split("/").pop();
  if (!id) return;
  const url = new URL(REALTIME_PATH, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("call_id", id);
  const ws = new WebSocket(url.toString(), ["realtime", "openai-insecure-api-key." + here.secret]);
  here.sideband = ws;
  ws.onopen = () => logEvent("side", { type: "sideband.open", call_id: id });
  ws.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    // Deltas and audio come over the data channel and RTP already.
    if (event.type === "response.done") {
      logEvent("side", event);
      meterResponse(event.response);
    } else if (!String(event.type).endsWith(".delta")) {
      logEvent("side", event);
    }
  };
  ws.onclose = (event) => {
    if (here.sideband !== ws) return;
    here.sideband = null;
    logEvent("side", { type: "sideband.close", code: event.code, reason: event.reason });
  };
}

function post(path, token, contentType, body) {
  const headers = { "Content-Type": contentType };
  if (token) headers.Authorization = "Bearer " + token;
  return fetch(path, { method: "POST", headers, body });
}

function refusal(what, status, body) {
  const error = (body && body.error) || {};
  const why = status === 401 ? "the gateway did not accept the key" : "the gateway refused";
  return new Error(`Refused ${what}: ${why} (${status} ${error.code || ""}). ${error.message || ""}`);
}

// Hangs the call up on the gateway (which hangs it up on the provider).
function hangUp() {
  const ending = call;
  if (ending.location && ending.secret) {
    post(ending.location + "/hangup", ending.secret, "application/json", "").catch(() => {});
  }
  endCall(ending, "hung up");
}

function endCall(ending, why) {
  if (call !== ending) return;
  call = null;
  if (ending.pc) ending.pc.close();
  if (ending.sideband) ending.sideband.close(1000, "call ended");
  if (ending.player) ending.player.remove();
  setControls(false);
  if (why) {
    setStatus("closed", why);
    logEvent("in", { type: "call.ended", reason: why });
  }
}

function receive(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    logEvent("in", { type: "(not JSON)", text: String(data).slice(0, 200) });
    return;
  }
  logEvent("in", event);
  switch (event.type) {
    case "session.created":
      setStatus("connected", "connected");
      // A call is known by the gateway's call id (the provider's is never shown).
      const id = call ? (call.location || "").split("/").pop() : event.session.id;
      ui.sessionId.textContent = [id, event.session.model].filter(Boolean).join(" · ");
      setControls(true);
      // WebRTC: the call's audio is RTP, and its session locked by the gateway.
      if (call) {
        ui.mic.disabled = true;
        break;
      }
      // Push to talk: the console commits audio itself and asks for the response.
      send({
        type: "session.update",
        session: {
          type: "realtime",
          audio: { input: { turn_detection: null, transcription: { model: "gpt-4o-mini-transcribe" } } },
        },
      });
      break;
    case "input_audio_buffer.committed":
      if (pendingVoice) bubbles.set(event.item_id, pendingVoice);
      pendingVoice = null;
      break;
    case "conversation.item.input_audio_transcription.completed": {
      const bubble = bubbles.get(event.item_id);
      if (bubble) bubble.querySelector(".text").textContent = event.transcript;
      break;
    }
    case "input_audio_buffer.speech_started":
      stopPlayback();
      requestedAt = performance.now();
      break;
    case "response.created":
      startResponse(event.response);
      break;
    case "response.output_text.delta":
    case "response.output_audio_transcript.delta":
      firstDelta(event.response_id);
      assistantBubble(event.item_id).textContent += event.delta;
      break;
    case "response.output_audio.delta":
      firstDelta(event.response_id);
      countAudio(event.response_id, play(event.delta));
      break;
    case "output_audio_buffer.started":
      firstDelta(event.response_id);
      break;
    case "response.output_text.done":
    case "response.output_audio_transcript.done":
      assistantBubble(event.item_id).textContent = event.text ?? event.transcript;
      break;
    case "response.done":
      finishResponse(event.response);
      break;
    case "error":
      showBanner(`${event.error.code || event.error.type}: ${event.error.message}`);
      break;
  }
}

// ---------------------------------------------------------------- talking

function sendMessage() {
  const text = ui.message.value.trim();
  if (!text) return;
  addBubble("user", text);
  send({
    type: "conversation.item.create",
    item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
  });
  requestedAt = performance.now();
  send({ type: "response.create" });
  ui.message.value = "";
}

async function startTalking() {
  stopPlayback();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    if (!workletLoaded) {
      await audio.audioWorklet.addModule("/mic-worklet.js");
      workletLoaded = true;
    }
    const source = audio.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(audio, "pcm16-capture", { processorOptions: { targetRate: RATE } });
    const silent = audio.createGain();
    silent.gain.value = 0;
    source.connect(node).connect(silent).connect(audio.destination);
    mic = { stream, source, node, ms: 0, flushed: null };
    ui.mic.dataset.capturedMs = 0;
    const capture = mic;
    node.port.onmessage = ({ data }) => {
      if (data.pcm.byteLength) {
        send({ type: "input_audio_buffer.append", audio: toBase64(new Uint8Array(data.pcm)) });
        capture.ms += (data.pcm.byteLength / 2 / RATE) * 1000;
        ui.mic.dataset.capturedMs = Math.round(capture.ms);
      }
      ui.level.style.width = `${Math.min(100, data.level * 400)}%`;
      if (data.final && capture.flushed) capture.flushed();
    };
    ui.mic.setAttribute("aria-pressed", "true");
    ui.micLabel.textContent = "Stop & send";
  } catch (error) {
    showBanner(`Microphone unavailable: ${error.message}`);
  }
}

async function stopTalking(respond = true) {
  const capture = mic;
  mic = null;
  ui.mic.setAttribute("aria-pressed", "false");
  ui.micLabel.textContent = "Talk";
  await new Promise((resolve) => {
    capture.flushed = resolve;
    capture.node.port.postMessage("flush");
    setTimeout(resolve, 500);
  });
  capture.source.disconnect();
  capture.node.disconnect();
  capture.stream.getTracks().forEach((track) => track.stop());
  ui.level.style.width = "0";
  if (!respond) return;
  if (capture.ms < 100) {
    showBanner("Hold the microphone a little longer: at least 100 ms of audio is needed.", true);
    send({ type: "input_audio_buffer.clear" });
    return;
  }
  pendingVoice = addBubble("user", `${(capture.ms / 1000).toFixed(1)} s of audio`, "you · voice");
  requestedAt = performance.now();
  send({ type: "input_audio_buffer.commit" });
  send({ type: "response.create" });
}

// ---------------------------------------------------------------- audio out

function play(base64) {
  const bytes = fromBase64(base64);
  const view = new DataView(bytes.buffer);
  const samples = bytes.length >> 1;
  if (!samples) return 0;
  const buffer = audio.createBuffer(1, samples, RATE);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples; i++) channel[i] = view.getInt16(i * 2, true) / 32768;
  const source = audio.createBufferSource();
  source.buffer = buffer;
  source.connect(audio.destination);
  const at = Math.max(audio.currentTime + 0.05, playhead);
  source.start(at);
  playhead = at + buffer.duration;
  playing.push(source);
  source.onended = () => (playing = playing.filter((s) => s !== source));
  return buffer.duration;
}

function stopPlayback() {
  for (const source of playing) source.stop();
  playing = [];
  playhead = 0;
}

// ---------------------------------------------------------------- responses

function startResponse(response) {
  const tr = document.createElement("tr");
  tr.dataset.responseId = response.id;
  tr.dataset.status = "in_progress";
  tr.dataset.transport = call ? "webrtc" : "websocket";
  const row = { tr, rtp: Boolean(call), number: rows.size + 1, startedAt: requestedAt ?? performance.now(), first: null, done: null, audioDeltas: 0, audioSeconds: 0, usage: null, metered: sidebandUsage.get(response.id) || null, status: "in progress" };
  sidebandUsage.delete(response.id);
  requestedAt = null;
  rows.set(response.id, row);
  ui.responses.prepend(tr);
  renderRow(row);
}

function firstDelta(id) {
  const row = rows.get(id);
  if (row && row.first === null) {
    row.first = performance.now() - row.startedAt;
    renderRow(row);
  }
}

function countAudio(id, seconds) {
  const row = rows.get(id);
  if (!row) return;
  row.audioDeltas += 1;
  row.audioSeconds += seconds;
  renderRow(row);
}

function finishResponse(response) {
  const row = rows.get(response.id);
  if (!row) return;
  row.done = performance.now() - row.startedAt;
  row.usage = response.usage || null;
  row.status = response.status;
  row.tr.dataset.status = response.status;
  for (const item of response.output || []) {
    const bubble = bubbles.get(item.id);
    if (bubble) bubble.classList.remove("streaming");
  }
  renderRow(row);
}

// Usage of a call's response as the sideband reported it.
function meterResponse(response) {
  const usage = response.usage || {};
  const row = rows.get(response.id);
  if (!row) {
    sidebandUsage.set(response.id, usage);
    return;
  }
  row.metered = usage;
  renderRow(row);
}

function renderRow(row) {
  const ms = (value) => (value === null ? "…" : `${Math.round(value)} ms`);
  const tokens = (total, details) =>
    details ? `${total}<div class="sub">${details.text_tokens ?? 0} text · ${details.audio_tokens ?? 0} audio</div>` : "…";
  const usage = row.usage || {};
  const status = row.status === "completed" ? "" : `<div class="sub">${row.status}</div>`;
  row.tr.innerHTML =
    `<td class="${row.status === "cancelled" ? "cancelled" : ""}">${row.number}${status}</td>` +
    `<td>${ms(row.first)}<div class="sub">done ${ms(row.done)}</div></td>` +
    `<td>${tokens(usage.input_tokens, usage.input_token_details)}</td>` +
    `<td>${tokens(usage.output_tokens, usage.output_token_details)}</td>` +
    (row.rtp
      ? `<td>RTP<div class="sub">WebRTC media</div></td>`
      : `<td>${row.audioSeconds.toFixed(1)} s<div class="sub">${row.audioDeltas} deltas</div></td>`) +
    (row.metered
      ? `<td>${row.metered.input_tokens ?? 0} in · ${row.metered.output_tokens ?? 0} out<div class="sub">sideband</div></td>`
      : `<td>${row.rtp ? "…" : "—"}</td>`);
  Object.assign(row.tr.dataset, {
    audioDeltas: row.audioDeltas,
    inputTokens: usage.input_tokens ?? "",
    outputTokens: usage.output_tokens ?? "",
    sidebandInputTokens: row.metered?.input_tokens ?? "",
    sidebandOutputTokens: row.metered?.output_tokens ?? "",
    firstMs: row.first === null ? "" : Math.round(row.first),
    doneMs: row.done === null ? "" : Math.round(row.done),
  });
}

// ---------------------------------------------------------------- page bits

function addBubble(role, text, label = role === "user" ? "you" : "assistant") {
  ui.conversation.querySelector(".empty")?.remove();
  const bubble = document.createElement("div");
  bubble.className = `bubble ${role}`;
  bubble.innerHTML = `<small></small><span class="text"></span>`;
  bubble.querySelector("small").textContent = label;
  bubble.querySelector(".text").textContent = text;
  ui.conversation.append(bubble);
  ui.conversation.scrollTop = ui.conversation.scrollHeight;
  return bubble;
}

function assistantBubble(itemId) {
  let bubble = bubbles.get(itemId);
  if (!bubble) {
    bubble = addBubble("assistant", "");
    bubble.classList.add("streaming");
    bubbles.set(itemId, bubble);
  }
  ui.conversation.scrollTop = ui.conversation.scrollHeight;
  return bubble.querySelector(".text");
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function setControls(connected) {
  for (const control of [ui.message, ui.send, ui.mic]) control.disabled = !connected;
  ui.connect.disabled = connected;
  ui.disconnect.disabled = !connected;
  if (connected) ui.message.focus();
}

function showBanner(message, informational = false) {
  ui.banner.textContent = message;
  ui.banner.classList.toggle("info", informational);
  ui.banner.hidden = false;
}

function hideBanner() {
  ui.banner.hidden = true;
}

// One line per event; a run of deltas shares one line with a count and the text so far.
function logEvent(direction, event) {
  const type = event.type || "?";
  const isDelta = type.endsWith(".delta") || type === "input_audio_buffer.append";
  if (isDelta && deltaLine && deltaLine.direction === direction) {
    deltaLine.count += 1;
    deltaLine.add(event);
    return;
  }
  const li = document.createElement("li");
  li.className = direction + (type === "error" ? " error" : "");
  const time = new Date().toLocaleTimeString([], { hour12: false });
  li.innerHTML = `<span class="t">${time}</span><span class="dir">${direction === "out" ? "↑" : direction === "side" ? "⇣" : "↓"}</span>` +
    `<span class="type"></span><span class="count"></span><span class="detail"></span>`;
  li.querySelector(".type").textContent = isDelta ? type.replace(/\.[a-z_]+\.delta$/, ".*.delta") : type;
  li.querySelector(".detail").textContent = summary(event);
  li.addEventListener("click", () => {
    const open = li.querySelector("pre");
    if (open) return open.remove();
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(JSON.parse(compactJson(event)), null, 2);
    li.append(pre);
  });
  const atBottom = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 4;
  ui.log.append(li);
  while (ui.log.children.length > 400) ui.log.firstElementChild.remove();
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
  deltaLine = null;
  if (isDelta) {
    let text = "";
    let audioChunks = 0;
    deltaLine = {
      direction, count: 1,
      add(delta) {
        if (delta.type === "response.output_audio.delta" || delta.type === "input_audio_buffer.append") audioChunks += 1;
        else text += delta.delta || "";
        li.querySelector(".count").textContent = this.count > 1 ? `×${this.count}` : "";
        li.querySelector(".detail").textContent =
          [text && `“${text}”`, audioChunks && `${audioChunks} audio`].filter(Boolean).join(" · ");
      },
    };
    deltaLine.add(event);
  }
}

function summary(event) {
  switch (event.type) {
    case "session.created":
    case "session.updated":
      return event.session.id || "";
    case "response.created":
      return event.response.id;
    case "response.done": {
      const usage = event.response.usage;
      return `${event.response.status}` + (usage ? ` · ${usage.input_tokens} in · ${usage.output_tokens} out` : "");
    }
    case "error":
      return event.error.message;
    case "websocket.close":
      return `${event.code} ${event.reason || ""}`;
    case "websocket.open":
      return `subprotocol ${event.protocol || "(none)"}`;
    default:
      return compactJson(event).slice(0, 160);
  }
}

function compactJson(event) {
  return JSON.stringify(event, (key, value) =>
    (key === "audio" || key === "delta") && typeof value === "string" && value.length > 64
      ? `<${value.length} base64 chars>`
      : value);
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
