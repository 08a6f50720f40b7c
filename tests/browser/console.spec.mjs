// Drives the gateway example's console in headless Chromium.
//
// Environment: GATEWAY_URL (http://127.0.0.1:PORT), GATEWAY_API_KEY,
// CHROMIUM (the browser binary), SCREENSHOT_DIR (where to put the PNGs).
// Prints one JSON line with what it saw, and exits non-zero on any failure.

import { chromium } from "playwright-core";
import { join } from "node:path";

const { GATEWAY_URL, GATEWAY_API_KEY, CHROMIUM, SCREENSHOT_DIR } = process.env;
const STEP = 15_000; // generous: the machine may be busy

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // A fake microphone (a beeping tone) that needs no permission prompt.
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    // WebRTC on loopback: Chromium checks the demo provider's one ICE
    // candidate, 127.0.0.1, from its own host candidates. These let it
    // gather on loopback too and keep host candidates as addresses rather
    // than mDNS names, for machines without another interface.
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
});
const pageErrors = [];
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.setDefaultTimeout(STEP);

  await page.goto(GATEWAY_URL);
  await page.waitForSelector("#models option[value='demo/realtime']", { state: "attached" });
  check((await page.textContent("#key-hint")) === "(required)", "the console says a key is required");

  // Connect with the right key, sent as the subprotocol openai-insecure-api-key.KEY.
  await page.fill("#token", GATEWAY_API_KEY);
  await page.click("#connect");
  await page.waitForSelector("#status[data-state='connected']");
  result.session = await page.textContent("#session-id");
  result.subprotocol = await page.textContent("#log li:has(.type:text-is('websocket.open')) .detail");
  check(result.subprotocol === "subprotocol realtime", `the gateway echoed ${result.subprotocol}`);

  // A text message: reply text, audio deltas, usage and latency.
  await page.fill("#message", "Hello from Chromium");
  await page.click("#send");
  const first = page.locator("#responses tr[data-status='completed']");
  await first.first().waitFor();
  const row = await first.first().evaluate((tr) => ({ ...tr.dataset, text: tr.innerText }));
  result.text = {
    reply: await page.textContent(".bubble.assistant .text"),
    audioDeltas: Number(row.audioDeltas),
    inputTokens: Number(row.inputTokens),
    outputTokens: Number(row.outputTokens),
    firstDeltaMs: Number(row.firstMs),
    doneMs: Number(row.doneMs),
    row: row.text,
  };
  check(result.text.reply.startsWith("You said: “Hello from Chromium”."), `reply: ${result.text.reply}`);
  check(result.text.audioDeltas >= 10, `audio deltas: ${result.text.audioDeltas}`);
  check(result.text.inputTokens > 0 && result.text.outputTokens > 0, `usage: ${row.text}`);
  check(row.firstMs !== "" && row.doneMs !== "", "latency is shown");
  check(row.text.includes("1.0 s"), `one second of audio was scheduled: ${row.text}`);
  result.audioContext = await page.evaluate(() => audio && audio.state);

  // The microphone: about a second of the fake device, committed, answered.
  await page.click("#mic");
  await page.waitForFunction(() => Number(document.querySelector("#mic").dataset.capturedMs) >= 1000);
  await page.click("#mic");
  await page.locator("#responses tr[data-status='completed']").nth(1).waitFor();
  await page.waitForFunction(() => document.querySelectorAll(".bubble.assistant").length === 2);
  result.voice = {
    reply: await page.locator(".bubble.assistant .text").nth(1).textContent(),
    transcript: await page.locator(".bubble.user .text").nth(1).textContent(),
  };
  check(/^I heard \d+\.\d seconds of audio\./.test(result.voice.reply), `voice reply: ${result.voice.reply}`);
  check(/^\(\d+\.\d s of audio\)$/.test(result.voice.transcript), `transcript: ${result.voice.transcript}`);
  await page.screenshot({ path: join(SCREENSHOT_DIR, "console.png") });

  // A wrong key is refused, visibly.
  await page.click("#disconnect");
  await page.waitForSelector("#status[data-state='closed']");
  await page.fill("#token", "not-the-key");
  await page.click("#connect");
  await page.waitForSelector("#status[data-state='refused']");
  await page.waitForSelector("#banner:not([hidden]):has-text('did not accept the key')");
  result.refusal = await page.textContent("#banner");
  check(result.refusal.includes("401"), `refusal: ${result.refusal}`);
  await page.screenshot({ path: join(SCREENSHOT_DIR, "console-refused.png") });

  // A WebRTC call through the gateway: a minted client secret, the offer
  // posted with it, the demo's chime over RTP, usage on the data channel.
  await page.fill("#token", GATEWAY_API_KEY);
  await page.check("#webrtc");
  await page.click("#connect");
  await page.waitForSelector("#status[data-state='connected']");
  result.call = await page.textContent("#session-id");
  check(/^gw_call_/.test(result.call), `the call id is the gateway's: ${result.call}`);
  const calls = "#responses tr[data-transport='webrtc'][data-status='completed']";
  const greeted = page.locator(calls).first();
  await greeted.waitFor();
  const greeting = await greeted.evaluate((tr) => ({ ...tr.dataset, text: tr.innerText }));
  check(Number(greeting.outputTokens) > 0, `usage of the greeting: ${greeting.text}`);
  // The call's sideband, attached through the gateway with the call's own
  // client secret, reports the same usage (the response.done the provider
  // sends the server), shown in the row's "metered" column.
  const metered = page.locator("#responses tr[data-transport='webrtc']:not([data-sideband-output-tokens=''])").first();
  await metered.waitFor();
  const sideband = await metered.evaluate((tr) => ({ ...tr.dataset, text: tr.innerText }));
  result.sideband = {
    opened: await page.locator("#log li.side:has(.type:text-is('sideband.open'))").count(),
    responses: await page.locator("#log li.side:has(.type:text-is('response.done'))").count(),
    inputTokens: Number(sideband.sidebandInputTokens),
    outputTokens: Number(sideband.sidebandOutputTokens),
  };
  check(result.sideband.opened === 1, `the sideband opened: ${JSON.stringify(result.sideband)}`);
  check(result.sideband.responses >= 1, `response.done on the sideband: ${JSON.stringify(result.sideband)}`);
  check(sideband.responseId === greeting.responseId, `the sideband metered the greeting: ${sideband.text}`);
  check(result.sideband.outputTokens === Number(greeting.outputTokens) && result.sideband.inputTokens === Number(greeting.inputTokens),
    `the sideband's usage is the call's: ${sideband.text} vs ${greeting.text}`);
  // The chime is 50 packets of 20 ms: wait until they all arrived and played.
  result.rtp = await page.evaluate(async (patience) => {
    const rtp = { packets: 0 };
    for (const until = Date.now() + patience; rtp.packets < 50 && Date.now() < until;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const stats = await call.pc.getStats();
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          Object.assign(rtp, { packets: s.packetsReceived, bytes: s.bytesReceived, energy: s.totalAudioEnergy, codec: stats.get(s.codecId)?.mimeType });
        }
      });
    }
    return rtp;
  }, STEP);
  check(result.rtp.packets >= 50, `the chime's packets: ${JSON.stringify(result.rtp)}`);
  check(result.rtp.codec === "audio/PCMU", `codec: ${result.rtp.codec}`);
  check(result.rtp.energy > 0, `the chime was heard: ${JSON.stringify(result.rtp)}`);
  // A message over the data channel gets another chime.
  await page.fill("#message", "Again, over WebRTC");
  await page.click("#send");
  await page.locator(calls).nth(1).waitFor();
  result.webrtc = {
    responses: await page.locator(calls).count(),
    outputTokens: Number(greeting.outputTokens),
    audioCell: greeting.text,
  };
  await page.screenshot({ path: join(SCREENSHOT_DIR, "console-webrtc.png") });
  await page.click("#disconnect");
  await page.waitForSelector("#status[data-state='closed']");
  await page.waitForFunction(() => call === null);

  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, ...result }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error), pageErrors, ...result }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
