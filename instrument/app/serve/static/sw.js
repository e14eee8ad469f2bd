// The static site's service worker: the site works offline once loaded. Every file the site
// has is cached when it installs (site.json lists them); answers come from that cache first.
// `latent-snare site` writes VERSION (a hash of every file), so a rebuilt site installs anew
// and the old cache is dropped.
const VERSION = "dev";
const CACHE = `latent-snare-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const site = await (await fetch("site.json", { cache: "no-store" })).json();
    const cache = await caches.open(CACHE);
    await cache.addAll(["./", ...site.files]);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // The page's own URL carries its state (?x=…&y=…): any query answers with the page.
    const hit = await cache.match(event.request, { ignoreSearch: new URL(event.request.url).pathname.endsWith("/") });
    return hit || fetch(event.request);
  })());
});
