// Cutting a log's bytes into lines as they arrive, for the views that print lines.

/** Splits one channel's bytes into whole lines, decoding UTF-8 across chunk boundaries. */
export class LineSplitter {
  #decoder = new TextDecoder();
  #partial = "";

  /** The whole lines in `chunk` (and before it), without their newlines. */
  push(chunk: Uint8Array): string[] {
    const lines = (this.#partial + this.#decoder.decode(chunk, { stream: true })).split("\n");
    this.#partial = lines.pop() ?? "";
    return lines;
  }

  /** What is left without a newline (a last line, or a line torn by a killed writer). */
  end(): string[] {
    const rest = this.#partial + this.#decoder.decode();
    this.#partial = "";
    return rest === "" ? [] : [rest];
  }
}
