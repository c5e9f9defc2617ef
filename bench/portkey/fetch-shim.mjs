// Preloaded into the Portkey gateway by bench/run (node --import).
//
// Portkey 1.15.2 on Node.js fails every streamed chat completion with
// "TypeError: immutable": it appends x-portkey-* headers to a Response built
// on the upstream fetch() answer, whose Headers object is immutable by the
// fetch spec (Portkey-AI/gateway issues 1389 and 1550). This shim does what
// the proposed upstream fix (pull request 1551) does -- it copies each
// upstream answer into a Response with its own mutable Headers -- here at
// fetch() for every call. Body and status are passed through untouched; the
// cost is one Response object and a header copy per upstream call.
const UpstreamResponse = globalThis.Response; // undici's, before @hono/node-server replaces it
const upstreamFetch = globalThis.fetch;
globalThis.fetch = async function fetchWithMutableHeaders(...args) {
  const r = await upstreamFetch(...args);
  return new UpstreamResponse(r.body, {
    status: r.status,
    statusText: r.statusText,
    headers: new Headers(r.headers),
  });
};
