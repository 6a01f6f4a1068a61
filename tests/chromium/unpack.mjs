// Unpack the Chromium binary and its fonts shipped (brotli-compressed) inside @sparticuz/chromium
// into the folder given as the only argument; print the binary's path. Run by `make install`.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const target = resolve(process.argv[2] ?? "");
if (!process.argv[2]) {
  console.error("usage: node unpack.mjs TARGET_DIR");
  process.exit(2);
}
mkdirSync(target, { recursive: true });
// the package inflates into os.tmpdir(): point it at the target folder
process.env.TMPDIR = target;
const { default: chromium } = await import("@sparticuz/chromium");
const binary = await chromium.executablePath();
// The package's fonts.conf names its own temporary folder: point fontconfig at the fonts unpacked here
// (tests/browser.py sets FONTCONFIG_PATH to this folder).
writeFileSync(join(target, "fonts", "fonts.conf"), `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>${join(target, "fonts")}</dir>
  <cachedir>${join(target, "fonts-cache")}</cachedir>
</fontconfig>
`);
console.log(binary);
