// Microphone capture for the console: mono PCM16 at 24 kHz (the realtime
// API's `audio/pcm`), posted to the page in chunks of 100 ms with their level.
// The page sends "flush" to get the last, partial chunk when the user stops.

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const targetRate = (options.processorOptions && options.processorOptions.targetRate) || 24000;
    // Input samples per output sample (2 for a 48 kHz microphone).
    this.step = sampleRate / targetRate;
    // Where the next output sample lies, in input samples; 0 is the last
    // sample of the previous block.
    this.position = 1;
    this.last = 0;
    this.chunk = new Int16Array(targetRate / 10);
    this.filled = 0;
    this.energy = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.post(true);
    };
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    const n = input.length;
    while (this.position <= n) {
      const i = Math.floor(this.position);
      const fraction = this.position - i;
      const a = i === 0 ? this.last : input[i - 1];
      const b = i === n ? a : input[i];
      this.push(a + (b - a) * fraction);
      this.position += this.step;
    }
    this.position -= n;
    this.last = input[n - 1];
    return true;
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    this.energy += clipped * clipped;
    if (this.filled === this.chunk.length) this.post(false);
  }

  post(final) {
    const pcm = this.chunk.slice(0, this.filled);
    const level = this.filled ? Math.sqrt(this.energy / this.filled) : 0;
    this.port.postMessage({ pcm: pcm.buffer, level, final }, [pcm.buffer]);
    this.filled = 0;
    this.energy = 0;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
