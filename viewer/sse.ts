// The server-sent event stream a live view follows: what is followed goes out as messages, then
// one `end`, `stale` or `failure` event; comments keep proxies from closing a quiet stream.

import { RunStaleError } from "../core/errors.ts";
import { keysOf, readRunStatus, type RunRef } from "../core/read.ts";
import type { RunStorage } from "../storage/types.ts";
import { badgeWord } from "./shell.ts";

/** Options of a followed event stream. */
export interface EventStreamOptions {
  /** Poll interval of the follower, ms. */
  pollMs: number;
  /** Heartbeat age past which the run is stale, ms. */
  staleAfterMs: number;
  /** Ends the stream (the client went away). */
  signal?: AbortSignal;
  /** Comment lines sent while nothing is new, ms (keeps proxies from closing the stream). */
  keepAliveMs?: number;
}

/** What one event stream follows, and how its items become messages. */
export interface EventFeed<T> {
  /** The comment the stream opens with (what is followed, from where). */
  opening: string;
  /**
   * Starts following: ends once the run finished and everything was yielded, throws
   * `RunStaleError` when the writer died, ends early when `signal` aborts.
   */
  follow(signal: AbortSignal): AsyncIterable<T>;
  /** The `id:`/`data:` lines of an item's message (`undefined`: nothing to send for it). */
  message(item: T): string | undefined | Promise<string | undefined>;
  /** Where the stream stands, carried by the `end`, `stale` and `failure` events' data. */
  position(): Record<string, unknown>;
}

const encoder = new TextEncoder();

/**
 * A `text/event-stream` body: each followed item's message, then an `end` event with the run's
 * final status once it finished, a `stale` event when its writer died, or a `failure` event when
 * the storage failed (the browser then reconnects from the last `id:` it saw).
 *
 * @param storage The storage.
 * @param ref The run.
 * @param feed What is followed.
 * @param options Polling, staleness, signal, keep-alive.
 * @returns The stream.
 */
export function followedEventStream<T>(
  storage: RunStorage,
  ref: RunRef,
  feed: EventFeed<T>,
  options: EventStreamOptions,
): ReadableStream<Uint8Array> {
  const abort = new AbortController();
  options.signal?.addEventListener("abort", () => abort.abort(), { once: true });
  let iterator: AsyncIterator<T> | undefined;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const stop = () => {
    closed = true;
    if (keepAlive !== undefined) clearInterval(keepAlive);
    abort.abort();
  };
  const event = (name: string, data: Record<string, unknown>) =>
    encoder.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: 1000\n: ${feed.opening}\n\n`));
      keepAlive = setInterval(() => {
        try {
          if (!closed) controller.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          stop();
        }
      }, options.keepAliveMs ?? 15_000);
      iterator = feed.follow(abort.signal)[Symbol.asyncIterator]();
    },
    async pull(controller) {
      try {
        // Until something is sent: a pull that enqueues nothing is not called again until the
        // next keep-alive, which would hold the stream up for seconds.
        let next = await iterator!.next();
        while (!next.done) {
          if (closed) return;
          const message = await feed.message(next.value);
          if (message !== undefined) {
            controller.enqueue(encoder.encode(message));
            return;
          }
          next = await iterator!.next();
        }
        if (closed) return;
        if (abort.signal.aborted) {
          stop();
          controller.close();
          return;
        }
        const status = await readRunStatus(storage, keysOf(ref), {
          staleAfterMs: options.staleAfterMs,
        });
        controller.enqueue(event("end", {
          status: status.state?.status,
          badge: badgeWord(status.state, status.liveness),
          exitCode: status.state?.exitCode,
          ...feed.position(),
        }));
        stop();
        controller.close();
      } catch (error) {
        stop();
        // A storage failure ends the stream with a note; the browser reconnects from its last id.
        controller.enqueue(
          event(error instanceof RunStaleError ? "stale" : "failure", feed.position()),
        );
        controller.close();
      }
    },
    cancel() {
      stop();
      void iterator?.return?.();
    },
  });
}
