// Unpacks the brotli-compressed Chromium shipped inside the npm package
// @sparticuz/chromium into a destination directory:
//   chromium.br          -> DEST/chromium            (the browser binary)
//   swiftshader.tar.br   -> DEST/                    (libGLESv2.so, libEGL.so, libvk_swiftshader.so, ...)
//   fonts.tar.br         -> DEST/fonts/        (fonts.conf + fonts)
//   al2023.tar.br        -> DEST/al2023/             (extra shared libraries, used only if the system lacks them)
// Usage: node unpack.mjs PACKAGE_DIR DEST
// Only node's own zlib is used (no network, no dependency); tar archives are
// written to a temporary .tar and unpacked by the system `tar`.
import { createReadStream, createWriteStream, mkdirSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress } from 'node:zlib';
import { execFileSync } from 'node:child_process';

const [pkg, dest] = process.argv.slice(2);
if (!pkg || !dest) {
  console.error('usage: node unpack.mjs PACKAGE_DIR DEST');
  process.exit(2);
}
mkdirSync(dest, { recursive: true });

async function unbrotli(src, out) {
  await pipeline(createReadStream(src, { highWaterMark: 1 << 22 }), createBrotliDecompress(), createWriteStream(out));
}

async function untar(name, subdir) {
  const dir = subdir ? join(dest, subdir) : dest;
  mkdirSync(dir, { recursive: true });
  const tmp = join(dest, `${name}.tmp.tar`);
  await unbrotli(join(pkg, 'bin', `${name}.tar.br`), tmp);
  execFileSync('tar', ['-xf', tmp, '-C', dir]);
  rmSync(tmp);
}

await Promise.all([
  (async () => {
    const tmp = join(dest, 'chromium.tmp');
    await unbrotli(join(pkg, 'bin', 'chromium.br'), tmp);
    chmodSync(tmp, 0o755);
    execFileSync('mv', ['-f', tmp, join(dest, 'chromium')]);
  })(),
  untar('swiftshader', ''),
  untar('fonts', ''),
  untar('al2023', 'al2023'),
]);
console.log(join(dest, 'chromium'));
