// The page's decoder thread: loads a model once, then answers each decode request with the
// snare's samples (transferred, not copied). The page keeps at most one request in flight, so
// the newest knob position is always the next one decoded.
import { EnvelopeSnare, readSafetensors } from "./snare-model.js";

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
      model.bank(0);  // the hard hit's noise: built now, so the first decode is fast
      return model;
    })());
  }
  return models.get(name);
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
    }
  } catch (err) {
    self.postMessage({ id, type: "error", error: String(err && err.message ? err.message : err) });
  }
};
