// Type-checks every ```ts block of README.md against the local sources, so the examples stay true.
// Blocks fenced as ```ts ignore are skipped. Run: deno run -A scripts/check_readme.ts

const root = new URL("..", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const blocks = [...readme.matchAll(/```ts( ignore)?\n([\s\S]*?)```/g)].filter((m) =>
  m[1] === undefined
).map((m) => m[2]);
const dir = new URL(".cache/readme/", root);
await Deno.mkdir(dir, { recursive: true });
const modPath = new URL("mod.ts", root).pathname;
const viewerPath = new URL("viewer/mod.ts", root).pathname;
const files: string[] = [];
for (const [index, block] of blocks.entries()) {
  const source = block
    .replaceAll(/"(jsr:)?@baa-conductor\/runner\/viewer"/g, JSON.stringify(viewerPath))
    .replaceAll(/"(jsr:)?@baa-conductor\/runner"/g, JSON.stringify(modPath));
  const file = new URL(`block_${index + 1}.ts`, dir).pathname;
  await Deno.writeTextFile(file, `// README.md block ${index + 1}\nexport {};\n${source}`);
  files.push(file);
}
const check = new Deno.Command(Deno.execPath(), {
  args: ["check", "--config", new URL("deno.json", root).pathname, ...files],
});
const { code } = await check.spawn().status;
console.log(
  `README: ${files.length} TypeScript blocks checked, ${code === 0 ? "all clean" : "errors above"}`,
);
Deno.exit(code);
