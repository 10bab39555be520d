// Loaded with `node --import` before Portkey's gateway (bench only). Portkey 1.15.2 on Node appends headers to the
// upstream's fetch() Response, whose headers the fetch spec makes immutable: every streamed request fails with
// "TypeError: immutable" (Portkey-AI/gateway#1389, #1550). Re-wrapping the upstream response in a new Response
// (same status, headers and body stream; nothing is buffered) gives it mutable headers.
const upstreamFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const r = await upstreamFetch(...args);
  return new Response(r.body, { status: r.status, statusText: r.statusText, headers: new Headers(r.headers) });
};
