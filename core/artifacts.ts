// Artifacts: saving a worker's files under artifacts/ and listing a run's records.

import { encodeText } from "./bytes.ts";
import { ValidationError } from "./errors.ts";
import type { SaveArtifactOptions } from "./executor.ts";
import { joinKey } from "./layout.ts";
import { idProblem } from "./schemas.ts";
import type { PreparedStepRun, StepArtifact, StructuredData } from "./types.ts";
import { type LiveRun, recordEvent } from "./open-run.ts";

export async function saveArtifact(
  live: LiveRun,
  name: string,
  data: string | Uint8Array,
  options: SaveArtifactOptions = {},
): Promise<StepArtifact> {
  const problem = typeof name === "string"
    ? name.split("/").map(idProblem).find((p) => p !== undefined)
    : "must be a string";
  if (problem !== undefined) {
    throw new ValidationError([{ path: "name", message: problem }], "Invalid artifact");
  }
  if (typeof data !== "string" && !(data instanceof Uint8Array)) {
    throw new TypeError("saveArtifact() takes a string or a Uint8Array");
  }
  const bytes = typeof data === "string" ? encodeText(data) : data.slice();
  const key = joinKey(live.run.keys.artifactsDir, name);
  await live.writer.writeRecord(key, bytes);
  const redact = (text: string) => live.redactor ? live.redactor.redactText(text) : text;
  const artifact: StepArtifact = {
    name: redact(name),
    kind: redact(options.kind ?? "file"),
    path: redact(live.storage.locate(key)),
    size: bytes.byteLength,
  };
  if (options.description !== undefined) artifact.description = redact(options.description);
  live.savedArtifacts.push(artifact);
  const eventData: StructuredData = {
    name: artifact.name,
    kind: artifact.kind,
    size: artifact.size ?? 0,
    path: artifact.path,
  };
  if (artifact.description !== undefined) eventData.description = artifact.description;
  recordEvent(live, {
    type: "artifact_saved",
    level: "info",
    message: `Saved artifact ${artifact.name}.`,
    data: eventData,
  });
  return artifact;
}

export function defaultArtifacts(run: PreparedStepRun): StepArtifact[] {
  const p = run.logPaths;
  return [
    {
      name: "meta.json",
      kind: "metadata",
      path: p.metaPath,
      description: "Immutable run metadata for this step attempt.",
    },
    {
      name: "state.json",
      kind: "state",
      path: p.statePath,
      description: "Mutable run state snapshot for progress tracking and recovery.",
    },
    {
      name: "worker.log",
      kind: "log",
      path: p.workerLogPath,
      description: "Lifecycle events rendered into the worker log stream.",
    },
    {
      name: "stdout.log",
      kind: "log",
      path: p.stdoutLogPath,
      description: "Raw stdout stream produced by the worker process.",
    },
    {
      name: "stderr.log",
      kind: "log",
      path: p.stderrLogPath,
      description: "Raw stderr stream produced by the worker process.",
    },
    {
      name: "checkpoints",
      kind: "directory",
      path: p.checkpointsDir,
      description: "Checkpoint records: preparation summary, log tail, git diff plan.",
    },
    {
      name: "artifacts",
      kind: "directory",
      path: p.artifactsDir,
      description: "Artifacts saved by the worker.",
    },
  ];
}

export function mergeArtifacts(run: PreparedStepRun, ...lists: StepArtifact[][]): StepArtifact[] {
  const merged = new Map<string, StepArtifact>();
  for (const artifact of defaultArtifacts(run)) merged.set(artifact.path, artifact);
  for (const list of lists) for (const artifact of list) merged.set(artifact.path, artifact);
  return [...merged.values()];
}
