// Runs the storage conformance suite on the in-memory adapter.

import { createMemoryStorage } from "../storage/memory.ts";
import { testStorage } from "./storage_suite.ts";

testStorage({
  name: "memory",
  create: () =>
    Promise.resolve({ storage: createMemoryStorage(), cleanup: () => Promise.resolve() }),
  capabilities: {
    append: true,
    replace: true,
    writeStream: true,
    deleteMany: true,
    stat: true,
    readRange: true,
    listPrefixes: true,
  },
});
