// The page's decoder thread: loads a model once, then answers each decode request with the
// snare's samples (transferred, not copied). The page keeps at most one request in flight, so
// the newest knob position is always the next one decoded.
import { EnvelopeSnare, condition, readSafetensors, spectralMatch } from "./snare-model.js";

const PROGRESS_EVERY_MS = 100;

const models = new Map();  // name -> Promise<EnvelopeSnare>

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response;
}

function load(name, specUrl, weightsUrl) {
  if (!models.has(name)) {
    models.set(name, (async () => {
      const [spec, weights] = await Promise.all([
        fetchOk(specUrl).then((r) => r.json()),
        fetchOk(weightsUrl).then((r) => r.arrayBuffer()),
      ]);
      const model = new EnvelopeSnare(spec, readSafetensors(weights));
      await noiseBank(model, 0);  // the first hit's noise: ready now, so the first decode is fast
      return model;
    })());
  }
  return models.get(name);
}

// The noise bank takes ~0.2 s to build and depends only on the model's render constants, never on
// its weights: kept in the browser's Cache Storage, a later visit reads it back instead.
const BANK_CACHE = "latent-snare-noise";

function bankKey(spec, variant) {
  const fields = JSON.stringify([spec.version, spec.noise_seed, spec.n_bands, spec.noise_length, spec.sample_rate,
    spec.log_band_centres, spec.variant_noise_mix, spec.n_grid, spec.n_fine, spec.hop, spec.fine_hop, variant]);
  let hash = 0x811c9dc5;  // FNV-1a
  for (let i = 0; i < fields.length; i++) hash = Math.imul(hash ^ fields.charCodeAt(i), 0x01000193) >>> 0;
  return new Request(new URL(`noise-bank/${hash.toString(16)}-${fields.length}`, self.location.href));
}

async function noiseBank(model, variant) {
  const cache = self.caches ? await caches.open(BANK_CACHE).catch(() => null) : null;
  const key = bankKey(model.spec, variant);
  const hit = cache && (await cache.match(key));
  if (hit) {
    model.banks.set(variant, new Float32Array(await hit.arrayBuffer()));
    return;
  }
  const bank = model.bank(variant);
  if (cache) await cache.put(key, new Response(bank)).catch(() => {});  // full storage: build it next time
}

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  try {
    if (type === "load") {
      const started = performance.now();
      await load(data.name, data.spec, data.weights);
      self.postMessage({ id, type, ms: performance.now() - started });
    } else if (type === "decode") {
      const model = await models.get(data.name);
      const started = performance.now();
      const latent = model.ccToLatent(data.x, data.y);
      const wave = model.renderSnare(latent, data.velocity, data.variant, data.velocityRangeDb, data.ceilingDb);
      self.postMessage({ id, type, wave, latent, ms: performance.now() - started }, [wave.buffer]);
    } else if (type === "encode") {
      // A dropped sample (mono, at the model's rate) -> the knob position closest to it.
      const model = await models.get(data.name);
      const started = performance.now();
      const wave = condition(data.mono, model.spec);
      let shown = 0;
      const cc = model.encode(wave, (done, total) => {
        if (performance.now() - shown < PROGRESS_EVERY_MS && done < total) return;
        shown = performance.now();
        self.postMessage({ id, type: "progress", done, total });
      });
      const latent = model.ccToLatent(...cc);
      const match = spectralMatch(wave, model.decode(latent));
      self.postMessage({ id, type, cc, latent, match, ms: performance.now() - started });
    }
  } catch (err) {
    self.postMessage({ id, type: "error", error: String(err && err.message ? err.message : err) });
  }
};
