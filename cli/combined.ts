// `runs logs --stream all`: lifecycle events, stdout and stderr as lines in the order the worker
// printed them (the run's sequence, from its output index), whole, tailed or followed live.

import { RunStaleError } from "../core/errors.ts";
import { TERMINAL_EVENT_TYPES } from "../core/outcome.ts";
import { followRunOutput, readRunOutput, type RunOutputItem } from "../core/output.ts";
import { readRunLogBytes, type RunRef } from "../core/read.ts";
import type { StreamLogChannel, WorkerLifecycleLogEntry } from "../core/types.ts";
import { LineSplitter } from "./lines.ts";
import type { CommandContext } from "./main.ts";

/** Where a stream's bytes in a view start, when not at the stream's start. */
interface StreamStart {
  stream: StreamLogChannel;
  offset: number;
}

/**
 * A line of the view, rendered. `start`: the line is the first of its stream in a view that
 * starts inside the stream, so it may be the end of a line begun before the view.
 */
interface ViewLine {
  text: string;
  start?: StreamStart;
}

/** One stream's lines in the view. */
interface StreamLines {
  splitter: LineSplitter;
  /** Sequence number of the stream's last bytes: a line is shown where its end was printed. */
  seq?: number;
  /** Whether bytes of the stream were taken. */
  seen: boolean;
  /** The view starts inside this stream's bytes: its first line may lack its start. */
  start?: StreamStart;
}

const STREAMS: readonly StreamLogChannel[] = ["stdout", "stderr"];
/** Output bytes read back for a tail at first; the window grows fourfold until it holds enough. */
const FIRST_WINDOW = 64 * 1024;

/**
 * Turns the items of a run's output into printed lines. Each stream is cut into lines on its own,
 * so a stdout line still waiting for its newline is never glued to a stderr line; a line is
 * shown once complete, at the place of its last bytes, or when the worker exited or the view
 * ends. The run's terminal event is held until the view ends, after any bytes the index does not
 * cover (a run stored before the index existed), so it is always the last line.
 */
class CombinedView {
  /** The cursor of the last item taken: a follower resumes after it. */
  cursor: string | undefined;
  readonly #json: boolean;
  readonly #context: CommandContext;
  readonly #streams: Record<StreamLogChannel, StreamLines> = {
    stdout: { splitter: new LineSplitter(), seen: false },
    stderr: { splitter: new LineSplitter(), seen: false },
  };
  #held: WorkerLifecycleLogEntry[] = [];

  constructor(context: CommandContext) {
    this.#context = context;
    this.#json = context.values.json === true;
  }

  /** The lines an item completes. */
  take(item: RunOutputItem): ViewLine[] {
    this.cursor = item.cursor;
    if (item.channel === "worker") {
      if (TERMINAL_EVENT_TYPES.has(item.event.type)) {
        this.#held.push(item.event);
        return [];
      }
      // The worker printed its unfinished last lines before it exited: they end there.
      const before = item.event.type === "worker_exited" ? this.#unfinished() : [];
      return [...before, this.#event(item.event)];
    }
    const stream = this.#streams[item.channel];
    if (!stream.seen && item.offset > 0) {
      stream.start = { stream: item.channel, offset: item.offset };
    }
    stream.seen = true;
    stream.seq = item.seq;
    return stream.splitter.push(item.bytes).map((line) => this.#line(item.channel, line));
  }

  /** The view ends (the run did, or nothing is followed): unfinished lines, then the end. */
  finish(): ViewLine[] {
    const held = this.#held.map((event) => this.#event(event));
    this.#held = [];
    return [...this.#unfinished(), ...held];
  }

  /** Each stream's line still without a newline, in the order their last bytes came. */
  #unfinished(): ViewLine[] {
    const order = (s: StreamLogChannel) => this.#streams[s].seq ?? Infinity;
    return [...STREAMS].sort((a, b) => order(a) - order(b))
      .flatMap((s) => this.#streams[s].splitter.end().map((line) => this.#line(s, line)));
  }

  #line(channel: StreamLogChannel, line: string): ViewLine {
    const stream = this.#streams[channel];
    const text = this.#json
      ? JSON.stringify(
        stream.seq === undefined ? { channel, line } : { channel, seq: stream.seq, line },
      )
      : channel === "stderr"
      ? this.#context.style.red(line)
      : line;
    const start = stream.start;
    stream.start = undefined;
    return start === undefined ? { text } : { text, start };
  }

  #event(event: WorkerLifecycleLogEntry): ViewLine {
    if (this.#json) return { text: JSON.stringify(event) };
    const rendered = event.renderedLine ?? `${event.createdAt} ${event.type}: ${event.message}`;
    return { text: this.#context.style.dim(rendered) };
  }
}

function print(context: CommandContext, lines: readonly ViewLine[]): Promise<void> {
  if (lines.length === 0) return Promise.resolve();
  return context.output.out(lines.map((l) => `${l.text}\n`).join(""));
}

/** The last lines of a view as it is read. */
class LastLines {
  readonly #want: number;
  #lines: ViewLine[] = [];
  /** Lines taken in all. */
  count = 0;

  constructor(want: number) {
    this.#want = want;
  }

  add(lines: readonly ViewLine[]): void {
    this.count += lines.length;
    this.#lines.push(...lines);
    if (this.#lines.length > 2 * this.#want + 1024) {
      this.#lines.splice(0, this.#lines.length - this.#want);
    }
  }

  /** The last `want` lines. */
  get lines(): ViewLine[] {
    return this.#want === 0 ? [] : this.#lines.slice(-this.#want);
  }
}

/**
 * Whether a stream's bytes from `start` begin a line: the byte before is a newline. Read only
 * for a line that would be shown, as it costs a read of the log.
 */
async function beginsLine(
  context: CommandContext,
  ref: RunRef,
  start: StreamStart,
): Promise<boolean> {
  const before = await readRunLogBytes(context.storage(), ref, start.stream, {
    offset: start.offset - 1,
    length: 1,
  });
  return before[0] === 0x0a;
}

/**
 * The last `lines` lines of the view: reads back about a window of output bytes with its events,
 * widening the window fourfold until its last `lines` lines are whole ones, or reading the run
 * from its start once the window would cover all of its output (`knownBytes`, or fewer bytes than
 * the window came back), so the events before its first output are there too.
 */
async function tailView(
  context: CommandContext,
  ref: RunRef,
  lines: number,
  finish: boolean,
  knownBytes: number,
): Promise<CombinedView> {
  const storage = context.storage();
  let window = FIRST_WINDOW;
  let whole = lines > 0 && knownBytes <= window;
  for (;;) {
    const view = new CombinedView(context);
    const last = new LastLines(lines);
    let bytes = 0;
    const options = whole ? { events: true } : { events: true, tail: lines === 0 ? 0 : window };
    for await (const item of readRunOutput(storage, ref, options)) {
      if (item.channel !== "worker") bytes += item.bytes.byteLength;
      last.add(view.take(item));
    }
    if (finish) last.add(view.finish());
    const shown = last.lines;
    // Enough lines, unless one shown is the end of a line begun before the window.
    let enough = whole || last.count >= lines;
    for (const line of shown) {
      if (enough && line.start !== undefined) enough = await beginsLine(context, ref, line.start);
    }
    if (enough) {
      await print(context, shown);
      return view;
    }
    if (bytes < window) whole = true;
    else window *= 4;
  }
}

/**
 * Prints the stored view of a run: whole from its start, or its last `tail` lines.
 *
 * @param context The command's context.
 * @param ref Which run.
 * @param options `tail` (lines); `finish`: print unfinished last lines (nothing more will be
 *   followed, or the run is over); `knownBytes`: the run's output bytes as its state counts them.
 * @returns The view, to follow on from with {@linkcode followCombined}.
 */
export async function printCombined(
  context: CommandContext,
  ref: RunRef,
  options: { tail?: number; finish: boolean; knownBytes: number },
): Promise<CombinedView> {
  if (options.tail !== undefined) {
    return await tailView(context, ref, options.tail, options.finish, options.knownBytes);
  }
  const view = new CombinedView(context);
  for await (const item of readRunOutput(context.storage(), ref, { events: true })) {
    await print(context, view.take(item));
  }
  if (options.finish) await print(context, view.finish());
  return view;
}

/**
 * Follows a run's view after what was printed, until the run ends.
 *
 * @param context The command's context.
 * @param ref Which run.
 * @param view What {@linkcode printCombined} printed.
 * @param poll `pollMs` and `staleAfterMs`.
 * @returns The error that says the run went stale, or `undefined` once it finished.
 */
export async function followCombined(
  context: CommandContext,
  ref: RunRef,
  view: CombinedView,
  poll: { pollMs: number; staleAfterMs: number },
): Promise<RunStaleError | undefined> {
  let stale: RunStaleError | undefined;
  try {
    const items = followRunOutput(context.storage(), ref, {
      events: true,
      ...(view.cursor === undefined ? {} : { from: view.cursor }),
      ...poll,
    });
    for await (const item of items) await print(context, view.take(item));
  } catch (error) {
    if (!(error instanceof RunStaleError)) throw error;
    stale = error;
  }
  await print(context, view.finish());
  return stale;
}
