// The envelope snare, decoded in the page: the same samples as `latent-snare render` (within
// -90 dB; tests/e2e/test_site.py), from the model's safetensors and its browser spec
// (files/browser.py, which computes every constant and fixed curve from the Python render, so
// this file holds only the arithmetic). Mirrors model/envelope.py's EnvelopeSnare.params and
// .render, and files/saving.py's render_snare; read those for the why of each step.
//
// Pure functions and one class, no DOM: it runs in a Worker (decoder-worker.js).

const SPEC_VERSION = 1;

// --- the weights ------------------------------------------------------------------------------

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** A safetensors file's tensors: name -> { shape, data: Float64Array } (F16 and F32 only). */
export function readSafetensors(buffer) {
  const view = new DataView(buffer);
  const headerBytes = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, headerBytes)));
  const base = 8 + headerBytes;
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [start, end] = info.data_offsets;
    let data;
    if (info.dtype === "F16") {
      const halves = new Uint16Array(buffer.slice(base + start, base + end));
      data = Float64Array.from(halves, halfToFloat);
    } else if (info.dtype === "F32") {
      data = Float64Array.from(new Float32Array(buffer.slice(base + start, base + end)));
    } else {
      throw new Error(`tensor ${name}: dtype ${info.dtype} is not supported (F16 or F32)`);
    }
    tensors[name] = { shape: info.shape, data };
  }
  return tensors;
}

// --- small numeric helpers (as numpy computes them) ---------------------------------------------

const sigmoid = (x) => 0.5 * (1 + Math.tanh(0.5 * x));
const softplus = (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
const ACTIVATIONS = { tanh: Math.tanh, sig: sigmoid, relu: (x) => Math.max(x, 0) };
const fround = Math.fround;

/** lowbias32 hash of each index, salted by seed and stream: uniform in (0, 1) (envelope.hash_uniform). */
export function hashUniform(seed, stream, n) {
  const salt = (Math.imul(seed, 0x9e3779b9) + Math.imul(stream, 0x85ebca6b)) >>> 0;
  const add = Math.imul(stream, 0xc2b2ae35) >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let x = (((i ^ salt) >>> 0) + add) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    x ^= x >>> 16;
    out[i] = ((x >>> 0) + 0.5) / 4294967296;
  }
  return out;
}

// --- an in-place radix-2 FFT (power-of-two lengths, as the noise bank's) -------------------------

class FFT {
  constructor(n) {
    this.n = n;
    this.cos = new Float64Array(n / 2);
    this.sin = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) {
      this.cos[k] = Math.cos((2 * Math.PI * k) / n);
      this.sin[k] = Math.sin((2 * Math.PI * k) / n);
    }
    this.reverse = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.reverse[i] = r;
    }
  }

  /** In place; `sign` -1 forward, +1 inverse (unscaled). */
  transform(re, im, sign) {
    const n = this.n;
    for (let i = 0; i < n; i++) {
      const j = this.reverse[i];
      if (j > i) {
        let t = re[i]; re[i] = re[j]; re[j] = t;
        t = im[i]; im[i] = im[j]; im[j] = t;
      }
    }
    for (let size = 2; size <= n; size *= 2) {
      const half = size / 2;
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let k = 0; k < half; k++) {
          const wr = this.cos[k * step];
          const wi = sign * this.sin[k * step];
          const a = start + k;
          const b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr; im[b] = im[a] - xi;
          re[a] += xr; im[a] += xi;
        }
      }
    }
  }
}

/** After one forward transform of x + i y (two real signals at once), each one's own spectrum at
 * bins 0..count-1: X[k] = (Z[k] + conj Z[n-k]) / 2 and Y[k] = (Z[k] - conj Z[n-k]) / 2i. */
function splitPair(re, im, count, into = pairSpectra(count)) {
  const n = re.length;
  for (let k = 0; k < count; k++) {
    const m = (n - k) % n;
    into.xr[k] = 0.5 * (re[k] + re[m]);
    into.xi[k] = 0.5 * (im[k] - im[m]);
    into.yr[k] = 0.5 * (im[k] + im[m]);
    into.yi[k] = -0.5 * (re[k] - re[m]);
  }
  return into;
}

const pairSpectra = (count) => ({
  xr: new Float64Array(count), xi: new Float64Array(count), yr: new Float64Array(count), yi: new Float64Array(count),
});

const peakOf = (x) => x.reduce((peak, v) => Math.max(peak, Math.abs(v)), 0);

/** core/dsp.py fade_out, in place: the last `fade` samples fall to zero along a raised cosine. */
function fadeOut(x, fade) {
  const n = x.length;
  fade = Math.min(n, fade);
  for (let i = 0; i < fade; i++) {
    x[n - fade + i] *= fround(0.5 + 0.5 * fround(Math.cos(fround(fade > 1 ? (Math.PI * i) / (fade - 1) : 0))));
  }
}

// --- the model ------------------------------------------------------------------------------------

export class EnvelopeSnare {
  constructor(spec, tensors) {
    if (spec.format !== "latent-snare-browser" || spec.version !== SPEC_VERSION) {
      throw new Error(`model spec ${spec.format} version ${spec.version} is not this page's (version ${SPEC_VERSION})`);
    }
    this.spec = spec;
    this.layers = [];
    for (let i = 0; i < spec.widths.length - 1; i++) {
      const weight = tensors[`mlp.${i}.weight`];
      const bias = tensors[`mlp.${i}.bias`];
      if (!weight || !bias) throw new Error(`the weights have no mlp.${i}`);
      this.layers.push({ weight: weight.data, bias: bias.data, nIn: spec.widths[i], nOut: spec.widths[i + 1] });
    }
    this.act = ACTIVATIONS[spec.activation];
    this.nOutputs = spec.widths[spec.widths.length - 1] / 2;  // hard head, then soft head
    this.grid = this.renderGrid();
    this.interp = this.knotInterpolation();
    this.banks = new Map();  // variant -> Float32Array (samples x bands)
    this.fft = null;
  }

  renderGrid() {
    const s = this.spec;
    const grid = new Float64Array(s.n_grid);
    for (let i = 0; i < s.n_grid; i++) grid[i] = i < s.n_fine ? i * s.fine_hop : s.n_fine * s.fine_hop + (i - s.n_fine) * s.hop;
    return grid;
  }

  knotInterpolation() {
    // Per grid frame: the knot segment it falls in and how far along (past the last knot the
    // last segment's line continues).
    const knots = this.spec.knots_s;
    const last = knots.length - 2;
    const segment = new Int32Array(this.grid.length);
    const frac = new Float64Array(this.grid.length);
    this.grid.forEach((sample, i) => {
      const t = sample / this.spec.sample_rate;
      let k = 0;
      while (k < last && knots[k + 1] <= t) k++;
      segment[i] = k;
      frac[i] = (t - knots[k]) / (knots[k + 1] - knots[k]);
    });
    return { segment, frac };
  }

  /** (2,) knob positions, 0..127 -> the latent point (knobs.KnobMap.cc_to_latent). */
  ccToLatent(ccX, ccY) {
    const { axes, lo, hi, warp } = this.spec.knobs;
    const t = [ccX, ccY].map((cc) => Math.min(1, Math.max(0, cc / 127)));
    if (warp) {
      for (let i = 0; i < 2; i++) t[i] = interpolate(t[i], warp[i]);
    }
    const uv = [0, 1].map((i) => lo[i] + t[i] * (hi[i] - lo[i]));
    return [fround(axes[0][0] * uv[0] + axes[1][0] * uv[1]), fround(axes[0][1] * uv[0] + axes[1][1] * uv[1])];
  }

  hidden(latent) {
    let x = Float64Array.from(latent);
    this.layers.forEach(({ weight, bias, nIn, nOut }, i) => {
      const y = new Float64Array(nOut);
      for (let o = 0; o < nOut; o++) {
        let sum = bias[o];
        for (let j = 0; j < nIn; j++) sum += weight[o * nIn + j] * x[j];
        y[o] = i < this.layers.length - 1 ? this.act(sum) : sum;
      }
      x = y;
    });
    return x;
  }

  params(latent, velocity, variant) {
    const s = this.spec;
    const raw = this.hidden(latent);
    const n = this.nOutputs;
    const softness = 1 - velocity / 127;
    const mixed = new Float64Array(n);
    for (let i = 0; i < n; i++) mixed[i] = raw[i] + softness * raw[n + i];
    const off = s.variant_offsets[variant];
    const nKnots = s.knots_s.length;
    const nAttack = s.n_attack_knots;
    const logEnv = [];
    for (let b = 0; b < s.n_bands; b++) {
      const row = mixed.subarray(b * nKnots, (b + 1) * nKnots);
      const levels = new Float64Array(nKnots);
      for (let a = 0; a < nAttack; a++) levels[a] = Math.min(row[a] + off.level[b], s.max_log_level);
      let level = levels[nAttack - 1];
      for (let d = 0; d < nKnots - nAttack; d++) {
        const bound = s.fall_lo[d] + s.fall_span[d];
        const rate = (s.fall_lo[d] + s.fall_span[d] * sigmoid(row[nAttack + d])) * (1 + off.rate[b]);
        level -= Math.min(rate, bound) * s.segment_s[d];
        levels[nAttack + d] = level;
      }
      for (let k = 0; k < nKnots; k++) levels[k] = s.ceiling[k] - softplus(s.ceiling[k] - levels[k]);
      const { segment, frac } = this.interp;
      const env = new Float64Array(s.n_grid);
      for (let i = 0; i < s.n_grid; i++) env[i] = (1 - frac[i]) * levels[segment[i]] + frac[i] * levels[segment[i] + 1];
      logEnv.push(env);
    }
    const head = s.n_bands * nKnots;
    const k = s.n_partials;
    const [fLo, fHi] = s.partial_hz;
    const [dLo, dHi] = s.partial_decay_s;
    const freq = [], amp = [], decay = [];
    for (let p = 0; p < k; p++) {
      freq.push(fLo * (fHi / fLo) ** sigmoid(mixed[head + p]) * 2 ** (off.cents[p] / 1200));
      amp.push(Math.exp(Math.min(mixed[head + k + p], 0)) * 10 ** (off.amp_db[p] / 20));
      decay.push(dLo * (dHi / dLo) ** sigmoid(mixed[head + 2 * k + p]));
    }
    return { logEnv, freq, amp, decay };
  }

  /** One variant's unit-RMS band noises (envelope.noise_bands), (n_bands) Float64Arrays. */
  noiseBands(variant) {
    const s = this.spec;
    const length = s.noise_length;
    this.fft = this.fft || new FFT(length);
    const gains = this.bandGains(length);
    const bands = [];
    // Two real bands per complex transform: z = x + i y, split, filter, join, transform back.
    for (let b = 0; b < s.n_bands; b += 2) {
      const re = hashUniform(s.noise_seed, (variant + 1) * 1000 + b, length);
      const im = b + 1 < s.n_bands ? hashUniform(s.noise_seed, (variant + 1) * 1000 + b + 1, length) : new Float64Array(length);
      const scale = Math.sqrt(12);
      for (let i = 0; i < length; i++) {
        re[i] = (re[i] - 0.5) * scale;
        if (b + 1 < s.n_bands) im[i] = (im[i] - 0.5) * scale;
      }
      this.fft.transform(re, im, -1);
      const gx = gains[b];
      const gy = b + 1 < s.n_bands ? gains[b + 1] : gains[b];
      const { xr, xi, yr, yi } = splitPair(re, im, length);
      const outRe = new Float64Array(length), outIm = new Float64Array(length);
      for (let k = 0; k < length; k++) {
        const bin = Math.min(k, length - k);  // the gains are even in frequency
        outRe[k] = gx[bin] * xr[k] - gy[bin] * yi[k];  // X' + i Y', transformed back as one
        outIm[k] = gx[bin] * xi[k] + gy[bin] * yr[k];
      }
      this.fft.transform(outRe, outIm, 1);
      for (const [signal, keep] of [[outRe, true], [outIm, b + 1 < s.n_bands]]) {
        if (!keep) continue;
        let power = 0;
        for (let i = 0; i < length; i++) power += signal[i] * signal[i];
        const norm = 1 / Math.sqrt(power / length);  // unit RMS (which also undoes the unscaled inverse)
        for (let i = 0; i < length; i++) signal[i] *= norm;
        bands.push(signal);
      }
    }
    return bands;
  }

  /** (n_bands) gains at each rfft bin of `length` (envelope.band_gains). */
  bandGains(length) {
    const s = this.spec;
    const centres = s.log_band_centres;
    const last = s.n_bands - 1;
    return centres.map((centre, b) => {
      const gains = new Float64Array(length / 2 + 1);
      for (let k = 0; k <= length / 2; k++) {
        const logf = Math.log(Math.max((k * s.sample_rate) / length, 1e-3));
        let power = 0;
        if (b === 0) {
          if (logf <= centre) power = 1;
        } else {
          const rise = (logf - centres[b - 1]) / (centre - centres[b - 1]);
          if (rise > 0 && rise <= 1) power = Math.sin(0.5 * Math.PI * rise) ** 2;
        }
        if (b < last) {
          const fall = (logf - centre) / (centres[b + 1] - centre);
          if (fall > 0 && fall <= 1) power = Math.cos(0.5 * Math.PI * fall) ** 2;
        } else if (logf > centre) {
          power = 1;
        }
        gains[k] = Math.sqrt(power);
      }
      return gains;
    });
  }

  /** Variant `variant`'s noise, float32, laid out sample by sample with every band (samples x bands). */
  bank(variant) {
    if (this.banks.has(variant)) return this.banks.get(variant);
    const s = this.spec;
    const base = this.banks.has("bands0") ? this.banks.get("bands0") : this.noiseBands(0);
    this.banks.set("bands0", base);
    const own = variant ? this.noiseBands(variant) : null;
    const mix = s.variant_noise_mix;
    const keep = Math.sqrt(1 - mix * mix);
    const length = this.grid[this.grid.length - 1];
    const bank = new Float32Array(length * s.n_bands);
    for (let b = 0; b < s.n_bands; b++) {
      const x = base[b], y = own && own[b];
      for (let i = 0; i < length; i++) bank[i * s.n_bands + b] = own ? keep * x[i] + mix * y[i] : x[i];
    }
    this.banks.set(variant, bank);
    return bank;
  }

  /** Params of one hit -> its samples (EnvelopeSnare.render), Float32Array. */
  render(p, variant) {
    const s = this.spec;
    const nb = s.n_bands;
    const bank = this.bank(variant);
    const out = new Float32Array(s.n_samples);
    const env = new Float32Array(s.n_grid * nb);  // frame by frame, every band
    const loudest = new Float64Array(s.n_grid).fill(-Infinity);
    p.logEnv.forEach((row, b) => {
      for (let f = 0; f < s.n_grid; f++) {
        env[f * nb + b] = Math.exp(row[f]);
        if (row[f] > loudest[f]) loudest[f] = row[f];
      }
    });
    const e0 = new Float64Array(nb), e1 = new Float64Array(nb), bands = new Int32Array(nb);
    const parts = [[0, s.n_fine, s.fine_hop, 0], [s.n_fine, s.n_grid - 1 - s.n_fine, s.hop, s.n_fine * s.fine_hop]];
    for (const [first, segments, hop, offset] of parts) {
      // Stop where every band is below the floor: the rest of the render is silence.
      let count = 0;
      for (let f = first; f < first + segments; f++) if (loudest[f] > s.band_floor_log) count = f - first + 1;
      const start = new Float64Array(hop), end = new Float64Array(hop);
      for (let seg = 0; seg < count; seg++) {
        const frame = first + seg;
        const at = offset + seg * hop;
        // Only the bands this segment can hear: one far below the floor adds nothing a
        // 24-bit file or -90 dB could show, and high bands die long before the tail ends.
        let active = 0;
        for (let b = 0; b < nb; b++) {
          const a = env[frame * nb + b], e = env[(frame + 1) * nb + b];
          if (a > SILENT_BAND || e > SILENT_BAND) {
            e0[active] = a; e1[active] = e; bands[active++] = b;
          }
        }
        for (let j = 0; j < hop; j++) {
          let a = 0, e = 0;
          const row = (at + j) * nb;
          for (let i = 0; i < active; i++) {
            const noise = bank[row + bands[i]];
            a += noise * e0[i];
            e += noise * e1[i];
          }
          start[j] = fround(a);
          end[j] = fround(e);
        }
        for (let j = 0; j < hop && at + j < s.n_samples; j++) {
          out[at + j] = fround(start[j] + fround(end[j] - start[j]) * fround(j / hop));
        }
      }
    }
    const partials = this.partials(p);
    for (let i = 0; i < s.n_samples; i++) out[i] += partials[i];
    return out;
  }

  /** The damped sines (envelope.partials): rows of B samples, one small product each. */
  partials(p) {
    const s = this.spec;
    const block = s.partial_block;
    const rows = Math.ceil(s.n_samples / block);
    const out = new Float32Array(rows * block);
    const k = p.freq.length;
    const left = new Float64Array(rows * 2 * k);  // (rows, 2K)
    const right = new Float64Array(2 * k * block);  // (2K, B)
    for (let q = 0; q < k; q++) {
      const f = p.freq[q], rate = -1 / p.decay[q];
      for (let j = 0; j < block; j++) {
        const t = j / s.sample_rate;
        const phase = 2 * Math.PI * mod1(f * t);
        const level = Math.exp(rate * t);
        right[q * block + j] = level * Math.cos(phase);
        right[(k + q) * block + j] = level * Math.sin(phase);
      }
      for (let r = 0; r < rows; r++) {
        const t = r * (block / s.sample_rate);
        const phase = 2 * Math.PI * mod1(f * t);
        const level = p.amp[q] * Math.exp(rate * t);
        left[r * 2 * k + q] = level * Math.sin(phase);
        left[r * 2 * k + k + q] = level * Math.cos(phase);
      }
    }
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < block; j++) {
        let sum = 0;
        for (let c = 0; c < 2 * k; c++) sum += left[r * 2 * k + c] * right[c * block + j];
        out[r * block + j] = sum;
      }
    }
    return out.subarray(0, s.n_samples);
  }

  /** EnvelopeSnare.encode: the knob position (fractional CCs) whose hard hit is closest to a
   * conditioned `wave` in the log-power distance: a grid of renders, then a pattern search from
   * the best few grid points. `progress(done, total)` is called as renders finish. */
  encode(wave, progress = () => {}) {
    const s = this.spec;
    const e = s.encode;
    const target = logPower(wave, s);
    let done = 0;
    const distance = ([x, y]) => {
      const d = logPowerDistance(logPower(this.decode(this.ccToLatent(x, y)), s), target);
      progress(++done, total);
      return d;
    };
    const axis = Array.from({ length: e.grid_steps }, (_, i) => (127 * i) / (e.grid_steps - 1));
    const grid = axis.flatMap((y) => axis.map((x) => [x, y]));
    // The grid, then about as many renders again while refining (the bar moves on past 100 % no
    // further: `total` grows if the search needs more).
    let total = 2 * grid.length;
    const scores = grid.map(distance);
    const order = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
    let best = grid[order[0]], bestD = Infinity;
    for (const start of order.slice(0, e.grid_starts)) {
      if (scores[start] >= bestD) break;  // a refined point is already closer than every remaining start
      let [cc, d] = [grid[start], scores[start]];
      for (const step of e.refine_steps_cc) {
        for (let moved = true; moved; ) {
          const around = e.neighbours.map(([dx, dy]) => [clampCc(cc[0] + step * dx), clampCc(cc[1] + step * dy)]);
          if (done + around.length > total) total = done + around.length;
          const ds = around.map(distance);
          const i = ds.indexOf(Math.min(...ds));
          moved = ds[i] < d - 1e-9;
          if (moved) [cc, d] = [around[i], ds[i]];
        }
      }
      if (d < bestD) [best, bestD] = [cc, d];
    }
    progress(total, total);
    return best;
  }

  decode(latent, velocity = 127, variant = 0) {
    if (!(variant >= 0 && variant < this.spec.n_variants)) throw new Error(`variant must be in 0..${this.spec.n_variants - 1}`);
    return this.render(this.params(latent, velocity, variant), variant);
  }

  /** The snare as `latent-snare render` writes it (files/saving.py render_snare), at the model's rate. */
  renderSnare(latent, velocity = 127, variant = 0, velocityRangeDb = 30, ceilingDb = -1) {
    const wave = finishSnare(this.decode(latent, velocity, variant), this.spec);
    const gain = 10 ** ((-velocityRangeDb * (127 - Math.min(127, Math.max(1, Math.round(velocity))))) / 126 / 20);
    for (let i = 0; i < wave.length; i++) wave[i] *= gain;
    const peak = peakOf(wave);
    const ceiling = 10 ** (ceilingDb / 20);
    if (peak > ceiling) for (let i = 0; i < wave.length; i++) wave[i] *= ceiling / peak;
    return wave;
  }
}

const mod1 = (x) => x - Math.floor(x);
const clampCc = (cc) => Math.min(127, Math.max(0, cc));
const SILENT_BAND = 1e-9;  // -180 dB: a band this quiet at both ends of a segment is left out

function interpolate(x, ys) {
  // np.interp over knots evenly spaced from 0 to 1.
  const last = ys.length - 1;
  const at = Math.min(Math.max(x, 0), 1) * last;
  const i = Math.min(Math.floor(at), last - 1);
  return ys[i] + (at - i) * (ys[i + 1] - ys[i]);
}

/** core/dsp.py finish_snare at the model's own rate: DC block, tail fade, peak normalized. */
export function finishSnare(wave, spec) {
  const n = wave.length;
  for (let i = 0; i < n; i++) if (!Number.isFinite(wave[i])) throw new Error("the decoder returned NaN or Inf");
  const window = Math.max(3, Math.floor(spec.sample_rate / spec.dc_block_hz) | 1);
  const half = Math.floor(window / 2);
  // A centred moving average, edges reflected (numpy's "reflect" pad), through a running sum.
  const padded = new Float64Array(n + 2 * half);
  for (let i = 0; i < padded.length; i++) {
    let j = i - half;
    if (j < 0) j = -j;
    if (j >= n) j = 2 * (n - 1) - j;
    padded[i] = wave[Math.min(Math.max(j, 0), n - 1)];
  }
  const sums = new Float64Array(padded.length + 1);
  for (let i = 0; i < padded.length; i++) sums[i + 1] = sums[i] + padded[i];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = wave[i] - (sums[i + window] - sums[i]) / window;
  fadeOut(out, Math.floor(spec.tail_fade_ms * 1e-3 * spec.sample_rate));
  const peak = peakOf(out);
  if (peak < 1e-4) throw new Error("the decoder returned silence");
  const gain = 10 ** (spec.snare_peak_db / 20) / peak;
  for (let i = 0; i < n; i++) out[i] *= gain;
  return out;
}

// --- a dropped sample: conditioned, and compared with the model's snares ---------------------------

/** files/audio.py condition(): mono at the model's rate -> exactly n_samples, onset first, peak 1. */
export function condition(mono, spec) {
  const c = spec.condition;
  const n = spec.n_samples;
  const kept = mono.subarray(0, Math.round(c.max_duration_s * spec.sample_rate));  // as read_audio reads it
  const x = Float32Array.from(kept, (v) => (Number.isFinite(v) ? v : 0));
  const peak = peakOf(x);
  if (!(peak >= c.silence_peak)) throw new Error("silent (peak below -80 dBFS)");
  const threshold = peak * 10 ** (c.onset_threshold_db / 20);
  let onset = 0;
  while (Math.abs(x[onset]) < threshold) onset++;
  const start = Math.max(0, onset - Math.floor(c.onset_preroll_ms * 1e-3 * spec.sample_rate));
  const out = new Float32Array(n);
  out.set(x.subarray(start, start + n));
  fadeOut(out, Math.floor(c.fade_out_ms * 1e-3 * spec.sample_rate));
  const top = peakOf(out);
  for (let i = 0; i < n; i++) out[i] /= top;
  return out;
}

const ffts = new Map();  // size -> FFT
const fftOf = (n) => ffts.get(n) || ffts.set(n, new FFT(n)).get(n);

/** envelope.stft_power then log, per resolution: (frames x bins) Float32Arrays of log power, of
 * the wave at its own peak (encode ignores level). Two real frames share one complex transform. */
export function logPower(wave, spec) {
  const scale = 1 / Math.max(peakOf(wave), 1e-9);
  return spec.resolutions.map(([nFft, hop]) => {
    const n = wave.length;
    const frames = Math.floor(n / hop) + 1;
    const bins = nFft / 2 + 1;
    const half = nFft / 2;
    const window = Float64Array.from({ length: nFft }, (_, k) => 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / nFft));
    const fft = fftOf(nFft);
    const out = new Float32Array(frames * bins);
    const re = new Float64Array(nFft), im = new Float64Array(nFft);
    const pair = pairSpectra(bins);
    for (let f = 0; f < frames; f += 2) {
      for (let k = 0; k < nFft; k++) {
        const a = f * hop - half + k, b = (f + 1) * hop - half + k;
        re[k] = a >= 0 && a < n ? fround(wave[a] * scale) * window[k] : 0;
        im[k] = f + 1 < frames && b >= 0 && b < n ? fround(wave[b] * scale) * window[k] : 0;
      }
      fft.transform(re, im, -1);
      const { xr, xi, yr, yi } = splitPair(re, im, bins, pair);
      for (let k = 0; k < bins; k++) {
        out[f * bins + k] = Math.log(fround(xr[k] * xr[k] + xi[k] * xi[k]) + spec.log_eps);
        if (f + 1 < frames) out[(f + 1) * bins + k] = Math.log(fround(yr[k] * yr[k] + yi[k] * yi[k]) + spec.log_eps);
      }
    }
    return out;
  });
}

/** EnvelopeSnare.render_distance's measure between two logPower results. */
export function logPowerDistance(a, b) {
  let total = 0;
  for (let r = 0; r < a.length; r++) {
    let sum = 0;
    for (let i = 0; i < a[r].length; i++) sum += Math.abs(a[r][i] - b[r][i]);
    total += (0.5 * sum) / a[r].length;
  }
  return total / a.length;
}

/** core/dsp.py spectral_match: cosine similarity of two sounds' magnitude spectrograms, 0..1. */
export function spectralMatch(a, b, fftSize = 1024, hop = 256) {
  const n = Math.min(a.length, b.length);
  const window = Float64Array.from({ length: fftSize }, (_, k) => 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / (fftSize - 1)));
  const fft = fftOf(fftSize);
  const re = new Float64Array(fftSize), im = new Float64Array(fftSize);
  const pair = pairSpectra(fftSize / 2 + 1);
  let dot = 0, normA = 0, normB = 0;
  for (let start = 0; start + fftSize <= n; start += hop) {
    for (let k = 0; k < fftSize; k++) {
      re[k] = a[start + k] * window[k];
      im[k] = b[start + k] * window[k];
    }
    fft.transform(re, im, -1);
    const { xr, xi, yr, yi } = splitPair(re, im, fftSize / 2 + 1, pair);
    for (let k = 0; k <= fftSize / 2; k++) {
      const magA = Math.hypot(xr[k], xi[k]);
      const magB = Math.hypot(yr[k], yi[k]);
      dot += magA * magB;
      normA += magA * magA;
      normB += magB * magB;
    }
  }
  return dot / (Math.sqrt(normA) * Math.sqrt(normB) + 1e-12);
}
