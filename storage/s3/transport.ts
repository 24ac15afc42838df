// S3 requests: SigV4 signing, per-request time limits, retries with jittered backoff, and the
// mapping of S3 answers to StorageError. Credentials stay in the signing client's closure.

import { AwsClient } from "aws4fetch";
import { StorageError } from "../../core/errors.ts";
import type { StorageErrorCode } from "../../core/errors.ts";
import { sha256Hex } from "../../core/bytes.ts";
import { parseErrorDocument } from "./xml.ts";

/** The adapter's name in errors. */
export const ADAPTER = "s3";

/** One answer from S3, after retries. */
export interface Exchange {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** S3 error `<Code>`, when the body is an error document. */
  code?: string;
  /** S3 error `<Message>`. */
  message?: string;
  /** A previous attempt may have been applied by the server before it failed. */
  ambiguous: boolean;
}

/** One S3 request to send. */
export interface Call {
  operation: string;
  key: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** CompleteMultipartUpload may answer 200 with an error document. */
  errorIn200?: boolean;
}

/** Retry policy, with defaults applied. */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  budgetMs: number;
}

/** What the transport needs. */
export interface TransportConfig {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region: string;
  retry: RetryPolicy;
  timeoutMs: number;
  fetch: typeof fetch;
}

/** Sends requests and turns failed answers into errors. */
export interface Transport {
  /** Sends one S3 request with retries; resolves with the final answer, whatever its status. */
  send(call: Call): Promise<Exchange>;
  /** Turns a non-success answer into a `StorageError` with the right stable code. */
  failed(call: Pick<Call, "operation" | "key">, exchange: Exchange): StorageError;
  /** Removes every credential from a text. */
  scrub(text: string): string;
}

/**
 * Creates the transport of one storage.
 *
 * @param config Credentials, region, retry policy, time limit and `fetch`.
 * @returns The transport.
 */
export function createTransport(config: TransportConfig): Transport {
  const { retry, timeoutMs } = config;
  const fetchImpl = config.fetch;
  // The client (which holds the credentials in its fields) never leaves this closure.
  const client = new AwsClient({
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    sessionToken: config.sessionToken,
    service: "s3",
    region: config.region,
    retries: 0,
  });
  const secrets = [config.secretAccessKey, config.sessionToken, config.accessKeyId]
    .filter((value): value is string => typeof value === "string" && value.length >= 4);
  const scrub = (text: string): string =>
    secrets.reduce((out, secret) => out.split(secret).join("[redacted]"), text);

  async function send(call: Call): Promise<Exchange> {
    const started = Date.now();
    const headers: Record<string, string> = { ...call.headers };
    if (call.body !== undefined) {
      headers["x-amz-content-sha256"] = await sha256Hex(call.body);
    }
    let ambiguous = false;
    for (let attempt = 0;; attempt++) {
      let exchange: Exchange | undefined;
      let failure: unknown;
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new DOMException("S3 request timed out", "TimeoutError")),
        timeoutMs,
      );
      let request: Request;
      try {
        request = await client.sign(call.url, {
          method: call.method,
          headers,
          body: call.body as BodyInit | undefined,
          signal: controller.signal,
        });
      } catch (error) {
        // Signing is deterministic: a failure here is a bug or bad input, never worth a retry.
        clearTimeout(timer);
        throw new StorageError(scrub(`Could not sign the request: ${describeError(error)}`), {
          adapter: ADAPTER,
          operation: call.operation,
          key: call.key,
          cause: sanitize(error, scrub),
        });
      }
      try {
        const response = await fetchImpl(request);
        const body = new Uint8Array(await response.arrayBuffer());
        exchange = { status: response.status, headers: response.headers, body, ambiguous };
        // A 200 may carry an <Error> (CompleteMultipartUpload): callers that allow it check
        // `code` as well as `status`, and transient codes are retried like a 5xx.
        if (response.status >= 300 || call.errorIn200) {
          const error = parseErrorDocument(body);
          if (error !== undefined) {
            exchange.code = error.code ?? "UnknownError";
            exchange.message = error.message;
          }
        }
      } catch (error) {
        failure = error;
      } finally {
        clearTimeout(timer);
      }

      const transient = exchange === undefined || isTransient(exchange);
      if (!transient) return exchange!;
      const elapsed = Date.now() - started;
      const delay = backoff(retry, attempt, exchange?.headers);
      if (attempt >= retry.attempts || elapsed + delay > retry.budgetMs) {
        const what = exchange === undefined
          ? `Request failed: ${describeError(failure)}`
          : `S3 answered ${exchange.status}${exchange.code ? ` ${exchange.code}` : ""}`;
        throw new StorageError(
          scrub(`${what} after ${attempt + 1} attempt${attempt === 0 ? "" : "s"}`),
          {
            adapter: ADAPTER,
            operation: call.operation,
            key: call.key,
            code: "unavailable",
            status: exchange?.status,
            backendCode: exchange?.code,
            cause: failure === undefined ? undefined : sanitize(failure, scrub),
          },
        );
      }
      // Any failed attempt may have reached the server (timeouts, 500 after commit).
      ambiguous = true;
      await sleep(delay);
    }
  }

  function failed(call: Pick<Call, "operation" | "key">, exchange: Exchange): StorageError {
    let code: StorageErrorCode = "storage_failed";
    if (exchange.status === 403) code = "access_denied";
    if (
      exchange.status === 412 ||
      (exchange.status === 409 && exchange.code === "ConditionalRequestConflict")
    ) code = "precondition_failed";
    const detail = exchange.message ? `: ${exchange.message}` : "";
    return new StorageError(
      scrub(`S3 answered ${exchange.status}${exchange.code ? ` ${exchange.code}` : ""}${detail}`),
      {
        adapter: ADAPTER,
        operation: call.operation,
        key: call.key,
        code,
        status: exchange.status,
        backendCode: exchange.code,
      },
    );
  }

  return { send, failed, scrub };
}

function backoff(retry: RetryPolicy, attempt: number, headers: Headers | undefined): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** attempt);
  const jittered = Math.random() * ceiling;
  const retryAfter = Number(headers?.get("retry-after"));
  if (Number.isFinite(retryAfter) && retryAfter > 0) {
    return Math.min(retry.maxDelayMs, Math.max(jittered, retryAfter * 1000));
  }
  return jittered;
}

// Transient error codes S3 reports, whatever the status they come with.
const TRANSIENT_CODES = new Set([
  "SlowDown",
  "InternalError",
  "ServiceUnavailable",
  "RequestTimeout",
]);

function isTransient(exchange: { status: number; code?: string }): boolean {
  if (exchange.status === 429) return true;
  if (exchange.status >= 500 && exchange.status !== 501) return true;
  // S3's 400 RequestTimeout means the socket idled mid-upload: a transient failure.
  return exchange.code !== undefined && TRANSIENT_CODES.has(exchange.code) &&
    exchange.status !== 403;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const inner = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${error.name}: ${error.message}${inner}`;
  }
  return String(error);
}

/** A credential-free copy of an error (and its causes) for `StorageError.cause`. */
function sanitize(error: unknown, scrub: (text: string) => string, depth = 0): Error {
  const source = error instanceof Error ? error : new Error(String(error));
  const copy = new Error(scrub(source.message), {
    cause: depth < 3 && source.cause !== undefined
      ? sanitize(source.cause, scrub, depth + 1)
      : undefined,
  });
  copy.name = source.name;
  copy.stack = scrub(source.stack ?? "");
  return copy;
}
