// The viewer's responses: the headers every one gets, pages under their Content-Security-Policy,
// event streams, downloads' file names, and the plain-text refusals.

/**
 * Headers every response gets.
 *
 * @param extra Headers of this response.
 * @returns The headers.
 */
export function baseHeaders(extra: Record<string, string> = {}): Headers {
  return new Headers({
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    ...extra,
  });
}

/**
 * An HTML page under a CSP that lets only its own nonce'd script run.
 *
 * @param status The status.
 * @param body The document.
 * @param nonce The script's nonce.
 * @returns The response.
 */
export function htmlResponse(status: number, body: string, nonce: string): Response {
  return new Response(body, {
    status,
    headers: baseHeaders({
      "content-type": "text/html; charset=utf-8",
      // The last line of defence: only our own nonce'd script runs, whatever a page contains.
      "content-security-policy": [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        "style-src 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
      ].join("; "),
    }),
  });
}

/**
 * A `Content-Disposition` naming a download (RFC 5987, the last path segment only).
 *
 * @param name The artifact's name.
 * @returns The header value.
 */
export function attachmentName(name: string): string {
  const base = name.split("/").at(-1) || "artifact";
  return `attachment; filename*=UTF-8''${encodeURIComponent(base)}`;
}

/**
 * A plain-text 400.
 *
 * @param text What was wrong.
 * @returns The response.
 */
export function badRequest(text: string): Response {
  return new Response(text, {
    status: 400,
    headers: baseHeaders({ "content-type": "text/plain; charset=utf-8" }),
  });
}

/**
 * A server-sent event stream's response (not buffered by proxies that honour `x-accel-buffering`).
 *
 * @param body The stream.
 * @returns The response.
 */
export function eventStreamResponse(body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    headers: baseHeaders({
      "content-type": "text/event-stream; charset=utf-8",
      "x-accel-buffering": "no",
    }),
  });
}

/**
 * The 401 of a request without the viewer's token.
 *
 * @returns The response.
 */
export function unauthorized(): Response {
  return new Response("Unauthorized: this viewer needs its token\n", {
    status: 401,
    headers: baseHeaders({
      "content-type": "text/plain; charset=utf-8",
      "www-authenticate": 'Bearer realm="runs viewer"',
    }),
  });
}
