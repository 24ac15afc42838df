// Where the CLI writes: stdout for data, stderr for status lines and errors, colour on a TTY only.

import process from "node:process";

/** What a command writes to, and how. */
export interface Output {
  /** Writes data to stdout; resolves once written (backpressure honoured). */
  out(data: string | Uint8Array): Promise<void>;
  /** Writes a status line to stderr (a newline is added). */
  note(line: string): Promise<void>;
  /** Whether stdout gets ANSI colours (a TTY, and `NO_COLOR` unset or empty). */
  colour: boolean;
}

interface Writable {
  write(data: string | Uint8Array, callback: (error?: Error | null) => void): boolean;
}

function write(stream: Writable, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * The process's own stdout and stderr. A closed pipe (`runs logs ... | head`) ends the process
 * quietly, as other command-line tools do.
 *
 * @returns The output.
 */
export function processOutput(): Output {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: Error & { code?: string }) => {
      if (error.code === "EPIPE") process.exit(0);
    });
  }
  const noColour = (process.env.NO_COLOR ?? "") !== "";
  return {
    out: (data) => write(process.stdout, data),
    note: (line) => write(process.stderr, `${line}\n`),
    colour: process.stdout.isTTY === true && !noColour,
  };
}

/** ANSI styles, or identity functions without colour. */
export interface Styles {
  /** Bold. */
  bold(text: string): string;
  /** Dimmed. */
  dim(text: string): string;
  /** Red. */
  red(text: string): string;
  /** Green. */
  green(text: string): string;
  /** Yellow. */
  yellow(text: string): string;
  /** Cyan. */
  cyan(text: string): string;
}

/**
 * The styles for an output.
 *
 * @param colour Whether to colour.
 * @returns The styles.
 */
export function styles(colour: boolean): Styles {
  const sgr = (open: number, close: number) => (text: string) =>
    colour && text !== "" ? `\x1b[${open}m${text}\x1b[${close}m` : text;
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
  };
}
