// Shared harness of the comparison scripts: one child process per scenario run, peak RSS
// sampling, medians, and table printing. Deno only (the scripts spawn `Deno.execPath()`).

/** What one child process reports for one scenario run. */
export interface ChildReport {
  /** Scenario name. */
  scenario: string;
  /** Wall time of the measured work, ms. */
  ms: number;
  /** Peak RSS sampled every 10 ms during the measured work, bytes. */
  peakRss: number;
  /** Kernel high-water mark of RSS for the whole child (VmHWM), bytes; 0 when unknown. */
  hwm: number;
  /** Anything else the scenario wants to report. */
  extra: Record<string, number | string | boolean>;
}

const MARKER = "@@BENCH ";

/** Samples `Deno.memoryUsage().rss` every `intervalMs` until stopped; returns the peak. */
export function startRssSampler(intervalMs = 10): { stop(): number } {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    const rss = Deno.memoryUsage().rss;
    if (rss > peak) peak = rss;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const rss = Deno.memoryUsage().rss;
      if (rss > peak) peak = rss;
      return peak;
    },
  };
}

/** The kernel's peak RSS of this process (Linux `VmHWM`), in bytes; 0 elsewhere. */
export function vmHwm(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** In a child: prints the report where the parent finds it. */
export function report(result: ChildReport): void {
  console.log(MARKER + JSON.stringify(result));
}

/** In the parent: runs `script --child <scenario> ...args` in a fresh Deno and returns its report. */
export async function runChild(
  script: string,
  scenario: string,
  args: string[] = [],
): Promise<ChildReport> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, "--child", scenario, ...args],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "inherit",
  });
  const output = await command.output();
  const text = new TextDecoder().decode(output.stdout);
  const line = text.split("\n").find((l) => l.startsWith(MARKER));
  if (!output.success || line === undefined) {
    console.error(text);
    throw new Error(`Scenario '${scenario}' failed (exit code ${output.code})`);
  }
  return JSON.parse(line.slice(MARKER.length)) as ChildReport;
}

/** The `--child <scenario>` of this process, if it is a child. */
export function childScenario(): string | undefined {
  const index = Deno.args.indexOf("--child");
  return index >= 0 ? Deno.args[index + 1] : undefined;
}

/** The 1/5/15-minute load averages (Linux), to show how busy the machine was; "" elsewhere. */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "";
  }
}

/** Median of numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median over repetitions of `b.ms / a.ms`, pairing the runs of the same repetition. */
export function pairedRatio(a: readonly ChildReport[], b: readonly ChildReport[]): number {
  return median(a.map((run, i) => b[i].ms / run.ms));
}

/** Prints a left/right-aligned table. */
export function printTable(header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  const line = (row: string[]) =>
    row.map((cell, c) => c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join("  ");
  console.log(line(cells[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Formats bytes as MB (10^6) with one decimal. */
export const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

/** A minimal step request for benchmarks. */
export function benchRequest(root: string, runId = "run-1") {
  return {
    taskId: "bench",
    stepId: "step",
    stepName: "Bench",
    stepKind: "bench",
    runId,
    attempt: 1,
    workerKind: "script",
    timeoutSec: 600,
    runtime: { repoRoot: root, worktreePath: root },
  };
}

/** The number after `--name` on the command line, or `fallback`. */
export function numberArg(name: string, fallback: number): number {
  return Number(stringArg(name, String(fallback)));
}

/** The value after `--name` on the command line, or `fallback`. */
export function stringArg(name: string, fallback: string): string {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : fallback;
}
